import Foundation

// MARK: - UsageMetadata

/// Token counts of one response, from Gemini's `usageMetadata` (or the OpenAI-compatible
/// `usage`). Missing fields are 0.
///
/// For streams, Gemini repeats a running total in every event: the last one is the answer, they
/// are never summed (see ``UsageScanner``). `countTokens` answers (`totalTokens`) and embeddings
/// carry no usage.
public struct UsageMetadata: Sendable, Hashable {
    /// `promptTokenCount` (includes cached tokens) / OpenAI `prompt_tokens`.
    public var prompt: Int
    /// `cachedContentTokenCount` / OpenAI `prompt_tokens_details.cached_tokens`.
    public var cached: Int
    /// `candidatesTokenCount` / OpenAI `completion_tokens` (which, by OpenAI's convention, already
    /// include reasoning tokens).
    public var candidates: Int
    /// `thoughtsTokenCount` / OpenAI `completion_tokens_details.reasoning_tokens`.
    public var thoughts: Int
    /// `toolUsePromptTokenCount`.
    public var toolUse: Int
    /// `totalTokenCount` / OpenAI `total_tokens`.
    public var total: Int
    /// The prompt's tokens of modality `AUDIO` (`promptTokensDetails`), which Google prices apart
    /// (part of ``prompt``); 0 for the OpenAI-compatible usage, which does not split them.
    public var audio: Int

    /// Token counts; omitted ones are 0.
    public init(
        prompt: Int = 0, cached: Int = 0, candidates: Int = 0, thoughts: Int = 0, toolUse: Int = 0, total: Int = 0, audio: Int = 0
    ) {
        self.prompt = prompt
        self.cached = cached
        self.candidates = candidates
        self.thoughts = thoughts
        self.toolUse = toolUse
        self.total = total
        self.audio = audio
    }

    // MARK: Parsing

    /// The usage of a complete response body: a `generateContent` object, a collected
    /// `streamGenerateContent` stream (SSE or JSON array), or an OpenAI-compatible response.
    /// Nil when the body carries none.
    public static func parse(responseBody body: some Collection<UInt8>) -> UsageMetadata? {
        var scanner = UsageScanner()
        scanner.feed(body)
        return scanner.last
    }

    /// From the JSON object of Gemini's `usageMetadata`.
    init(gemini object: [String: Any]) {
        self.init(
            prompt: Self.int(object["promptTokenCount"]),
            cached: Self.int(object["cachedContentTokenCount"]),
            candidates: Self.int(object["candidatesTokenCount"]),
            thoughts: Self.int(object["thoughtsTokenCount"]),
            toolUse: Self.int(object["toolUsePromptTokenCount"]),
            total: Self.int(object["totalTokenCount"]),
            audio: Self.audio(object["promptTokensDetails"]))
    }

    /// The `tokenCount`s of the `AUDIO` entries of a `*TokensDetails` list.
    private static func audio(_ details: Any?) -> Int {
        guard let list = details as? [Any] else { return 0 }
        return list.reduce(0) { sum, entry in
            guard let entry = entry as? [String: Any], entry["modality"] as? String == "AUDIO" else { return sum }
            return sum + int(entry["tokenCount"])
        }
    }

    /// From the JSON object of the OpenAI-compatible `usage`.
    init(openAI object: [String: Any]) {
        let promptDetails = object["prompt_tokens_details"] as? [String: Any]
        let completionDetails = object["completion_tokens_details"] as? [String: Any]
        self.init(
            prompt: Self.int(object["prompt_tokens"]),
            cached: Self.int(promptDetails?["cached_tokens"]),
            candidates: Self.int(object["completion_tokens"]),
            thoughts: Self.int(completionDetails?["reasoning_tokens"]),
            toolUse: 0,
            total: Self.int(object["total_tokens"]))
    }

    /// A JSON object's bytes -> usage, for the scanner.
    static func decode(_ bytes: [UInt8], openAI: Bool) -> UsageMetadata? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes), options: [])) as? [String: Any] else {
            return nil
        }
        return openAI ? UsageMetadata(openAI: object) : UsageMetadata(gemini: object)
    }

    private static func int(_ value: Any?) -> Int {
        if JSONBytes.isBoolean(value) { return 0 }
        if let number = value as? Int { return max(number, 0) }
        if let number = value as? Double, number.isFinite, number >= 0, number < 1e15 { return Int(number) }
        if let text = value as? String, let number = Int(text) { return max(number, 0) }
        return 0
    }
}
