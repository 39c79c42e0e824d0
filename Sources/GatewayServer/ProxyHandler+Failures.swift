import GatewayCore
import GatewayHTTP
import NIOCore
import NIOHTTP1

// MARK: - Failures

extension ProxyHandler {
    /// The last thing that went wrong, kept to answer with when no attempt succeeds.
    ///
    /// Indirect: a failure is boxed once, and the loop's frame holds a word for it instead of an
    /// answer's status, headers and body in every copy it makes.
    indirect enum Failure {
        case answer(status: Int, headers: HTTPHeaders, body: ByteBuffer, verdict: Verdict, googleStatus: String?)
        case transport(UpstreamTransportError)
        /// The gateway's own code failed (an error that is no transport failure): nobody's fault
        /// upstream.
        case internalError

        /// The gateway's own shortage (descriptors, memory), not an upstream's failure.
        var isLocal: Bool {
            if case .transport(let error) = self { return error.failure == .localResources }
            return false
        }
    }

    /// Answers with the last failure: a Google answer is passed through as it came; a relay's
    /// non-Google page or a transport failure becomes a 502 in Gemini's envelope.
    @inline(never)
    func finishWithFailure(_ failure: Failure, _ recorder: RequestRecorder) -> ProxyAnswer {
        switch failure {
        case .answer(let status, let headers, let body, let verdict, let googleStatus):
            let outcome: RequestOutcome
            switch verdict {
            case .upstreamFailure(let reason):
                return fail(recorder, .upstreamsFailed("the last upstream answered \(status) (\(reason))"), outcome: .upstreamError)
            case .keyDead(let reason), .keyUnusable(let reason):
                // Google's own answer ("API key not valid") would read as if the client's token
                // were wrong: the keys at fault are the gateway's.
                return fail(recorder, .keysRefused(reason), outcome: .keyError, reason: reason)
            case .upstreamBlocked(let reason):
                return fail(recorder, .upstreamsFailed("Google refused every upstream tried (\(reason))"), outcome: .upstreamError, reason: reason)
            case .relayRefusal(let reason):
                // Nothing shows the upstreams at fault: the request is taken to be the client's.
                return fail(recorder, .refusedByRelay(status: status), outcome: .clientError, reason: reason)
            case .clientError: outcome = .clientError
            case .throttled: outcome = .throttled
            case .success, .transient, .localFailure, .cancelled: outcome = .upstreamError
            }
            // Google's answer, passed through.
            recorder.failed(outcome, status: status, googleStatus: googleStatus, reason: verdict.reason, bytes: body.readableBytes)
            return ProxyAnswer(
                head: Self.head(status: status, headers: ForwardedHeaders.toClient(headers)),
                body: .whole(body)
            )
        case .transport(let error) where error.failure == .localResources:
            return fail(recorder, .gatewayBusy(retryAfter: 1), outcome: .noCapacity, reason: error.failure.rawValue)
        case .transport(let error):
            return fail(recorder, .upstreamsFailed(error.failure.rawValue), outcome: .upstreamError)
        case .internalError:
            return fail(recorder, .internalError, outcome: .gatewayError, reason: OutcomeClassifier.Reason.internalError)
        }
    }

    /// Answers with one of the gateway's own errors and logs the request.
    @inline(never)
    func fail(_ recorder: RequestRecorder, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String? = nil) -> ProxyAnswer {
        finishRow(recorder, error, outcome: outcome, reason: reason)
        let (head, body) = error.answer()
        return ProxyAnswer(head: head, body: .whole(body))
    }

    /// Completes the row of a request answered with one of the gateway's own errors.
    func finishRow(_ recorder: RequestRecorder, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String?) {
        recorder.failed(outcome, status: Int(error.status.code), googleStatus: error.googleStatus, reason: reason)
    }
}
