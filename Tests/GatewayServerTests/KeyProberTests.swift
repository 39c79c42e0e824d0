import FakeGemini
import GatewayCore
import GatewayServer
import Testing
import TestSupport

/// `KeyProber`, what `keys check` probes keys with, through the gateway's own transport against
/// a fake Gemini (the command around it: `KeysCheckTests` in the CLI's tests).
@Suite struct KeyProberTests {
    static let keys = (1...6).map { "AIzaSyFAKE-key-prober-key-0000000000000\($0)" }

    @Test func eachAnswerIsJudgedAsTheProxyJudgesIt() async throws {
        let keys = Self.keys
        let fake = try await FakeGemini.start()
        fake.setRules([
            .init(key: keys[1], reply: .fixture("400-api-key-invalid")),
            .init(key: keys[2], reply: .fixture("429-per-minute")),
            .init(key: keys[3], reply: .fixture("403-service-disabled")),
            .init(key: keys[4], reply: .fixture("503-overloaded")),
            .init(key: keys[5], reply: .status(200, body: "<html>a relay's login page</html>", contentType: "text/html")),
        ])
        let prober = try KeyProber(upstream: fake.baseURL, timeout: 30, caFile: nil)
        let run = await prober.probe(keys, concurrency: 2)
        await prober.shutdown()
        await fake.stop()
        guard case .finished(let outcomes) = run else {
            Issue.record("the fake answered, yet the run says unreachable: \(run)")
            return
        }
        #expect(outcomes.map(\.finding) == [.alive, .dead, .throttled, .unusable, .unknown, .unknown])
        #expect(outcomes.map(\.reason) == [
            "OK", "API_KEY_INVALID", "RATE_LIMIT_PER_MINUTE", "SERVICE_DISABLED", "UNAVAILABLE", "NOT_A_MODELS_LIST",
        ])
        #expect(outcomes.map(\.status) == [200, 400, 429, 403, 503, 200])
        #expect(!outcomes.contains { $0.message?.contains("AIzaSyFAKE") == true }, "a key in a message: \(outcomes)")
    }

    /// No answer from the upstream at all: no key is judged, and the probes still to send are
    /// not sent.
    @Test func anUpstreamThatNeverAnswersJudgesNoKey() async throws {
        let port = try closedPort()
        let prober = try KeyProber(upstream: "http://127.0.0.1:\(port)", timeout: 30, caFile: nil)
        let run = await prober.probe(Self.keys, concurrency: 2)
        await prober.shutdown()
        guard case .unreachable(let failure) = run else {
            Issue.record("a refused connection judged keys: \(run)")
            return
        }
        #expect(failure.finding == .unknown)
        #expect(failure.reason == "CONNECTION_REFUSED")
        #expect(failure.status == nil)
    }
}
