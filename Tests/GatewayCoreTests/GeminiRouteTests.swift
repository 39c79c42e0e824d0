import Testing
@testable import GatewayCore

@Suite("GeminiRoute")
struct GeminiRouteTests {
    // MARK: Paths

    struct Case: Sendable, CustomTestStringConvertible {
        var target: String
        var version: String?
        var model: String?
        var method: String?
        var endpoint: GeminiRoute.Endpoint
        var stream = false
        var sse = false
        var openAI = false

        var testDescription: String { target }
    }

    static let cases: [Case] = [
        Case(target: "/v1beta/models/gemini-2.5-flash:generateContent", version: "v1beta", model: "gemini-2.5-flash",
             method: "generateContent", endpoint: .generateContent),
        Case(target: "/v1/models/gemini-2.5-pro:generateContent?key=abc", version: "v1", model: "gemini-2.5-pro",
             method: "generateContent", endpoint: .generateContent),
        Case(target: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", version: "v1beta",
             model: "gemini-2.5-flash", method: "streamGenerateContent", endpoint: .streamGenerateContent, stream: true, sse: true),
        Case(target: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?key=k&alt=sse", version: "v1beta",
             model: "gemini-2.5-flash", method: "streamGenerateContent", endpoint: .streamGenerateContent, stream: true, sse: true),
        Case(target: "/v1beta/models/gemini-2.5-flash:streamGenerateContent", version: "v1beta",
             model: "gemini-2.5-flash", method: "streamGenerateContent", endpoint: .streamGenerateContent, stream: true),
        Case(target: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=json", version: "v1beta",
             model: "gemini-2.5-flash", method: "streamGenerateContent", endpoint: .streamGenerateContent, stream: true),
        Case(target: "/v1beta/models/gemini-2.5-flash%3AstreamGenerateContent?alt=SSE", version: "v1beta",
             model: "gemini-2.5-flash", method: "streamGenerateContent", endpoint: .streamGenerateContent, stream: true, sse: true),
        Case(target: "/v1beta/models/gemini-2.5-flash:countTokens", version: "v1beta", model: "gemini-2.5-flash",
             method: "countTokens", endpoint: .countTokens),
        Case(target: "/v1beta/models/gemini-embedding-001:embedContent", version: "v1beta", model: "gemini-embedding-001",
             method: "embedContent", endpoint: .embedContent),
        Case(target: "/v1beta/models/gemini-embedding-001:batchEmbedContents", version: "v1beta",
             model: "gemini-embedding-001", method: "batchEmbedContents", endpoint: .batchEmbedContents),
        Case(target: "/v1beta/models/imagen-4.0-generate-001:predict", version: "v1beta", model: "imagen-4.0-generate-001",
             method: "predict", endpoint: .other),
        Case(target: "/v1beta/tunedModels/my-tuned:generateContent", version: "v1beta", model: "tunedModels/my-tuned",
             method: "generateContent", endpoint: .generateContent),
        Case(target: "/v1beta/models", version: "v1beta", endpoint: .modelsList),
        Case(target: "/v1beta/models/?pageSize=50", version: "v1beta", endpoint: .modelsList),
        Case(target: "/v1beta/models/gemini-2.5-flash", version: "v1beta", model: "gemini-2.5-flash", endpoint: .modelsGet),
        Case(target: "/v1beta/models/veo-3.0/operations/abc", version: "v1beta", model: "veo-3.0", endpoint: .other),
        Case(target: "/v1beta/openai/chat/completions", version: "v1beta", endpoint: .openAIChatCompletions, openAI: true),
        Case(target: "/v1/openai/chat/completions", version: "v1", endpoint: .openAIChatCompletions, openAI: true),
        Case(target: "/v1beta/openai/embeddings", version: "v1beta", endpoint: .openAIEmbeddings, openAI: true),
        Case(target: "/v1beta/openai/models", version: "v1beta", endpoint: .openAIOther, openAI: true),
        Case(target: "/v1beta/files/abc-123", version: "v1beta", endpoint: .other),
        Case(target: "/upload/v1beta/files?uploadType=resumable", version: "v1beta", endpoint: .other),
        Case(target: "/v1beta/cachedContents", version: "v1beta", endpoint: .other),
        Case(target: "/healthz", endpoint: .other),
        Case(target: "/", endpoint: .other),
        Case(target: "", endpoint: .other),
        Case(target: "/v1beta/models/:generateContent", version: "v1beta", endpoint: .other),
        Case(target: "/version/models/x:generateContent", endpoint: .other),
    ]

