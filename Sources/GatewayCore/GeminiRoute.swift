import Foundation

// MARK: - GeminiRoute

/// What a client request addresses, parsed from its path and query string.
///
/// Parsing is total: any path yields a route, unknown shapes simply get ``Endpoint-swift.enum/other``
/// and no model. Examples:
///
/// | path | apiVersion | model | method | endpoint |
/// |---|---|---|---|---|
/// | `/v1beta/models/gemini-2.5-flash:generateContent` | v1beta | gemini-2.5-flash | generateContent | generateContent |
/// | `/v1/models/gemini-2.5-pro:streamGenerateContent?alt=sse` | v1 | gemini-2.5-pro | streamGenerateContent | streamGenerateContent |
/// | `/v1beta/tunedModels/my-model:generateContent` | v1beta | tunedModels/my-model | generateContent | generateContent |
/// | `/v1beta/models` | v1beta | nil | nil | models.list |
/// | `/v1beta/models/gemini-2.5-flash` | v1beta | gemini-2.5-flash | nil | models.get |
/// | `/v1beta/openai/chat/completions` | v1beta | nil (in the body) | nil | openai.chat.completions |
public struct GeminiRoute: Sendable, Hashable {
    // MARK: Endpoint

    /// A low-cardinality label for the kind of call, suitable for a log column or a metric label.
    public enum Endpoint: String, Sendable, Hashable, CaseIterable {
        case generateContent
        case streamGenerateContent
        case countTokens
        case embedContent
        case batchEmbedContents
        case modelsList = "models.list"
        case modelsGet = "models.get"
        case openAIChatCompletions = "openai.chat.completions"
        case openAIEmbeddings = "openai.embeddings"
        case openAIOther = "openai.other"
        case other
    }

    // MARK: Properties

    /// The API version segment (`v1`, `v1beta`, `v1alpha`, ...), or nil when the path has none.
    public let apiVersion: String?

    /// The model addressed by the path: `gemini-2.5-flash` for `models/gemini-2.5-flash`,
    /// `tunedModels/x` for tuned models. Nil when the path names no model (use
    /// ``openAIModel(fromBody:)`` for OpenAI-compatible calls).
    public let model: String?

    /// The custom method after the colon (`generateContent`, `countTokens`, ...), or nil.
    public let method: String?

    /// True when the query string asks for server-sent events (`alt=sse`).
    public let isSSE: Bool

    /// True for Google's OpenAI-compatible endpoints under `/v1beta/openai/` or `/v1/openai/`.
    public let isOpenAI: Bool

    /// The low-cardinality label for logs and metrics.
    public let endpoint: Endpoint

    /// True for `streamGenerateContent`, with or without `alt=sse` (without it the response is a
    /// JSON array streamed element by element).
    public var isStream: Bool { method == Self.streamMethod }

    /// The model to scope cooldowns with: ``model`` or ``ModelName/unknown``.
    public var cooldownModel: String { model ?? ModelName.unknown }

    // MARK: Parsing

