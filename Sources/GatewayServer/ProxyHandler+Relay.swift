import Foundation
import GatewayCore
import GatewayHTTP
import NIOCore
import NIOHTTP1

// MARK: - Relaying a success

extension ProxyHandler {
    /// The answer to the client: the upstream's status and headers, and its body passed through
    /// chunk by chunk as it arrives (never re-framed; a known length is kept).
    @inline(never)
    func relay(_ response: UpstreamResponse, first: ByteBuffer?, _ exchange: Exchange) -> ProxyAnswer {
        let head = Self.head(status: response.status, headers: ForwardedHeaders.toClient(response.headers))
        let relay = Relay(
            first: first, upstream: response.body, length: response.headers.first(name: "content-length").flatMap(Int.init),
            recorder: exchange.recorder, expectsUsage: Self.expectsUsage(exchange.route.endpoint)
        )
        return ProxyAnswer(head: head, body: .relay(relay))
    }

    /// The answer for a body already read in full: head and body go out in one write.
    /// (A client that vanishes during that write is logged as served: the answer was complete.)
    @inline(never)
    func relayWhole(_ response: UpstreamResponse, body: ByteBuffer, _ exchange: Exchange) -> ProxyAnswer {
        var scanner = UsageScanner()
        scanner.feed(body.readableBytesView)
        let sawError = scanner.sawErrorEvent
        let recorder = exchange.recorder
        recorder.served(
            sawError ? .truncated : .success, reason: sawError ? "ERROR_EVENT_IN_STREAM" : nil,
            bytes: body.readableBytes, ttfb: recorder.elapsedMilliseconds(),
            usage: AnswerUsage(scanner, expectsUsage: Self.expectsUsage(exchange.route.endpoint), truncated: sawError)
        )
        return ProxyAnswer(
            head: Self.head(status: response.status, headers: ForwardedHeaders.toClient(response.headers)),
            body: .whole(body)
        )
    }

    /// A success answer's body still arriving from upstream, with the request's row to complete.
    struct Relay: RelayedBody {
        var first: ByteBuffer?
        var upstream: any UpstreamBodyStream
        /// The upstream's `Content-Length`, kept for the client (the channel handler frames the
        /// body by it); nil when the body's end is the end of the upstream's chunks.
        let length: Int?
        let recorder: RequestRecorder
        let expectsUsage: Bool
        /// A stream's row is in `streams_in_flight` from its first byte to its end, refreshed
        /// this often while bytes flow (``RequestRecorder/snapshotStream(bytes:ttfb:usage:)``).
        static let snapshotInterval: Duration = .seconds(2)

        /// Passes the body to `write` chunk by chunk and completes the row. A failure of the
        /// upstream after the first byte is thrown, for the caller to abort the client's
        /// connection (the client then sees an error, never a clean but truncated answer); a
        /// `write` that throws (the client went away) stops the upstream read.
        ///
        /// A stream's task holds this frame for as long as the stream lasts: it keeps the
        /// ``Progress`` once and leaves the rest to functions that are not inlined into it.
        mutating func run(write: (ByteBuffer) async throws -> Void) async throws {
            var progress = Progress(isStream: recorder.isStream)
            var next = first
            first = nil
            while let chunk = next {
                progress.scan(chunk)
                do {
                    try await write(chunk)
                } catch {
                    finishCancelled(progress)
                    throw error
                }
                progress.written(self)
                do {
                    next = try await upstream.next()
                } catch {
                    brokeOff(error, progress)
                    throw error
                }
            }
            try finish(progress)
        }

        /// What has gone to the client so far.
        struct Progress {
            var scanner = UsageScanner()
            var bytes = 0
            var ttfb: Double?
            let isStream: Bool
            var nextSnapshot = ContinuousClock.now

            init(isStream: Bool) {
                self.isStream = isStream
            }

            mutating func scan(_ chunk: ByteBuffer) {
                scanner.feed(chunk.readableBytesView)
                bytes += chunk.readableBytes
            }

            /// A chunk went out: the first byte's time, and a stream's row refreshed now and then.
            @inline(never)
            mutating func written(_ relay: Relay) {
                if ttfb == nil { ttfb = relay.recorder.elapsedMilliseconds() }
                if isStream, ContinuousClock.now >= nextSnapshot {
                    relay.recorder.snapshotStream(bytes: bytes, ttfb: ttfb, usage: relay.usage(scanner, truncated: true))
                    nextSnapshot = .now + Relay.snapshotInterval
                }
            }
        }

        /// The upstream read failed after the answer had begun.
        @inline(never)
        private func brokeOff(_ error: any Error, _ progress: Progress) {
            if Task.isCancelled {
                // The client went away while the upstream was quiet: the read stopped.
                finishCancelled(progress)
            } else {
                let reason = (error as? UpstreamTransportError)?.failure.rawValue ?? "UPSTREAM_BODY_FAILED"
                recorder.served(
                    .truncated, reason: reason, bytes: progress.bytes, ttfb: progress.ttfb,
                    usage: usage(progress.scanner, truncated: true))
            }
        }

        /// The upstream's body ended: the row is complete (unless the client went away).
        @inline(never)
        private func finish(_ progress: Progress) throws {
            if Task.isCancelled {
                // The client went away: a stream ends its read early without an error.
                finishCancelled(progress)
                throw CancellationError()
            }
            let sawError = progress.scanner.sawErrorEvent
            recorder.served(
                sawError ? .truncated : .success, reason: sawError ? "ERROR_EVENT_IN_STREAM" : nil,
                bytes: progress.bytes, ttfb: progress.ttfb ?? recorder.elapsedMilliseconds(),
                usage: usage(progress.scanner, truncated: sawError)
            )
        }

        /// The client went away before the answer could be sent.
        func abandon() {
            finishCancelled(Progress(isStream: recorder.isStream))
        }

        /// The client went away during the answer: 499, its usage as far as it was read.
        @inline(never)
        private func finishCancelled(_ progress: Progress) {
            recorder.served(
                .cancelled, status: 499, bytes: progress.bytes, ttfb: progress.ttfb,
                usage: usage(progress.scanner, truncated: true))
        }

        private func usage(_ scanner: UsageScanner, truncated: Bool) -> AnswerUsage {
            AnswerUsage(scanner, expectsUsage: expectsUsage, truncated: truncated)
        }
    }

    /// A response head to the client (HTTP/1.1; the channel handler sets the version it speaks).
    static func head(status: Int, headers: HTTPHeaders) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)
    }

    /// Whether the endpoint's answers carry token usage to account (countTokens, embeddings and
    /// the rest do not, an OpenAI-style embeddings `usage` object included: their rows keep 0
    /// tokens and usage_status 'none').
    private static func expectsUsage(_ endpoint: GeminiRoute.Endpoint) -> Bool {
        switch endpoint {
        case .generateContent, .streamGenerateContent, .openAIChatCompletions: true
        default: false
        }
    }
}