    @Test(arguments: cases)
    func parses(_ expected: Case) {
        let route = GeminiRoute(target: expected.target)
        #expect(route.apiVersion == expected.version)
        #expect(route.model == expected.model)
        #expect(route.method == expected.method)
        #expect(route.endpoint == expected.endpoint)
        #expect(route.isStream == expected.stream)
        #expect(route.isSSE == expected.sse)
        #expect(route.isOpenAI == expected.openAI)
    }

    @Test func pathAndQueryInitialiserAgreesWithTarget() {
        let route = GeminiRoute(path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent", query: "alt=sse&key=x")
        #expect(route == GeminiRoute(target: "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=x"))
    }

    @Test func cooldownModelFallsBackToUnknown() {
        #expect(GeminiRoute(target: "/v1beta/models/gemini-2.5-flash:generateContent").cooldownModel == "gemini-2.5-flash")
        #expect(GeminiRoute(target: "/v1beta/models").cooldownModel == ModelName.unknown)
        #expect(ModelName.unknown == "-")
        #expect(ModelName.unknown != ModelName.all)
    }

    @Test func endpointLabelsAreFew() {
        #expect(GeminiRoute.Endpoint.allCases.count == 11)
        #expect(GeminiRoute.Endpoint.openAIChatCompletions.rawValue == "openai.chat.completions")
        #expect(GeminiRoute.Endpoint.modelsList.rawValue == "models.list")
    }

    // MARK: OpenAI bodies

    @Test(arguments: [
        (#"{"model":"gemini-2.5-flash","messages":[]}"#, "gemini-2.5-flash"),
        (#"{"messages":[{"role":"user","content":"say \"model\": \"x\" {"}],"model":"models/gemini-2.5-pro"}"#, "gemini-2.5-pro"),
        (#"  {  "stream" : true , "model" : "gemini-2.0-flash" }"#, "gemini-2.0-flash"),
        (#"{"metadata":{"model":"nested"},"model":"top"}"#, "top"),
        (#"{"model":"gemini\u002d2.5-flash"}"#, "gemini-2.5-flash"),
    ])
    func openAIModel(body: String, model: String) {
        #expect(GeminiRoute.openAIModel(fromBody: Array(body.utf8)) == model)
    }

    @Test(arguments: [
        "", "[]", "null", #"{"messages":[]}"#, #"{"model":""}"#, #"{"model":"models/"}"#, #"{"model":42}"#,
        #"{"model":{"name":"x"}}"#, #"{"metadata":{"model":"nested"}}"#, #"{"model":"unterminated"#, "{", "not json",
    ])
    func noOpenAIModel(body: String) {
        #expect(GeminiRoute.openAIModel(fromBody: Array(body.utf8)) == nil)
    }

    @Test func openAIStreamFlag() {
        #expect(GeminiRoute.openAIStream(fromBody: Array(#"{"model":"m","stream":true}"#.utf8)))
        #expect(!GeminiRoute.openAIStream(fromBody: Array(#"{"model":"m","stream":false}"#.utf8)))
        #expect(!GeminiRoute.openAIStream(fromBody: Array(#"{"model":"m"}"#.utf8)))
        #expect(!GeminiRoute.openAIStream(fromBody: Array(#"{"options":{"stream":true}}"#.utf8)))
    }

    @Test func openAIModelScansPastLargeValues() {
        let image = String(repeating: "QUJD", count: 500_000)
        let body = #"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,\#(image)"}}]}],"model":"gemini-2.5-flash"}"#
        #expect(GeminiRoute.openAIModel(fromBody: Array(body.utf8)) == "gemini-2.5-flash")
    }
}

@Suite struct ByteSplitterTests {
    /// The non-empty pieces between separators, as `split` gives them, for any text (multi-byte
    /// characters, separators at either end or repeated, substrings that start mid-string).
    @Test func splitsAsSplitDoes() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["/", "/", "a", "b", "é", "€", "%", "😀", ":", "&"]
        for _ in 0..<2_000 {
            let length = Int.random(in: 0..<24, using: &generator)
            let text = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            let drop = text.isEmpty ? 0 : Int.random(in: 0...min(3, text.count), using: &generator)
            let dropEnd = Int.random(in: 0...min(3, text.count - drop), using: &generator)
            let substring = text.dropFirst(drop).dropLast(dropEnd)
            for separator in ["/", "&"] {
                var splitter = ByteSplitter(substring, separator: UInt8(ascii: separator.unicodeScalars.first!))
                var pieces: [Substring] = []
                while let piece = splitter.next() { pieces.append(piece) }
                #expect(pieces == substring.split(separator: Character(separator)), "\(substring.debugDescription)")
                #expect(splitter.next() == nil)
            }
        }
    }
}
