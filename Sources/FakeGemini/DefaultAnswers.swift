import Foundation

/// The fake's default, realistic answer bodies. All are one-line JSON with Google's field order.
enum DefaultAnswers {
    static let created = 1_767_225_600  // a fixed "created" timestamp keeps answers deterministic

    // MARK: Native Gemini API

    static func usage(_ s: FakeGemini.Settings, candidates: Int) -> JSONText {
        var members: [(String, JSONText)] = [
            ("promptTokenCount", .int(s.promptTokenCount)),
            ("candidatesTokenCount", .int(candidates)),
            ("totalTokenCount", .int(s.promptTokenCount + candidates + s.thoughtsTokenCount)),
            ("promptTokensDetails", .array(promptDetails(s))),
            ("thoughtsTokenCount", .int(s.thoughtsTokenCount)),
        ]
        if s.cachedContentTokenCount > 0 { members.append(("cachedContentTokenCount", .int(s.cachedContentTokenCount))) }
        return .object(members)
    }

    /// `promptTokensDetails`: the prompt's tokens by modality, as Google splits them.
    static func promptDetails(_ s: FakeGemini.Settings) -> [JSONText] {
        func entry(_ modality: String, _ count: Int) -> JSONText {
            .object([("modality", .string(modality)), ("tokenCount", .int(count))])
        }
        guard s.audioPromptTokenCount > 0 else { return [entry("TEXT", s.promptTokenCount)] }
        return [entry("TEXT", s.promptTokenCount - s.audioPromptTokenCount), entry("AUDIO", s.audioPromptTokenCount)]
    }

    static func candidate(text: String, finished: Bool) -> JSONText {
        var members: [(String, JSONText)] = [
            ("content", .object([("parts", .array([.object([("text", .string(text))])])), ("role", .string("model"))]))
        ]
        if finished { members.append(("finishReason", .string("STOP"))) }
        members.append(("index", .int(0)))
        return .object(members)
    }

    static func generateContent(model: String, requestIndex: Int, settings s: FakeGemini.Settings) -> String {
        JSONText.object([
            ("candidates", .array([candidate(text: "Hello from the fake Gemini.", finished: true)])),
            ("usageMetadata", usage(s, candidates: s.candidatesTokenCount)),
            ("modelVersion", .string(model)),
            ("responseId", .string(responseID(requestIndex))),
        ]).text
    }

    /// The events of a streamed generateContent answer: usageMetadata is a running total, the last
    /// event carries `finishReason: STOP`.
    static func streamEvents(model: String, requestIndex: Int, count: Int, settings s: FakeGemini.Settings) -> [String] {
        (0..<max(count, 0)).map { i in
            JSONText.object([
                ("candidates", .array([candidate(text: "chunk \(i + 1) ", finished: i == count - 1)])),
                ("usageMetadata", usage(s, candidates: s.candidatesTokenCount * (i + 1))),
                ("modelVersion", .string(model)),
                ("responseId", .string(responseID(requestIndex))),
            ]).text
        }
    }

    static func countTokens(settings s: FakeGemini.Settings) -> String {
        JSONText.object([
            ("totalTokens", .int(s.promptTokenCount)),
            ("promptTokensDetails", .array(promptDetails(s))),
        ]).text
    }

    static func embeddingValues(_ dimensions: Int, seed: Int) -> JSONText {
        .array((0..<max(dimensions, 0)).map { i in .double(Double((i + seed) % 97 + 1) / 128.0) })
    }

    static func embedContent(settings s: FakeGemini.Settings) -> String {
        JSONText.object([("embedding", .object([("values", embeddingValues(s.embeddingDimensions, seed: 0))]))]).text
    }

    static func batchEmbedContents(count: Int, settings s: FakeGemini.Settings) -> String {
        JSONText.object([
            ("embeddings", .array((0..<max(count, 1)).map { i in .object([("values", embeddingValues(s.embeddingDimensions, seed: i))]) }))
        ]).text
    }

    static func modelObject(_ name: String) -> JSONText {
        let isEmbedding = name.contains("embedding")
        let display = name.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(separator: " ")
        var members: [(String, JSONText)] = [
            ("name", .string("models/\(name)")),
            ("version", .string("001")),
            ("displayName", .string(display)),
            ("description", .string("\(display) (served by the fake Gemini)")),
            ("inputTokenLimit", .int(isEmbedding ? 2048 : 1_048_576)),
            ("outputTokenLimit", .int(isEmbedding ? 1 : 65_536)),
        ]
        if isEmbedding {
            members.append(("supportedGenerationMethods", .array(["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"].map { .string($0) })))
        } else {
            members.append(("supportedGenerationMethods", .array(["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"].map { .string($0) })))
            members.append(contentsOf: [
                ("temperature", .int(1)), ("topP", .double(0.95)), ("topK", .int(64)), ("maxTemperature", .int(2)), ("thinking", .bool(true)),
            ])
        }
        return .object(members)
    }

