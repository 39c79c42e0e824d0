import Foundation
import Testing
@testable import GatewayCore

@Suite("UsageScanner")
struct UsageScannerTests {
    // MARK: Sample bodies

    static func chunk(_ text: String, prompt: Int, candidates: Int, thoughts: Int = 0, finish: Bool = false) -> String {
        let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        let finishReason = finish ? #","finishReason":"STOP""# : ""
        return #"{"candidates":[{"content":{"parts":[{"text":"\#(escaped)"}],"role":"model"}\#(finishReason),"index":0}],"usageMetadata":{"promptTokenCount":\#(prompt),"candidatesTokenCount":\#(candidates),"totalTokenCount":\#(prompt + candidates + thoughts),"thoughtsTokenCount":\#(thoughts),"promptTokensDetails":[{"modality":"TEXT","tokenCount":\#(prompt)}]},"modelVersion":"gemini-2.5-flash","responseId":"abc"}"#
    }

    /// Three events with a running total; text with braces, quotes, escapes and a fake key.
    static let events = [
        chunk("Hello {\"usageMetadata\": {\"promptTokenCount\": 999}} [", prompt: 12, candidates: 3),
        chunk("wörld } ] \\ \" \n", prompt: 12, candidates: 9, thoughts: 4),
        chunk(" done.", prompt: 12, candidates: 15, thoughts: 4, finish: true),
    ]

    static let expectedLast = UsageMetadata(prompt: 12, cached: 0, candidates: 15, thoughts: 4, toolUse: 0, total: 31)

    static let sseLF = events.map { "data: \($0)\n\n" }.joined()
    static let sseCRLF = events.map { "data: \($0)\r\n\r\n" }.joined()
    static let jsonArray = "[" + events.joined(separator: "\n,\r\n") + "]"

    // MARK: Splitting at every byte

    @Test(arguments: [("sse-lf", sseLF), ("sse-crlf", sseCRLF), ("json-array", jsonArray)])
    func lastUsageWhereverTheBodyIsSplit(name: String, body: String) {
        let bytes = Array(body.utf8)
        for split in 0...bytes.count {
            var scanner = UsageScanner()
            scanner.feed(bytes[..<split])
            scanner.feed(bytes[split...])
            #expect(scanner.last == Self.expectedLast, "\(name) split at \(split)")
            #expect(!scanner.sawErrorEvent)
        }
    }

    @Test(arguments: [("sse-lf", sseLF), ("sse-crlf", sseCRLF), ("json-array", jsonArray)])
    func byteByByte(name: String, body: String) {
        var scanner = UsageScanner()
        var seen: [UsageMetadata] = []
        for byte in body.utf8 {
            scanner.feed(CollectionOfOne(byte))
            if let last = scanner.last, last != seen.last { seen.append(last) }
        }
        // Each event's running total is seen in turn, never summed.
        #expect(seen.map(\.candidates) == [3, 9, 15])
        #expect(scanner.last == Self.expectedLast)
    }

    @Test func threeWaySplitsAtRandomOffsets() {
        var generator = SplitMix64(seed: 99)
        for body in [Self.sseLF, Self.sseCRLF, Self.jsonArray] {
            let bytes = Array(body.utf8)
            for _ in 0..<300 {
                var cuts = [Int.random(in: 0...bytes.count, using: &generator), Int.random(in: 0...bytes.count, using: &generator)]
                cuts.sort()
                var scanner = UsageScanner()
                scanner.feed(bytes[..<cuts[0]])
                scanner.feed(bytes[cuts[0]..<cuts[1]])
                scanner.feed(bytes[cuts[1]...])
                #expect(scanner.last == Self.expectedLast)
            }
        }
    }

    // MARK: Framing details

    @Test func sseWithCommentsOtherFieldsAndCROnlyLineEnds() {
        let body = ": keep-alive\r" + "event: message\r" + "id: 1\r" + "data:" + Self.events[0] + "\r\r"
            + "retry: 100\n" + "data: " + Self.events[2] + "\n\n"
        var scanner = UsageScanner()
        scanner.feed(Array(body.utf8))
        #expect(scanner.last == Self.expectedLast)
    }

