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

    @Test func anArrayIsReadUpToItsFirstElementWithAnError() throws {
        let later = Array(#"[{"candidates":[]},7,{"error":{"code":503,"message":"m","status":"UNAVAILABLE"}}]"#.utf8)
        #expect(try #require(GoogleError.parse(later)).code == 503)
        // The first element with an `error` member decides, even when it is not an envelope.
        let first = Array(#"[{"error":null},{"error":{"code":503,"message":"m"}}]"#.utf8)
        #expect(GoogleError.parse(first) == nil)
    }

    @Test func numbersAreReadAsGoogleMeansThem() throws {
        let fraction = Array(#"{"error":{"code":429.0,"message":"m","status":7,"details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"q","quotaValue":0},"x",{"quotaValue":true}]}]}}"#.utf8)
        let error = try #require(GoogleError.parse(fraction))
        #expect(error.code == 429)
        #expect(error.status == nil)
        #expect(error.quotaViolations == [
            GoogleError.QuotaViolation(quotaID: "q", quotaValue: "0"), GoogleError.QuotaViolation(),
        ])
        #expect(GoogleError.parse(Array(#"{"error":{"code":1e20,"message":"m"}}"#.utf8)) == nil)
        #expect(GoogleError.parse(Array(#"{"error":{"code":429.5,"message":"m"}}"#.utf8)) == nil)
    }

    @Test func theFirstUsableErrorInfoAndTheFirstRetryInfoCount() throws {
        let body = Array(#"""
        {"error":{"code":429,"message":"m","details":[
        {"@type":"type.googleapis.com/google.rpc.ErrorInfo","domain":"no reason"},
        {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2.5s"},
        {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"FIRST"},
        {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"9s"},
        {"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SECOND"}]}}
        """#.utf8)
        let error = try #require(GoogleError.parse(body))
        #expect(error.retryDelay == 2.5)
        #expect(error.errorInfo?.reason == "FIRST")
    }

    // MARK: Writing

    @Test func theGatewaysOwnEnvelopeIsGooglesShape() {
        let bytes = GoogleError(code: 503, message: "No upstream answered: x/y", status: "UNAVAILABLE").encodedEnvelope()
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"error":{"code":503,"message":"No upstream answered: x/y","status":"UNAVAILABLE"}}"#)
    }

    /// Quotes, backslashes, every control character, non-ASCII text and the two line separators
    /// JavaScript once choked on: escaped where JSON requires it, and read back unchanged by
    /// Foundation's own JSON parser as well as by ``GoogleError/parse(_:)``.
    @Test func messagesAreEscaped() throws {
        let controls = String(String.UnicodeScalarView((0..<0x20).compactMap(Unicode.Scalar.init) + [Unicode.Scalar(0x7F)]))
        let message = #"a "quoted" \path\ C:\\ "# + controls + " é 日本 🙂 \u{2028}\u{2029} </script>"
        let bytes = GoogleError(code: 400, message: message, status: "INVALID_ARGUMENT").encodedEnvelope()
        #expect(!bytes.contains { $0 < 0x20 }, "a raw control character in \(String(decoding: bytes, as: UTF8.self))")
        #expect(String(validating: bytes, as: UTF8.self) != nil)
        let object = try #require(try JSONSerialization.jsonObject(with: bytes) as? [String: Any])
        #expect((object["error"] as? [String: Any])?["message"] as? String == message)
        let read = try #require(GoogleError.parse(Array(bytes)))
        #expect(read == GoogleError(code: 400, message: message, status: "INVALID_ARGUMENT"))
    }

    /// Every real body, read, written and read again, is the same error: what the gateway reads
    /// it can write, details included.
    @Test(arguments: ErrorFixtures.errors.keys.sorted())
    func everyFixtureSurvivesARoundTrip(name: String) throws {
        let error = try #require(GoogleError.parse(ErrorFixtures.bytes(name)))
        #expect(GoogleError.parse(Array(error.encodedEnvelope())) == error)
    }

    @Test func detailsAreWrittenAsGoogleWritesThem() throws {
        let error = GoogleError(
            code: 429, message: "m", status: "RESOURCE_EXHAUSTED",
            errorInfo: .init(reason: "R", domain: "googleapis.com", metadata: ["k": "v"]),
            quotaViolations: [.init(quotaID: "PerDay", quotaMetric: "metric", model: "gemini-2.5-flash", quotaValue: "20")],
            retryDelay: 37.82626638
        )
        let object = try #require(try JSONSerialization.jsonObject(with: error.encodedEnvelope()) as? [String: Any])
        let details = try #require((object["error"] as? [String: Any])?["details"] as? [[String: Any]])
        #expect(details.map { $0["@type"] as? String } == [
            "type.googleapis.com/google.rpc.ErrorInfo", "type.googleapis.com/google.rpc.QuotaFailure",
            "type.googleapis.com/google.rpc.RetryInfo",
        ])
        #expect(details[2]["retryDelay"] as? String == "37.82626638s")
        let violation = try #require((details[1]["violations"] as? [[String: Any]])?.first)
        #expect((violation["quotaDimensions"] as? [String: Any])?["model"] as? String == "gemini-2.5-flash")
        #expect(GoogleError.parse(Array(error.encodedEnvelope())) == error)
        #expect(GoogleError.formatDuration(26) == "26s")
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