    static func modelList(settings s: FakeGemini.Settings) -> String {
        JSONText.object([("models", .array(s.models.map(modelObject)))]).text
    }

    static func modelGet(_ name: String) -> String {
        modelObject(name).text
    }

    // MARK: Errors

    static func envelope(code: Int, message: String, status: String) -> String {
        JSONText.object([
            ("error", .object([("code", .int(code)), ("message", .string(message)), ("status", .string(status))]))
        ]).text
    }

    static func modelNotFound(_ model: String, version: String, method: String) -> String {
        envelope(
            code: 404,
            message: "models/\(model) is not found for API version \(version), or is not supported for \(method). Call ListModels to see the list of available models and their supported methods.",
            status: "NOT_FOUND"
        )
    }

    static func pathNotFound(_ path: String) -> String {
        envelope(code: 404, message: "Method not found: \(path)", status: "NOT_FOUND")
    }

    // MARK: OpenAI-compatible endpoint

    static func openAIUsage(_ s: FakeGemini.Settings) -> JSONText {
        .object([
            ("completion_tokens", .int(s.candidatesTokenCount)),
            ("prompt_tokens", .int(s.promptTokenCount)),
            ("total_tokens", .int(s.promptTokenCount + s.candidatesTokenCount)),
        ])
    }

    static func chatCompletion(model: String, requestIndex: Int, settings s: FakeGemini.Settings) -> String {
        JSONText.object([
            ("choices", .array([.object([
                ("finish_reason", .string("stop")),
                ("index", .int(0)),
                ("message", .object([("content", .string("Hello from the fake Gemini.")), ("role", .string("assistant"))])),
            ])])),
            ("created", .int(created)),
            ("id", .string(responseID(requestIndex))),
            ("model", .string(model)),
            ("object", .string("chat.completion")),
            ("usage", openAIUsage(s)),
        ]).text
    }

    /// `chat.completion.chunk` events; the last carries `finish_reason` and `usage`. `[DONE]` is not included.
    static func chatCompletionChunks(model: String, requestIndex: Int, count: Int, settings s: FakeGemini.Settings) -> [String] {
        (0..<max(count, 1)).map { i in
            let last = i == max(count, 1) - 1
            var choice: [(String, JSONText)] = [
                ("delta", .object([("content", .string("chunk \(i + 1) ")), ("role", .string("assistant"))])),
                ("index", .int(0)),
            ]
            if last { choice.insert(("finish_reason", .string("stop")), at: 1) }
            var members: [(String, JSONText)] = [
                ("choices", .array([.object(choice)])),
                ("created", .int(created)),
                ("id", .string(responseID(requestIndex))),
                ("model", .string(model)),
                ("object", .string("chat.completion.chunk")),
            ]
            if last { members.append(("usage", openAIUsage(s))) }
            return JSONText.object(members).text
        }
    }

    static func openAIEmbeddings(model: String, inputs: Int, settings s: FakeGemini.Settings) -> String {
        JSONText.object([
            ("data", .array((0..<max(inputs, 1)).map { i in
                .object([("embedding", embeddingValues(s.embeddingDimensions, seed: i)), ("index", .int(i)), ("object", .string("embedding"))])
            })),
            ("model", .string(model)),
            ("object", .string("list")),
            ("usage", .object([("prompt_tokens", .int(s.promptTokenCount)), ("total_tokens", .int(s.promptTokenCount))])),
        ]).text
    }

    static func openAIModel(_ name: String) -> JSONText {
        .object([("id", .string("models/\(name)")), ("object", .string("model")), ("created", .int(0)), ("owned_by", .string("google"))])
    }

    static func openAIModelList(settings s: FakeGemini.Settings) -> String {
        JSONText.object([("object", .string("list")), ("data", .array(s.models.map(openAIModel)))]).text
    }

    static func responseID(_ requestIndex: Int) -> String {
        "fake-\(requestIndex)"
    }
}

extension FakeGemini {
    /// The events of the default `:streamGenerateContent?alt=sse` answer (one-line JSON each, without
    /// the `data: ` prefix), for building your own `.sse(events:failAfter:)` rule with realistic events.
    public static func defaultStreamEvents(model: String = "gemini-2.5-flash", count: Int = 3, settings: Settings = Settings()) -> [String] {
        DefaultAnswers.streamEvents(model: model, requestIndex: 0, count: count, settings: settings)
    }

    /// The default `:generateContent` answer body.
    public static func defaultGenerateContent(model: String = "gemini-2.5-flash", settings: Settings = Settings()) -> String {
        DefaultAnswers.generateContent(model: model, requestIndex: 0, settings: settings)
    }

    /// A Google error envelope `{"error":{"code","message","status"}}`, e.g. for an in-stream error event.
    public static func errorEnvelope(code: Int, message: String, status: String) -> String {
        DefaultAnswers.envelope(code: code, message: message, status: status)
    }
}