    @Test func aFieldThatOnlyLooksLikeDataIsIgnored() {
        let body = "database: " + Self.events[2] + "\n\n" + "dat: " + Self.events[2] + "\n\n"
        var scanner = UsageScanner(format: .sse)
        scanner.feed(Array(body.utf8))
        #expect(scanner.last == nil)
    }

    @Test func truncatedEventIsDiscardedAtTheEventBoundary() {
        // The first event is cut mid-object (a relay hiccup); the next event must still count.
        let cut = String(Self.events[0].prefix(120))
        let body = "data: \(cut)\n\n" + "data: \(Self.events[2])\n\n"
        var scanner = UsageScanner()
        scanner.feed(Array(body.utf8))
        #expect(scanner.last == Self.expectedLast)
    }

    @Test func eventLinesLongerThan128KB() {
        let longText = String(repeating: "lorem {ipsum} \"dolor\" [sit] \\ amet ", count: 6_000)  // ~210 KB
        let big = Self.chunk(longText, prompt: 7, candidates: 70_000)
        let body = "data: \(Self.events[0])\r\n\r\ndata: \(big)\r\n\r\n"
        let bytes = Array(body.utf8)
        #expect(bytes.count > 200_000)
        let expected = UsageMetadata(prompt: 7, candidates: 70_000, total: 70_007)
        var generator = SplitMix64(seed: 5)
        for _ in 0..<20 {
            var scanner = UsageScanner()
            var index = 0
            while index < bytes.count {
                let size = Int.random(in: 1...40_000, using: &generator)
                scanner.feed(bytes[index..<min(index + size, bytes.count)])
                index += size
            }
            #expect(scanner.last == expected)
        }
    }

