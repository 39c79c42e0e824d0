import Foundation
import Testing
@testable import GatewayCore

@Suite("OutcomeClassifier")
struct OutcomeClassifierTests {
    // MARK: ErrorFixtures

    /// The verdict every real error body must get; a new fixture without an entry fails
    /// `everyFixtureHasAnExpectation`.
    static let expected: [String: Verdict] = [
        "400-api-key-expired.json": .keyDead(reason: "API_KEY_EXPIRED"),
        "400-api-key-invalid.json": .keyDead(reason: "API_KEY_INVALID"),
        "400-location-not-supported.json": .upstreamBlocked(reason: "LOCATION_NOT_SUPPORTED"),
        "400-malformed-request.json": .clientError(reason: "INVALID_ARGUMENT"),
        "400-payload-too-large.json": .clientError(reason: "INVALID_ARGUMENT"),
        "401-unauthenticated.json": .keyDead(reason: "UNAUTHENTICATED"),
        "403-api-key-service-blocked.json": .keyDead(reason: "API_KEY_SERVICE_BLOCKED"),
        "403-consumer-suspended.json": .keyDead(reason: "CONSUMER_SUSPENDED"),
        "403-key-leaked.json": .keyDead(reason: "KEY_LEAKED"),
        "403-service-disabled.json": .keyUnusable(reason: "SERVICE_DISABLED"),
        "403-unregistered-caller.json": .clientError(reason: "PERMISSION_DENIED"),
        "404-model-not-found.json": .clientError(reason: "NOT_FOUND"),
        "429-bare.json": .throttled(Throttle(kind: .perMinute)),
        "429-per-day.json": .throttled(Throttle(
            kind: .perDay, retryDelay: 37,
            quotaID: "GenerateRequestsPerDayPerProjectPerModel-FreeTier", model: "gemini-2.5-flash-lite")),
        "429-per-minute.json": .throttled(Throttle(
            kind: .perMinute, retryDelay: 26,
            quotaID: "GenerateContentInputTokensPerModelPerMinute-FreeTier", model: "gemini-2.5-flash")),
        "500-internal.json": .transient(reason: "INTERNAL"),
        "503-overloaded.json": .transient(reason: "UNAVAILABLE"),
        "504-deadline.json": .transient(reason: "DEADLINE_EXCEEDED"),
    ]

    static func status(of name: String) -> Int { Int(name.prefix(3))! }

    @Test(arguments: ErrorFixtures.errors.keys.sorted())
    func fixture(name: String) throws {
        let expected = try #require(Self.expected[name], "no expectation for \(name)")
        #expect(OutcomeClassifier.classify(status: Self.status(of: name), body: ErrorFixtures.bytes(name)) == expected)
    }

    @Test(arguments: ErrorFixtures.errors.keys.sorted())
    func arrayWrappedFixture(name: String) throws {
        let expected = try #require(Self.expected[name])
        let body = Array("[".utf8) + ErrorFixtures.bytes(name) + Array("]".utf8)
        #expect(OutcomeClassifier.classify(status: Self.status(of: name), body: body) == expected)
    }

    @Test func everyFixtureHasAnExpectation() {
        #expect(Set(ErrorFixtures.errors.keys) == Set(Self.expected.keys))
    }

    /// When run inside the main repository, the fake upstream's fixture directory must match the
    /// embedded copies, so a new real body cannot go unclassified.
    @Test(.enabled(if: OutcomeClassifierTests.fakeUpstreamFixtures != nil))
    func fakeUpstreamFixturesMatchEmbeddedOnes() throws {
        let directory = try #require(Self.fakeUpstreamFixtures)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".json") }
        #expect(Set(names) == Set(ErrorFixtures.errors.keys))
        for name in names {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
            #expect(text == ErrorFixtures.errors[name], "\(name) differs from the embedded copy")
        }
    }

    static var fakeUpstreamFixtures: URL? {
        let directory = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/FakeGemini/Fixtures")
        return FileManager.default.fileExists(atPath: directory.path) ? directory : nil
    }

    // MARK: Success

    @Test(arguments: [200, 201, 204, 299])
    func twoHundredsAreSuccessWhateverTheBody(status: Int) {
        #expect(OutcomeClassifier.classify(status: status, body: []) == .success)
        #expect(OutcomeClassifier.classify(status: status, body: ErrorFixtures.bytes("429-per-day.json")) == .success)
    }

    // MARK: Not Google

    @Test(arguments: [
        (502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"),
        (500, ""),
        (503, "upstream connect error or disconnect/reset before headers"),
        (429, "<html>Too Many Requests</html>"),
        (408, "<html>Request Timeout</html>"),
    ])
    func nonEnvelopesBlameTheUpstream(status: Int, body: String) {
        #expect(OutcomeClassifier.classify(status: status, body: Array(body.utf8))
            == .upstreamFailure(reason: "NOT_GOOGLE_ENVELOPE"))
    }