    /// Parses a request target such as `/v1beta/models/x:streamGenerateContent?alt=sse`.
    public init(target: String) {
        if let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) {
            self.init(path: String(target[..<mark]), query: String(target[target.utf8.index(after: mark)...]))
        } else {
            self.init(path: target, query: nil)
        }
    }

    /// Parses a request path and its query string (without the `?`).
    ///
    /// It runs on every request: it reads the path's bytes (no grapheme breaking, no array of
    /// segments), and only the parts kept become Strings.
    public init(path: String, query: String?) {
        // Foundation's decoding is costly on every request; most paths have nothing to decode.
        let decoded = Self.hasPercent(path) ? (path.removingPercentEncoding ?? path) : path
        var segments = ByteSplitter(decoded[...], separator: UInt8(ascii: "/"))
        var first = segments.next()
        if let segment = first, segment == "upload" || segment == "download" { first = segments.next() }

        isSSE = Self.queryAsksForSSE(query)

        guard let version = first, Self.isVersionSegment(version) else {
            apiVersion = nil
            model = nil
            method = nil
            isOpenAI = false
            endpoint = .other
            return
        }
        apiVersion = String(version)
        let second = segments.next()

        // OpenAI-compatible: the model is in the body.
        if second == "openai" {
            isOpenAI = true
            model = nil
            method = nil
            var rest: [Substring] = []
            while let segment = segments.next() { rest.append(segment) }
            switch rest.joined(separator: "/") {
            case "chat/completions": endpoint = .openAIChatCompletions
            case "embeddings": endpoint = .openAIEmbeddings
            default: endpoint = .openAIOther
            }
            return
        }
        isOpenAI = false

        guard let collection = second, collection == "models" || collection == "tunedModels" else {
            model = nil
            method = nil
            endpoint = .other
            return
        }
        guard let resource = segments.next() else {
            model = nil
            method = nil
            endpoint = collection == "models" ? .modelsList : .other
            return
        }
        // Deeper paths (`models/x/operations/y`) are sub-resources, not calls on the model.
        let isSubResource = segments.next() != nil

        let name: Substring
        let parsedMethod: String?
        if let colon = resource.utf8.firstIndex(of: UInt8(ascii: ":")) {
            name = resource[..<colon]
            let tail = resource[resource.utf8.index(after: colon)...]
            parsedMethod = tail.isEmpty ? nil : String(tail)
        } else {
            name = resource
            parsedMethod = nil
        }
        guard !name.isEmpty else {
            model = nil
            method = nil
            endpoint = .other
            return
        }
        model = collection == "models" ? String(name) : "tunedModels/\(name)"
        method = isSubResource ? nil : parsedMethod

        if isSubResource {
            endpoint = .other
        } else if let method {
            endpoint = Self.endpoint(forMethod: method)
        } else {
            endpoint = collection == "models" ? .modelsGet : .other
        }
    }

    // MARK: OpenAI bodies

    /// The `model` of an OpenAI-compatible request body, without a leading `models/`.
    ///
    /// Cheap: a single forward scan of the top-level object that stops at the `model` key and
    /// decodes nothing else. Returns nil for bodies that are not a JSON object, have no string
    /// `model`, or have an empty one.
    public static func openAIModel(fromBody body: [UInt8]) -> String? {
        guard let raw = JSONBytes.topLevelScalar(forKey: "model", in: body),
              var name = JSONBytes.decodeString(raw)
        else { return nil }
        if name.hasPrefix("models/") { name.removeFirst("models/".count) }
        return name.isEmpty ? nil : name
    }

    /// True when an OpenAI-compatible request body asks for a stream (`"stream": true`).
    public static func openAIStream(fromBody body: [UInt8]) -> Bool {
        JSONBytes.topLevelScalar(forKey: "stream", in: body) == Array("true".utf8)
    }

    // MARK: Helpers

    static let streamMethod = "streamGenerateContent"

    private static func endpoint(forMethod method: String) -> Endpoint {
        switch method {
        case "generateContent": .generateContent
        case "streamGenerateContent": .streamGenerateContent
        case "countTokens": .countTokens
        case "embedContent": .embedContent
        case "batchEmbedContents": .batchEmbedContents
        default: .other
        }
    }

    /// `v1`, `v1beta`, `v1alpha`, `v2`, `v1beta3`: a `v` followed by a digit.
    static func isVersionSegment(_ segment: some StringProtocol) -> Bool {
        let bytes = segment.utf8
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "v") else { return false }
        let second = bytes[bytes.index(after: bytes.startIndex)]
        return second >= UInt8(ascii: "0") && second <= UInt8(ascii: "9")
    }

    /// Whether `text` has a `%`, read as a buffer (`utf8.contains` goes byte by byte through
    /// the view's indices, several times slower).
    private static func hasPercent(_ text: String) -> Bool {
        var text = text  // a native string: `withUTF8` reads it in place
        return text.withUTF8 { $0.contains(UInt8(ascii: "%")) }
    }

    private static func queryAsksForSSE(_ query: String?) -> Bool {
        guard let query, !query.isEmpty else { return false }
        var pairs = ByteSplitter(query[...], separator: UInt8(ascii: "&"))
        while let pair = pairs.next() {
            guard let equals = pair.utf8.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let name = pair[..<equals]
            guard name == "alt" || name == "$alt" else { continue }
            let rawValue = String(pair[pair.utf8.index(after: equals)...])
            let value = rawValue.contains("%") ? (rawValue.removingPercentEncoding ?? rawValue) : rawValue
            if value.lowercased() == "sse" { return true }
        }
        return false
    }
}

/// The non-empty pieces of a string between separator bytes, read byte by byte: no grapheme
/// breaking and no array, for the paths and queries read on every request.
public struct ByteSplitter: IteratorProtocol {
    private let text: Substring
    private let separator: UInt8
    /// Where the next search starts, in UTF-8 bytes from the start of `text`.
    private var offset = 0

    public init(_ text: Substring, separator: UInt8) {
        self.text = text
        self.separator = separator
    }

    public mutating func next() -> Substring? {
        let bytes = text.utf8
        let separator = self.separator
        let offset = self.offset
        // The bytes in place (a native string's are), else a copy.
        let found = bytes.withContiguousStorageIfAvailable { Self.search($0, from: offset, separator: separator) }
            ?? Array(bytes).withUnsafeBufferPointer { Self.search($0, from: offset, separator: separator) }
        guard let found else {
            self.offset = bytes.count
            return nil
        }
        self.offset = found.upperBound
        let start = bytes.index(bytes.startIndex, offsetBy: found.lowerBound)
        return text[start..<bytes.index(start, offsetBy: found.count)]
    }

    /// The next piece at or after `offset`: its byte range, or nil if only separators are left.
    private static func search(_ buffer: UnsafeBufferPointer<UInt8>, from offset: Int, separator: UInt8) -> Range<Int>? {
        var index = offset
        while index < buffer.count, buffer[index] == separator { index += 1 }
        guard index < buffer.count else { return nil }
        let start = index
        while index < buffer.count, buffer[index] != separator { index += 1 }
        return start..<index
    }
}