    @Test func usageKeysInsideNestedValuesDoNotCount() {
        let body = #"""
        {"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"usageMetadata":{"promptTokenCount":5},"usage":{"prompt_tokens":9}}}}]}}],
         "usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2,"totalTokenCount":3}}
        """#
        #expect(UsageMetadata.parse(responseBody: Array(body.utf8)) == UsageMetadata(prompt: 1, candidates: 2, total: 3))
        let noUsage = #"{"candidates":[{"content":{"parts":[{"functionCall":{"args":{"usageMetadata":{"promptTokenCount":5}}}}]}}]}"#
        #expect(UsageMetadata.parse(responseBody: Array(noUsage.utf8)) == nil)
    }

    // MARK: Complete bodies

    @Test func generateContentBody() {
        let body = #"""
        {
          "candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "finishReason": "STOP"}],
          "usageMetadata": {
            "promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 40,
            "toolUsePromptTokenCount": 7, "thoughtsTokenCount": 300, "totalTokenCount": 1547,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1200}],
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 1000}]
          },
          "modelVersion": "gemini-2.5-pro"
        }
        """#
        #expect(UsageMetadata.parse(responseBody: Array(body.utf8))
            == UsageMetadata(prompt: 1200, cached: 1000, candidates: 40, thoughts: 300, toolUse: 7, total: 1547))
    }

    @Test func missingFieldsAreZero() {
        let body = #"{"candidates":[],"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8}}"#
        #expect(UsageMetadata.parse(responseBody: Array(body.utf8)) == UsageMetadata(prompt: 8, total: 8))
        let empty = #"{"usageMetadata":{}}"#
        #expect(UsageMetadata.parse(responseBody: Array(empty.utf8)) == UsageMetadata())
    }

    @Test(arguments: [
        #"{"totalTokens": 31, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}]}"#,
        #"{"embedding": {"values": [0.1, -0.2, 0.3]}}"#,
        #"{"embeddings": [{"values": [0.1]}, {"values": [0.2]}]}"#,
        #"{"models": [{"name": "models/gemini-2.5-flash"}]}"#,
        "",
        "<html>oops</html>",
        #"{"usageMetadata": null}"#,
        #"{"usageMetadata": "12"}"#,
    ])
    func bodiesWithoutUsage(body: String) {
        #expect(UsageMetadata.parse(responseBody: Array(body.utf8)) == nil)
    }

    // MARK: Errors inside streams

    @Test func errorEventInsideAnSSEStream() {
        let body = "data: \(Self.events[0])\r\n\r\n"
            + #"data: {"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"# + "\r\n\r\n"
        var scanner = UsageScanner()
        scanner.feed(Array(body.utf8))
        #expect(scanner.sawErrorEvent)
        #expect(scanner.last?.candidates == 3)
    }

    @Test func errorElementInsideAJSONArrayStream() {
        let body = "[" + Self.events[0] + #",{"error":{"code":500,"message":"x","status":"INTERNAL"}}]"#
        var scanner = UsageScanner()
        scanner.feed(Array(body.utf8))
        #expect(scanner.sawErrorEvent)
        #expect(scanner.last?.candidates == 3)
    }

    @Test func theWordErrorInTextIsNotAnErrorEvent() {
        let body = "data: " + Self.chunk(#"{"error":{"code":1}}"#, prompt: 1, candidates: 1) + "\n\n"
        var scanner = UsageScanner()
        scanner.feed(Array(body.utf8))
        #expect(!scanner.sawErrorEvent)
    }

    // MARK: OpenAI-compatible

    @Test func openAIResponse() {
        let body = #"""
        {"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],
         "usage":{"prompt_tokens":11,"completion_tokens":22,"total_tokens":33,
                  "prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":5}}}
        """#
        #expect(UsageMetadata.parse(responseBody: Array(body.utf8))
            == UsageMetadata(prompt: 11, cached: 4, candidates: 22, thoughts: 5, total: 33))
    }

    @Test func openAIStream() {
        let body = #"""
        data: {"id":"x","choices":[{"delta":{"content":"Hel"},"index":0}],"usage":null}

        data: {"id":"x","choices":[{"delta":{"content":"lo"},"index":0,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}

        data: [DONE]


        """#
        let bytes = Array(body.utf8)
        for split in 0...bytes.count {
            var scanner = UsageScanner()
            scanner.feed(bytes[..<split])
            scanner.feed(bytes[split...])
            #expect(scanner.last == UsageMetadata(prompt: 3, candidates: 2, total: 5))
        }
    }

    // MARK: Bounds and garbage

    @Test func oversizedUsageObjectIsSkipped() {
        let padding = String(repeating: "x", count: UsageScanner.maximumCapture + 10)
        let body = "data: " + Self.events[0] + "\n\n"
            + #"data: {"usageMetadata":{"promptTokenCount":1,"junk":"\#(padding)"}}"# + "\n\n"
        var scanner = UsageScanner()
        scanner.feed(Array(body.utf8))
        #expect(scanner.skippedOversizedUsage)
        #expect(scanner.last?.candidates == 3)
    }

    @Test func garbageNeverTraps() {
        var generator = SplitMix64(seed: 1234)
        let alphabet = Array(#"{}[]":,\ dat:usageMetadata0123456789"#.utf8) + [0x0A, 0x0D, 0xFF]
        for _ in 0..<500 {
            var scanner = UsageScanner()
            for _ in 0..<8 {
                let length = Int.random(in: 0..<200, using: &generator)
                scanner.feed((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            }
            _ = scanner.last
        }
    }

    @Test func nonContiguousCollectionsWork() {
        var scanner = UsageScanner()
        scanner.feed(Self.sseLF.utf8)  // String.UTF8View
        #expect(scanner.last == Self.expectedLast)
        var lazy = UsageScanner()
        lazy.feed(Array(Self.jsonArray.utf8).lazy.map { $0 })
        #expect(lazy.last == Self.expectedLast)
    }
}
