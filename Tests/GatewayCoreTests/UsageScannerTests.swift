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

// MARK: - Instructions per answer

/// What scanning one answer costs. A benchmark, not a check: it runs only with GATEWAY_BENCH=1,
/// under `valgrind --tool=callgrind` twice (GATEWAY_BENCH_SCAN=none, then json or sse): the
/// difference of the two instruction totals divided by GATEWAY_BENCH_ANSWERS is the cost of one
/// answer. See bench/RESULTS.md, "Writer and usage scan, instruction counts".
@Suite(.enabled(if: ProcessInfo.processInfo.environment["GATEWAY_BENCH"] == "1"))
struct UsageScannerBenchmark {
    /// The benchmark's non-stream answer: 1,338 bytes of pretty-printed JSON.
    static let generateContent: [UInt8] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("bench/fixtures/generateContent.json").path
        return Array(FileManager.default.contents(atPath: path)!)
    }()

    /// The benchmark's stream (bench/sse_upstream.py): 10 compact `data:` events, CRLF framing,
    /// one event per chunk, a running usage total in each.
    static let stream: [[UInt8]] = (0..<10).map { index in
        let texts = ["A reverse proxy ", "accepts the client's connection, ", "chooses a backend, ",
                     "forwards the request ", "over a pooled keep-alive connection ", "and relays the answer ",
                     "chunk by chunk ", "as it arrives, ", "without buffering it, ", "so the client sees every token at once."]
        let finish = index == 9 ? #""finishReason":"STOP","# : ""
        let candidates = 9 * (index + 1)
        let event = #"{"candidates":[{"content":{"parts":[{"text":"\#(texts[index])"}],"role":"model"},\#(finish)"index":0}],"#
            + #""usageMetadata":{"promptTokenCount":24,"candidatesTokenCount":\#(candidates),"totalTokenCount":\#(24 + candidates),"#
            + #""promptTokensDetails":[{"modality":"TEXT","tokenCount":24}],"thoughtsTokenCount":0},"#
            + #""modelVersion":"gemini-2.5-flash","responseId":"9vUoacPFLaGtvdIPzO6bqA0"}"#
        return Array("data: \(event)\r\n\r\n".utf8)
    }

    @Test func instructionCount() {
        let environment = ProcessInfo.processInfo.environment
        let answers = Int(environment["GATEWAY_BENCH_ANSWERS"] ?? "") ?? 2_000
        let mode = environment["GATEWAY_BENCH_SCAN"] ?? "json"
        var total = 0
        for _ in 0..<answers {
            var scanner = UsageScanner()
            switch mode {
            case "json": scanner.feed(Self.generateContent)
            case "sse": for chunk in Self.stream { scanner.feed(chunk) }
            default: break
            }
            total &+= scanner.last?.total ?? 0
        }
        #expect(total == answers * (mode == "json" ? 388 : mode == "sse" ? 114 : 0))
    }
}

// MARK: - Tricky inputs (the byte-level reading of usage objects)

extension UsageScannerTests {
    static func usage(_ body: String, format: UsageScanner.Format = .automatic) -> UsageMetadata? {
        var scanner = UsageScanner(format: format)
        scanner.feed(Array(body.utf8))
        return scanner.last
    }

    /// Whatever the split, byte by byte included, the same usage.
    static func expectEverySplit(_ body: String, _ expected: UsageMetadata?, sourceLocation: SourceLocation = #_sourceLocation) {
        let bytes = Array(body.utf8)
        for split in 0...bytes.count {
            var scanner = UsageScanner()
            scanner.feed(bytes[..<split])
            scanner.feed(bytes[split...])
            #expect(scanner.last == expected, "split at \(split)", sourceLocation: sourceLocation)
        }
        var scanner = UsageScanner()
        for byte in bytes { scanner.feed(CollectionOfOne(byte)) }
        #expect(scanner.last == expected, "byte by byte", sourceLocation: sourceLocation)
    }

