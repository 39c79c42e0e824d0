import Foundation
import Testing
@testable import GatewayCore

@Suite("GoogleError")
struct GoogleErrorTests {
    // MARK: ErrorFixtures

    @Test func parsesEnvelopeFields() throws {
        let error = try #require(GoogleError.parse(ErrorFixtures.bytes("403-service-disabled.json")))
        #expect(error.code == 403)
        #expect(error.status == "PERMISSION_DENIED")
        #expect(error.message.hasPrefix("Generative Language API has not been used"))
        #expect(error.errorInfo?.reason == "SERVICE_DISABLED")
        #expect(error.errorInfo?.domain == "googleapis.com")
        #expect(error.errorInfo?.metadata["consumer"] == "projects/000000000000")
        #expect(error.errorInfo?.metadata["serviceTitle"] == "Generative Language API")
        #expect(error.quotaViolations.isEmpty)
        #expect(error.retryDelay == nil)
    }

    @Test func parsesQuotaFailureAndRetryInfo() throws {
        let error = try #require(GoogleError.parse(ErrorFixtures.bytes("429-per-minute.json")))
        #expect(error.code == 429)
        #expect(error.status == "RESOURCE_EXHAUSTED")
        #expect(error.retryDelay == 26)
        #expect(error.quotaViolations == [
            GoogleError.QuotaViolation(
                quotaID: "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                model: "gemini-2.5-flash",
                quotaValue: "250000"),
        ])
    }

    @Test func perDayFixtureHasRetryInfoAndAMorePreciseMessageHint() throws {
        let error = try #require(GoogleError.parse(ErrorFixtures.bytes("429-per-day.json")))
        #expect(error.retryDelay == 37)
        #expect(error.messageRetryDelay == 37.82626638)
        #expect(error.quotaViolations.first?.quotaID == "GenerateRequestsPerDayPerProjectPerModel-FreeTier")
        #expect(error.quotaViolations.first?.quotaValue == "20")
        #expect(error.quotaViolations.first?.model == "gemini-2.5-flash-lite")
    }

    @Test(arguments: ErrorFixtures.errors.keys.sorted())
    func everyFixtureIsAnEnvelope(name: String) throws {
        let error = try #require(GoogleError.parse(ErrorFixtures.bytes(name)))
        #expect(String(error.code) == String(name.prefix(3)))
        #expect(!error.message.isEmpty)
        #expect(error.status != nil)
    }

    // MARK: Shapes

    @Test func arrayWrappedEnvelope() throws {
        let body = Array(#"[{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"0.5s"}]}}]"#.utf8)
        let error = try #require(GoogleError.parse(body))
        #expect(error.code == 429)
        #expect(error.retryDelay == 0.5)
    }

    @Test func whitespaceAroundTheEnvelopeIsFine() throws {
        let body = Array("\n  \r\n{\"error\": {\"code\": 500, \"message\": \"x\", \"status\": \"INTERNAL\"}}\n".utf8)
        #expect(try #require(GoogleError.parse(body)).status == "INTERNAL")
    }

    @Test func lenientAboutDetailShapes() throws {
        // Unknown detail types, a detail that is not an object, metadata values that are not
        // strings, a code sent as a string: still an envelope.
        let body = Array(#"""
        {"error":{"code":"403","message":"m","details":[7,{"@type":"type.googleapis.com/google.rpc.Help"},
        {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"X","metadata":{"a":"b","n":3}}]}}
        """#.utf8)
        let error = try #require(GoogleError.parse(body))
        #expect(error.code == 403)
        #expect(error.status == nil)
        #expect(error.errorInfo == GoogleError.ErrorInfo(reason: "X", domain: nil, metadata: ["a": "b"]))
    }

    @Test(arguments: [
        "",
        "   ",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "Not Found",
        "null",
        "42",
        "\"error\"",
        "[]",
        "[1,2]",
        "{}",
        #"{"error":"bad gateway"}"#,
        #"{"error":{"message":"upstream timed out","type":"server_error","code":null}}"#,
        #"{"error":{"code":true,"message":"x"}}"#,
        #"{"error":{"code":500}}"#,
        #"{"error":{"code":500,"message":"trunc"#,
        #"{"candidates":[]}"#,
    ])
    func notAnEnvelope(body: String) {
        #expect(GoogleError.parse(Array(body.utf8)) == nil)
    }

    @Test func garbageNeverTraps() {
        var generator = SplitMix64(seed: 42)
        let alphabet = Array(#"{}[]":,\ 0123456789.-abcdeftrunl"#.utf8) + [0xFF, 0xC3, 0x00]
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<64, using: &generator)
            let body = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            _ = GoogleError.parse(body)
            _ = OutcomeClassifier.classify(status: 400, body: body)
        }
        let invalidUTF8: [UInt8] = Array(#"{"error":{"code":400,"message":""#.utf8) + [0xFF, 0xFE] + Array(#""}}"#.utf8)
        _ = GoogleError.parse(invalidUTF8)
    }

    @Test func oversizedBodiesAreNotEnvelopes() {
        let padding = String(repeating: " ", count: GoogleError.maximumEnvelopeSize)
        let body = Array((#"{"error":{"code":500,"message":"x","status":"INTERNAL"}}"# + padding).utf8)
        #expect(GoogleError.parse(body) == nil)
    }

    // MARK: Durations

    @Test(arguments: [
        ("26s", 26.0), ("37.82626638s", 37.82626638), ("0.5s", 0.5), ("0s", 0.0), (" 3s ", 3.0),
    ])
    func durations(text: String, seconds: Double) {
        #expect(GoogleError.parseDuration(text) == seconds)
    }

    @Test(arguments: ["", "s", "26", "-1s", "abc s", "1m", "infs", "nans"])
    func invalidDurations(text: String) {
        #expect(GoogleError.parseDuration(text) == nil)
    }

    @Test func messageRetryHintUnits() {
        #expect(GoogleError(code: 429, message: "Please retry in 583.963754ms.").messageRetryDelay == 0.583963754)
        #expect(GoogleError(code: 429, message: "Please retry in 12s.").messageRetryDelay == 12)
        #expect(GoogleError(code: 429, message: "Please retry later.").messageRetryDelay == nil)
        #expect(GoogleError(code: 429, message: "retry in 5 minutes").messageRetryDelay == nil)
    }
}
