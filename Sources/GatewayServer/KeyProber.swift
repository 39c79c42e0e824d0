import Foundation
import GatewayCore
import GatewayHTTP
import NIOCore
import NIOHTTP1

// MARK: - Probing keys (`gemini-gateway keys check`)

/// What a probe says about a key.
public enum KeyProbeFinding: String, Sendable, Hashable, Codable {
    /// 200 with a models list.
    case alive
    /// 429: the key is valid, its quota is spent for now.
    case throttled
    /// Google says the key will not work again (API_KEY_INVALID, leaked, suspended, ...).
    case dead
    /// The key is valid but cannot be used (403 SERVICE_DISABLED, a permission or restriction).
    case unusable
    /// No verdict on the key: the upstream or Google failed.
    case unknown
}

/// One probe's answer, judged by the gateway's own classifier.
public struct ProbeOutcome: Sendable {
    public var verdict: Verdict
    /// The HTTP status; nil when no answer came.
    public var status: Int?
    /// Google's message (the key redacted), or the transport error.
    public var message: String?

    public init(verdict: Verdict, status: Int? = nil, message: String? = nil) {
        self.verdict = verdict
        self.status = status
        self.message = message
    }

    /// What the answer says about the key: the proxy's verdict, read for a probe no client asked
    /// for, so a client error on the models list (400, 403 without a known reason) is the key's,
    /// not a request's.
    public var finding: KeyProbeFinding {
        switch verdict {
        case .success: .alive
        case .throttled: .throttled
        case .keyDead: .dead
        case .keyUnusable: .unusable
        case .clientError where status == 400 || status == 403: .unusable
        case .clientError, .upstreamBlocked, .transient, .upstreamFailure, .relayRefusal, .localFailure, .cancelled: .unknown
        }
    }

    /// Why: the verdict's reason (`OK`, `API_KEY_INVALID`, `RATE_LIMIT`, `SERVICE_DISABLED`,
    /// `CONNECTION_REFUSED`, ...).
    public var reason: String { verdict.reason }
}

/// How a run of probes ended.
public enum ProbeRun: Sendable {
    /// Every key was probed: the outcomes in the order of the keys.
    case finished([ProbeOutcome])
    /// The first probes (as many as run at once, or all if fewer) got no answer from Google at
    /// all, so no key can be judged: the rest were not sent. The last failure says why.
    case unreachable(ProbeOutcome)
}

/// Sends `GET {upstream}/v1beta/models?pageSize=1` with each key, a bounded number at a time,
/// through the gateway's own upstream transport.
public struct KeyProber: Sendable {
    public let upstream: String
    private let transport: NIOHTTP1Transport

    /// The largest answer read: a models list of one model is a few hundred bytes.
    static let maximumBodyBytes = 1 << 20

    /// `timeout` bounds connecting, the wait for the answer's head, and each silence within its body.
    public init(upstream: String, timeout seconds: Double, caFile: String?) throws {
        self.upstream = upstream
        var timeouts = UpstreamTimeouts()
        timeouts.connectTimeout = .seconds(seconds)
        timeouts.responseHeadTimeout = .seconds(seconds)
        timeouts.readIdleTimeout = .seconds(seconds)
        transport = try NIOHTTP1Transport(timeouts: timeouts, trustRoots: caFile)
    }

    public func shutdown() async {
        await transport.shutdown()
    }

    /// Probes every secret, at most `concurrency` at once (see ``ProbeRun``).
    public func probe(_ secrets: [String], concurrency: Int) async -> ProbeRun {
        let verdictless = min(concurrency, secrets.count)
        return await withTaskGroup(of: (Int, ProbeOutcome).self) { group in
            var outcomes = [ProbeOutcome?](repeating: nil, count: secrets.count)
            var next = 0
            var answered = 0, failed = 0
            func launch() {
                guard next < secrets.count else { return }
                let index = next, secret = secrets[index]
                next += 1
                group.addTask { (index, await self.probe(secret)) }
            }
            for _ in 0..<verdictless { launch() }
            while let (index, outcome) = await group.next() {
                outcomes[index] = outcome
                // A relay's own 4xx page to a well-formed probe is the relay's failure too.
                switch outcome.verdict {
                case .upstreamFailure, .relayRefusal: failed += 1
                default: answered += 1
                }
                if answered == 0 && failed >= verdictless {
                    group.cancelAll()
                    return .unreachable(outcome)
                }
                launch()
            }
            return .finished(outcomes.map { $0! })
        }
    }

    /// One probe with one key.
    public func probe(_ secret: String) async -> ProbeOutcome {
        var headers = HTTPHeaders()
        headers.add(name: "x-goog-api-key", value: secret)
        headers.add(name: "user-agent", value: "gemini-gateway keys check")
        let request = UpstreamRequest(
            method: .GET, baseURL: upstream, target: "/v1beta/models?pageSize=1", headers: headers, body: ByteBuffer()
        )
        do {
            let response = try await transport.send(request)
            let status = response.status
            guard let body = try await Self.collect(response.body) else {
                return ProbeOutcome(
                    verdict: OutcomeClassifier.classify(transport: .other), status: nil,
                    message: "HTTP \(status) with an answer over \(Self.maximumBodyBytes) bytes, not a models list")
            }
            let analysis = OutcomeClassifier.analyze(status: status, body: body)
            // A 200 that is not a models list (a relay's login page) says nothing about the key.
            if analysis.verdict == .success && !Self.isModelsList(body) {
                return ProbeOutcome(verdict: .upstreamFailure(reason: "NOT_A_MODELS_LIST"), status: status, message: "HTTP \(status) without a models list")
            }
            let message = analysis.error.map { Self.redacting(secret, in: $0.message) }
                ?? (analysis.verdict == .success ? nil : "HTTP \(status), not an answer in Google's error envelope")
            return ProbeOutcome(verdict: analysis.verdict, status: status, message: message)
        } catch {
            let failure = UpstreamTransportError(error)
            return ProbeOutcome(
                verdict: OutcomeClassifier.classify(transport: failure.failure), status: nil,
                message: Self.redacting(secret, in: failure.detail))
        }
    }

    /// The whole body; nil when it is over ``maximumBodyBytes`` (the rest is not read: the
    /// connection closes).
    private static func collect(_ stream: any UpstreamBodyStream) async throws -> [UInt8]? {
        var stream = stream
        var bytes: [UInt8] = []
        while let chunk = try await stream.next() {
            guard bytes.count + chunk.readableBytes <= maximumBodyBytes else { return nil }
            bytes += chunk.readableBytesView
        }
        return bytes
    }

    private static func isModelsList(_ body: [UInt8]) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])?["models"] is [Any]
    }

    private static func redacting(_ secret: String, in text: String) -> String {
        secret.isEmpty ? text : text.replacingOccurrences(of: secret, with: Secret.redacted(secret))
    }
}