    @Test func stringBytesAreSkippedEightAtATimeOnlyUpToTheFirstThatMatters() {
        // Bytes that matter inside a string, and neighbours that differ from them in one bit.
        let alphabet: [UInt8] = [0x22, 0x5C, 0x0D, 0x0A, 0x23, 0x21, 0xA2, 0x5D, 0x0C, 0x8A, 0x00, 0xFF, 0x61, 0x61, 0x61, 0x61]
        var generator = SplitMix64(seed: 8)
        let table = ByteClass.table
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...40, using: &generator)
            let dense = Int.random(in: 1...12, using: &generator)
            let bytes = (0..<count).map { _ in
                Int.random(in: 0..<dense, using: &generator) == 0 ? alphabet.randomElement(using: &generator)! : 0x61
            }
            let start = Int.random(in: 0...count, using: &generator)
            for flags in [ByteClass.stringStop, ByteClass.stringStop | ByteClass.lineEnd, ByteClass.lineEnd] {
                let expected = bytes[start...].firstIndex { table[Int($0)] & flags != 0 } ?? count
                let found = bytes.withUnsafeBufferPointer { buffer in
                    table.withUnsafeBufferPointer { ByteClass.next(flags, in: buffer, from: start, table: $0) }
                }
                #expect(found == expected, "\(bytes) from \(start), flags \(flags)")
            }
        }
    }

    @Test func escapesAtEveryOffsetOfALongText() {
        // Quotes, backslashes and line ends (each escaped in the JSON) at every offset of texts
        // around the word size, and a fake usage object inside the text: only the real one counts.
        for length in [7, 8, 9, 15, 16, 17, 31] {
            for offset in 0..<length {
                for special in ["\"", "\\", "\n", "\\\"\n"] {
                    var text = String(repeating: "x", count: length)
                    text.insert(contentsOf: special, at: text.index(text.startIndex, offsetBy: offset))
                    let body = Self.chunk(text + #" "usageMetadata": {"promptTokenCount": 999}"#, prompt: 4, candidates: 5)
                    let expected = UsageMetadata(prompt: 4, candidates: 5, total: 9)
                    var whole = UsageScanner()
                    whole.feed(Array(body.utf8))
                    #expect(whole.last == expected, "\(length) \(offset) \(special)")
                    var sse = UsageScanner()
                    sse.feed(Array("data: \(body)\r\n\r\n".utf8))
                    #expect(sse.last == expected, "SSE \(length) \(offset) \(special)")
                }
            }
        }
    }

    @Test func escapedQuotesAndKeysThatOnlyLookLikeUsage() {
        // A text holding a whole fake usage object with escaped quotes, a key with an escaped
        // quote in it, a key spelled with an escape, and a value that is the word.
        let body = #"""
        {"candidates":[{"content":{"parts":[{"text":"\"usageMetadata\":{\"promptTokenCount\":999} \\\" {"}]}}],
         "a\"usageMetadata": {"promptTokenCount": 5},
         "usage\u004detadata": {"promptTokenCount": 6},
         "note": "usageMetadata",
         "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2, "totalTokenCount": 3}}
        """#
        Self.expectEverySplit(body, UsageMetadata(prompt: 1, candidates: 2, total: 3))
    }

    @Test func nestedValuesInsideTheUsageObject() {
        let body = #"""
        {"usageMetadata": {"promptTokensDetails": [{"modality": "TEXT", "tokenCount": 70}, {"modality": "IMAGE", "tokenCount": 258}],
          "cacheTokensDetails": [], "extra": {"totalTokenCount": 1000, "deeper": [[{"a": [true, false, null, -1]}]]},
          "promptTokenCount": 328, "candidatesTokenCount": {"nested": 5}, "thoughtsTokenCount": [7],
          "totalTokenCount": 328}}
        """#
        Self.expectEverySplit(body, UsageMetadata(prompt: 328, total: 328))
    }

    @Test func audioPromptTokensComeFromPromptTokensDetails() {
        // Google prices a prompt's audio tokens apart (issue 24): the AUDIO entries of
        // promptTokensDetails, summed; cacheTokensDetails and other lists do not count.
        let body = #"""
        {"usageMetadata": {"promptTokenCount": 1300, "candidatesTokenCount": 20, "totalTokenCount": 1320,
          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 100}, {"tokenCount": 1000, "modality": "AUDIO"},
                                  {"modality": "AUDIO", "tokenCount": 200}, {"modality": "IMAGE", "tokenCount": 0}],
          "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 50}],
          "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 20}]}}
        """#
        let expected = UsageMetadata(prompt: 1300, candidates: 20, total: 1320, audio: 1200)
        Self.expectEverySplit(body, expected)
        let object = #"""
        {"promptTokenCount": 1300, "candidatesTokenCount": 20, "totalTokenCount": 1320,
         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 100}, {"tokenCount": 1000, "modality": "AUDIO"},
                                 {"modality": "AUDIO", "tokenCount": 200}, {"modality": "IMAGE", "tokenCount": 0}],
         "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 50}],
         "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 20}]}
        """#
        let bytes = Array(object.utf8)
        #expect(bytes.withUnsafeBufferPointer { UsageMetadata.decodePlain($0, openAI: false) } == expected, "read byte by byte")
        #expect(UsageMetadata.decode(bytes, openAI: false) == expected, "and by Foundation alike")
        // Entries that are not plain are Foundation's: an escaped modality still names AUDIO.
        #expect(Self.usage(#"{"usageMetadata":{"promptTokensDetails":[{"modality":"AUDIO","tokenCount":4}]}}"#) == UsageMetadata(audio: 4))
        #expect(Self.usage(#"{"usageMetadata":{"promptTokensDetails":{"modality":"AUDIO","tokenCount":4}}}"#) == UsageMetadata())
    }

    @Test func numbersSplitAcrossChunksAndLines() {
        // SSE whose usage object spans two data lines (joined by a newline) and CRLF framing.
        let body = "data: {\"usageMetadata\": {\"promptTokenCount\": 123456,\r\ndata:  \"totalTokenCount\": 9876543210}}\r\n\r\n"
        Self.expectEverySplit(body, UsageMetadata(prompt: 123_456, total: 9_876_543_210))
    }

    @Test func aUsageObjectThatOpensAValueLine() {
        // The key on one data line, the object right after `data:` (no space) on the next: the
        // brace reaches the tokenizer alone, before the rest of the line does.
        let body = "data: {\"x\":1,\"usageMetadata\" :\r\ndata:{\"promptTokenCount\":5,\"totalTokenCount\":6}}\r\n\r\n"
        Self.expectEverySplit(body, UsageMetadata(prompt: 5, total: 6))
    }

    @Test func countsThatAreNotPlainIntegers() {
        // What Foundation's reading makes of them, as before the byte-level reading.
        let cases: [(String, Int)] = [
            (#""12""#, 12), (#""+12""#, 12), (#"" 12""#, 0), (#""-5""#, 0), (#""\u0031\u0032""#, 12), ("12.7", 12),
            ("1e3", 1000), ("1E+2", 100), ("-0", 0), ("-7", 0), ("-0.5", 0), ("0.0", 0), ("123456789012345678", 123_456_789_012_345_678),
            ("1234567890123456789", 1_234_567_890_123_456_789), ("99999999999999999999", 0), ("1e15", 1_000_000_000_000_000),
            ("1e20", 0), ("999999999999999.9", 999_999_999_999_999),
            ("true", 0), ("false", 0), ("null", 0), ("{}", 0), ("[]", 0), ("[1]", 0), (#""""#, 0), (#""abc""#, 0),
        ]
        for (value, expected) in cases {
            let body = #"{"usageMetadata":{"promptTokenCount":\#(value),"totalTokenCount":4}}"#
            #expect(Self.usage(body) == UsageMetadata(prompt: expected, total: 4), "\(value)")
            let object = Array(#"{"promptTokenCount":\#(value),"totalTokenCount":4}"#.utf8)
            #expect(Self.usage(body) == UsageMetadata.decode(object, openAI: false), "\(value)")
        }
    }

    @Test func objectsOnlyFoundationReads() {
        // A repeated key (the last one counts), trailing commas (Foundation's reading takes them),
        // non-ASCII and escapes in other strings: all left to Foundation, with its answer.
        #expect(Self.usage(#"{"usageMetadata":{"promptTokenCount":1,"promptTokenCount":2}}"#) == UsageMetadata(prompt: 2))
        #expect(Self.usage(#"{"usageMetadata":{"promptTokenCount":1,}}"#) == UsageMetadata(prompt: 1))
        #expect(Self.usage(#"{"usageMetadata":{"promptTokenCount":3,"modality":"TÉXT \"x\" \n"}}"#) == UsageMetadata(prompt: 3))
        #expect(Self.usage(#"{"usageMetadata":{"promptTokenCount":01}}"#) == nil)  // not JSON: no usage
        #expect(Self.usage(#"{"usageMetadata":{"promptTokenCount":1 "x":2}}"#) == nil)
        #expect(Self.usage(#"{"usageMetadata":{"promptTokenCount":tru}}"#) == nil)
        // An invalid object keeps the usage seen before it.
        let stream = "data: {\"usageMetadata\":{\"promptTokenCount\":5}}\n\n" + "data: {\"usageMetadata\":{\"promptTokenCount\":-}}\n\n"
        #expect(Self.usage(stream) == UsageMetadata(prompt: 5))
    }

    @Test func openAIUsageObjects() {
        let details = #"{"usage":{"prompt_tokens":11,"completion_tokens":22,"total_tokens":33,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":5,"accepted_prediction_tokens":0}}}"#
        Self.expectEverySplit(details, UsageMetadata(prompt: 11, cached: 4, candidates: 22, thoughts: 5, total: 33))
        let notObjects = #"{"usage":{"prompt_tokens":1,"prompt_tokens_details":null,"completion_tokens_details":[{"reasoning_tokens":5}]}}"#
        #expect(Self.usage(notObjects) == UsageMetadata(prompt: 1))
        let repeated = #"{"usage":{"prompt_tokens_details":{"cached_tokens":1},"prompt_tokens_details":{"cached_tokens":2}}}"#
        #expect(Self.usage(repeated) == UsageMetadata(cached: 2))
        // Gemini's names mean nothing in an OpenAI usage object, and the other way round.
        #expect(Self.usage(#"{"usage":{"promptTokenCount":9}}"#) == UsageMetadata())
        #expect(Self.usage(#"{"usageMetadata":{"prompt_tokens":9}}"#) == UsageMetadata())
    }

    @Test func prettyPrintedBodyWithEveryKindOfWhitespace() {
        let body = "\r\n\t {\r\n\t\"candidates\" :\t[ ] ,\r\n \"usageMetadata\"\t:\r\n {\r\n\t\"promptTokenCount\"\t: 24 ,\r\n"
            + "\"totalTokenCount\"\r\n:\r\n388\r\n}\r\n}\r\n"
        Self.expectEverySplit(body, UsageMetadata(prompt: 24, total: 388))
    }

    /// Random usage objects, plain and not: the byte-level reading gives Foundation's answer
    /// whenever it gives one.
    @Test(arguments: [false, true])
    func plainReadingAgreesWithFoundation(openAI: Bool) {
        var generator = SplitMix64(seed: openAI ? 77 : 78)
        let keys = openAI
            ? ["prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details",
               "cached_tokens", "reasoning_tokens", "other"]
            : ["promptTokenCount", "cachedContentTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
               "toolUsePromptTokenCount", "totalTokenCount", "promptTokensDetails", "modality", "tokenCount", "other"]
        let scalars = ["0", "7", "-3", "12.5", "1e2", "01", "123456789012345678", "1234567890123456789", "true", "false",
                       "null", #""9""#, #""x\"y""#, #""é""#, "tru", "-", "{}", "[]", "[1,2,]", "[1 2]", #""AUDIO""#, #""TEXT""#]
        func value(_ depth: Int) -> String {
            switch Int.random(in: 0..<(depth > 2 ? 1 : 4), using: &generator) {
            case 1: return "[" + (0..<Int.random(in: 0...2, using: &generator)).map { _ in value(depth + 1) }.joined(separator: ",") + "]"
            case 2, 3: return object(depth + 1)
            default: return scalars.randomElement(using: &generator)!
            }
        }
        func object(_ depth: Int) -> String {
            let members = (0..<Int.random(in: 0...5, using: &generator)).map { _ in
                let space = [" ", "", "\n", "\r\n\t"].randomElement(using: &generator)!
                return "\"\(keys.randomElement(using: &generator)!)\"\(space):\(space)\(value(depth))"
            }
            return "{" + members.joined(separator: [",", ", ", ",\n"].randomElement(using: &generator)!)
                + (Int.random(in: 0..<10, using: &generator) == 0 ? "," : "") + "}"
        }
        var plain = 0
        for _ in 0..<3_000 {
            let bytes = Array(object(0).utf8)
            let foundation = UsageMetadata.decode(bytes, openAI: openAI)
            if let fast = bytes.withUnsafeBufferPointer({ UsageMetadata.decodePlain($0, openAI: openAI) }) {
                plain += 1
                #expect(fast == foundation, "\(String(decoding: bytes, as: UTF8.self))")
            }
        }
        #expect(plain > 300)  // the byte-level reading was tried, not always left to Foundation
    }
}