    /// A relay's (or a front end's) own 4xx page may be about the request as well as the relay:
    /// it charges nothing by itself (the proxy looks for evidence on another upstream).
    @Test(arguments: [
        (404, "<!DOCTYPE html><html><body>Not Found</body></html>"),
        (404, "404 page not found"),
        (400, "<html><body>400 Bad Request</body></html>"),
        (414, "<html>414 Request-URI Too Large</html>"),
        (431, ""),
        (400, #"{"error":{"message":"bad request","type":"invalid_request_error"}}"#),
        (401, #"{"detail":"Unauthorized"}"#),
        (403, "Forbidden"),
    ])
    func nonGoogle4xxIsAnUnprovenRefusal(status: Int, body: String) {
        let verdict = OutcomeClassifier.classify(status: status, body: Array(body.utf8))
        #expect(verdict == .relayRefusal(reason: "NOT_GOOGLE_4XX"))
        #expect(verdict.shouldRetry)
    }

    @Test func unexpectedStatusWithAnEnvelope() {
        let body = ErrorFixtures.bytes("500-internal.json")
        #expect(OutcomeClassifier.classify(status: 302, body: body) == .upstreamFailure(reason: "UNEXPECTED_STATUS"))
        #expect(OutcomeClassifier.classify(status: 100, body: body) == .upstreamFailure(reason: "UNEXPECTED_STATUS"))
    }

    @Test(arguments: OutcomeClassifier.TransportFailure.allCases.filter { $0 != .localResources && $0 != .cancelled })
    func transportFailuresBlameTheUpstream(failure: OutcomeClassifier.TransportFailure) {
        let verdict = OutcomeClassifier.classify(transport: failure)
        #expect(verdict == .upstreamFailure(reason: failure.rawValue))
        #expect(verdict.shouldRetry)
    }

    /// A wait given up because the client went away is nobody's failure.
    @Test func aCancelledWaitBlamesNobody() {
        let verdict = OutcomeClassifier.classify(transport: .cancelled)
        #expect(verdict == .cancelled)
        #expect(!verdict.shouldRetry)
    }

    /// The gateway's own shortage (descriptors, memory) blames nobody and is not retried.
    @Test func aLocalShortageBlamesNobody() {
        let verdict = OutcomeClassifier.classify(transport: .localResources)
        #expect(verdict == .localFailure(reason: "LOCAL_RESOURCES"))
        #expect(!verdict.shouldRetry)
        #expect(verdict.label == "local_failure")
    }

    // MARK: 429 variants

    @Test func zeroQuotaValueMeansNoQuota() {
        let body = quota429(quotaID: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", value: "0", model: "gemini-2.5-pro")
        #expect(OutcomeClassifier.classify(status: 429, body: body) == .throttled(Throttle(
            kind: .noQuota, retryDelay: 14,
            quotaID: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", model: "gemini-2.5-pro")))
    }

    @Test func limitZeroInTheMessageMeansNoQuota() {
        let message = "Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-2.5-pro"
        let body = Array(#"{"error":{"code":429,"message":"\#(message)","status":"RESOURCE_EXHAUSTED"}}"#.utf8)
        guard case .throttled(let throttle) = OutcomeClassifier.classify(status: 429, body: body) else {
            Issue.record("not throttled")
            return
        }
        #expect(throttle.kind == .noQuota)
        #expect(throttle.reason == "NO_QUOTA")
        #expect(throttle.isProjectWide)
    }

    @Test(arguments: [
        ("limit: 0", true), ("limit: 0, model: x", true), ("limit:0.", true), ("limit: 0\n", true),
        ("limit: 20", false), ("limit: 0.5", false), ("limit: 05", false), ("no limit here", false),
        ("limit: 250000, limit: 0", true),
    ])
    func zeroLimitDetection(message: String, isZero: Bool) {
        #expect(OutcomeClassifier.messageHasZeroLimit(message) == isZero)
    }

    @Test func noQuotaWinsOverPerDayWhichWinsOverPerMinute() {
        let body = Array(#"""
        {"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[
        {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[
          {"quotaId":"GenerateRequestsPerMinutePerProjectPerModel","quotaValue":"10"},
          {"quotaId":"GenerateRequestsPerDayPerProjectPerModel","quotaValue":"250","quotaDimensions":{"model":"m1"}}]}]}}
        """#.utf8)
        guard case .throttled(let throttle) = OutcomeClassifier.classify(status: 429, body: body) else {
            Issue.record("not throttled")
            return
        }
        #expect(throttle.kind == .perDay)
        #expect(throttle.quotaID == "GenerateRequestsPerDayPerProjectPerModel")
        #expect(throttle.model == "m1")
        #expect(throttle.reason == "QUOTA_PER_DAY")
    }

    @Test func perMinuteWithoutRetryInfoUsesTheMessageHint() {
        let body = Array(#"""
        {"error":{"code":429,"message":"Please retry in 583.963754ms.","status":"RESOURCE_EXHAUSTED","details":[
        {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"X-PerMinute","quotaValue":"5"}]}]}}
        """#.utf8)
        guard case .throttled(let throttle) = OutcomeClassifier.classify(status: 429, body: body) else {
            Issue.record("not throttled")
            return
        }
        #expect(throttle.kind == .perMinute)
        #expect(throttle.retryDelay == 0.583963754)
        #expect(throttle.reason == "RATE_LIMIT_PER_MINUTE")
    }

    @Test func throttleReasonsAndScope() {
        #expect(Throttle(kind: .perMinute).reason == "RATE_LIMIT")
        #expect(!Throttle(kind: .perMinute).isProjectWide)
        #expect(Throttle(kind: .perMinute, quotaID: "AbcPerMinute").reason == "RATE_LIMIT_PER_MINUTE")
        #expect(Throttle(kind: .perMinute, quotaID: "AbcPerHour").reason == "RATE_LIMIT")
        #expect(Throttle(kind: .perMinute, quotaID: "AbcPerMinute").isProjectWide)
        #expect(Throttle(kind: .perDay).isProjectWide)
        #expect(Throttle(kind: .noQuota).isProjectWide)
    }

    // MARK: 4xx variants

    @Test func filePermissionIsAClientError() {
        let body = Array(#"{"error":{"code":403,"message":"You do not have permission to access the File abc123 or it may not exist.","status":"PERMISSION_DENIED"}}"#.utf8)
        #expect(OutcomeClassifier.classify(status: 403, body: body) == .clientError(reason: "PERMISSION_DENIED"))
    }

    @Test func keyRestrictionsMakeTheKeyUnusableNotDead() {
        for reason in ["API_KEY_IP_ADDRESS_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_ANDROID_APP_BLOCKED"] {
            let body = Array(#"{"error":{"code":403,"message":"blocked","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"\#(reason)"}]}}"#.utf8)
            #expect(OutcomeClassifier.classify(status: 403, body: body) == .keyUnusable(reason: reason))
        }
    }

    @Test func invalidKeyWithoutErrorInfoIsStillDead() {
        let body = Array(#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#.utf8)
        #expect(OutcomeClassifier.classify(status: 400, body: body) == .keyDead(reason: "API_KEY_INVALID"))
    }

    @Test func otherFourHundredsAreClientErrors() {
        let body = Array(#"{"error":{"code":413,"message":"too big","status":"OUT_OF_RANGE"}}"#.utf8)
        #expect(OutcomeClassifier.classify(status: 413, body: body) == .clientError(reason: "OUT_OF_RANGE"))
        let noStatus = Array(#"{"error":{"code":409,"message":"conflict"}}"#.utf8)
        #expect(OutcomeClassifier.classify(status: 409, body: noStatus) == .clientError(reason: "HTTP_409"))
    }

    @Test func otherFiveHundredsAreTransient() {
        let body = Array(#"{"error":{"code":502,"message":"bad","status":"UNAVAILABLE"}}"#.utf8)
        #expect(OutcomeClassifier.classify(status: 502, body: body) == .transient(reason: "UNAVAILABLE"))
    }

    @Test func analyzeReturnsTheEnvelope() {
        let outcome = OutcomeClassifier.analyze(status: 429, body: ErrorFixtures.bytes("429-per-minute.json"))
        #expect(outcome.googleStatus == "RESOURCE_EXHAUSTED")
        #expect(outcome.error?.retryDelay == 26)
        #expect(OutcomeClassifier.analyze(status: 200, body: []).error == nil)
    }

    // MARK: Verdict

    @Test func verdictLabelsReasonsAndRetry() {
        #expect(Verdict.success.reason == "OK")
        #expect(!Verdict.success.shouldRetry)
        #expect(!Verdict.clientError(reason: "NOT_FOUND").shouldRetry)
        #expect(!Verdict.cancelled.shouldRetry)
        #expect(Verdict.cancelled.label == "cancelled")
        #expect(Verdict.throttled(Throttle(kind: .perDay)).reason == "QUOTA_PER_DAY")
        #expect(Verdict.throttled(Throttle(kind: .perDay)).shouldRetry)
        #expect(Verdict.keyDead(reason: "KEY_LEAKED").label == "key_dead")
        #expect(Verdict.keyDead(reason: "KEY_LEAKED").reason == "KEY_LEAKED")
        #expect(Verdict.transient(reason: "INTERNAL").shouldRetry)
        #expect(Verdict.upstreamBlocked(reason: "X").label == "upstream_blocked")
    }

    // MARK: Helpers

    private func quota429(quotaID: String, value: String, model: String) -> [UInt8] {
        Array(#"""
        {"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[
        {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"m","quotaId":"\#(quotaID)","quotaDimensions":{"location":"global","model":"\#(model)"},"quotaValue":"\#(value)"}]},
        {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"14s"}]}}
        """#.utf8)
    }
}
