import Foundation

// MARK: - ProjectResource

/// Resources that belong to the Google project of the key that created them: `files/*`,
/// `cachedContents/*`, `batches/*`, `tunedModels/*`, and resumable upload sessions (named
/// `uploads/ID` here, after the `upload_id` Google hands out). Follow-up calls that name one must
/// use the same key (an upload session also the same upstream), so the gateway remembers who
/// created what. These helpers find the names in paths, bodies and answers; all are total (any
/// input yields a value, nothing traps).
public enum ProjectResource {
    /// The collections whose members are bound to a project.
    public static let collections: Set<String> = ["files", "cachedContents", "batches", "tunedModels"]

    /// The prefix of an upload session's name.
    public static let uploadPrefix = "uploads/"

    // MARK: Requests

    /// The resource a request path addresses: `files/abc` for `/v1beta/files/abc`,
    /// `/v1beta/files/abc:download` or `/download/v1beta/files/abc:download`; `batches/7` for
    /// `/v1beta/batches/7:cancel`; `tunedModels/m` for `/v1beta/tunedModels/m:generateContent`.
    /// Nil for collections themselves (`/v1beta/files`) and everything else.
    public static func named(inPath path: String) -> String? {
        var segments = path.split(separator: "/", omittingEmptySubsequences: true)
        if let first = segments.first, first == "upload" || first == "download" { segments.removeFirst() }
        guard segments.count >= 3, GeminiRoute.isVersionSegment(segments[0]), collections.contains(String(segments[1])) else { return nil }
        let id = segments[2].split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard !id.isEmpty else { return nil }
        return "\(segments[1])/\(id)"
    }

    /// The upload session a request continues: `uploads/ID` for a POST to
    /// `/upload/v1beta/files?upload_id=ID&upload_protocol=resumable`.
    public static func uploadSession(path: String, query: String?) -> String? {
        guard path.hasPrefix("/upload/"), let id = queryValue("upload_id", in: query), !id.isEmpty else { return nil }
        return uploadPrefix + id
    }

    /// Whether a request makes a new project-bound resource whose name comes back in the answer:
    /// a file upload (simple, multipart, or the start and the last chunk of a resumable one), a
    /// cached content, a batch, a tuned model.
    public static func creates(method: String, path: String) -> Bool {
        guard method == "POST" else { return false }
        if path.hasPrefix("/upload/") { return true }
        // Every request asks this: rule out the usual ones by their last bytes, splitting nothing.
        let collection = endsWith(path, "/cachedContents") || endsWith(path, "/tunedModels")
        let batch = endsWith(path, ":batchGenerateContent") || endsWith(path, ":asyncBatchEmbedContent")
        guard collection || batch else { return false }
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count >= 2, GeminiRoute.isVersionSegment(segments[0]) else { return false }
        return collection ? segments.count == 2 : segments.count == 3 && segments[1] == "models"
    }

    private static func endsWith(_ text: String, _ suffix: StaticString) -> Bool {
        let count = suffix.utf8CodeUnitCount
        let bytes = text.utf8
        guard bytes.count >= count else { return false }
        var index = bytes.index(bytes.endIndex, offsetBy: -count)
        for offset in 0..<count {
            guard bytes[index] == suffix.utf8Start[offset] else { return false }
            index = bytes.index(after: index)
        }
        return true
    }

    /// The project-bound resources a request body refers to: file URIs
    /// (`https://…/v1beta/files/abc` or `files/abc`) and cached contents (`cachedContents/xyz`).
    /// Only names preceded by `/` or `"` count (so `profiles/x` is not `files/x`); duplicates are
    /// dropped. One pass over the bytes per collection.
    public static func referenced(inBody body: UnsafeRawBufferPointer) -> [String] {
        var names: [String] = []
        for collection in referenceCollections {
            var index = 0
            let needle = collection.needle
            while let found = find(needle, in: body, from: index) {
                index = found + needle.count
                guard found > 0, body[found - 1] == UInt8(ascii: "/") || body[found - 1] == UInt8(ascii: "\"") else { continue }
                var end = index
                while end < body.count, isIDByte(body[end]) { end += 1 }
                guard end > index else { continue }
                let name = collection.name + "/" + String(decoding: UnsafeRawBufferPointer(rebasing: body[index..<end]), as: UTF8.self)
                if !names.contains(name) { names.append(name) }
                index = end
            }
        }
        return names
    }

    // MARK: Answers

    /// The names of the resources a creating call's answer carries: the top-level `name`
    /// (a cached content, a batch operation, a tuned model operation's metadata aside) and
    /// `file.name` (an upload). Only names in ``collections`` count.
    public static func created(inAnswer body: [UInt8]) -> [String] {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return [] }
        var names: [String] = []
        if let name = object["name"] as? String { names.append(name) }
        if let file = object["file"] as? [String: Any], let name = file["name"] as? String { names.append(name) }
        if let metadata = object["metadata"] as? [String: Any], let name = metadata["tunedModel"] as? String { names.append(name) }
        return names.filter { name in
            guard let slash = name.firstIndex(of: "/") else { return false }
            return collections.contains(String(name[..<slash])) && name.index(after: slash) < name.endIndex
        }
    }

    /// The `upload_id` of an upload URL (`x-goog-upload-url`).
    public static func uploadID(inURL url: String) -> String? {
        guard let mark = url.firstIndex(of: "?") else { return nil }
        return queryValue("upload_id", in: String(url[url.index(after: mark)...]))
    }

    /// The path and query of an upload URL that the client should send to the gateway instead:
    /// the upstream's base path (a relay's `/prefix`) is taken off, scheme and host are replaced
    /// by `publicBase`.
    public static func rewrite(uploadURL url: String, upstreamBase: String, publicBase: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let afterScheme = url[schemeEnd.upperBound...]
        guard let pathStart = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return nil }
        var pathAndQuery = String(afterScheme[pathStart...])
        if let baseSchemeEnd = upstreamBase.range(of: "://"),
           let basePathStart = upstreamBase[baseSchemeEnd.upperBound...].firstIndex(of: "/") {
            var basePath = String(upstreamBase[basePathStart...])
            while basePath.hasSuffix("/") { basePath.removeLast() }
            if !basePath.isEmpty, pathAndQuery.hasPrefix(basePath + "/") { pathAndQuery.removeFirst(basePath.count) }
        }
        var base = publicBase
        while base.hasSuffix("/") { base.removeLast() }
        return base + pathAndQuery
    }

    // MARK: Helpers

    private struct Reference {
        let name: String
        let needle: [UInt8]
    }

    private static let referenceCollections = ["files", "cachedContents"].map { Reference(name: $0, needle: Array("\($0)/".utf8)) }

    /// Resource ids: lowercase letters, digits, dashes (Google's), plus upper case and `_` for
    /// safety; anything else ends the id.
    @inline(__always)
    private static func isIDByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D
            || (byte >= 0x41 && byte <= 0x5A) || byte == 0x5F
    }

    private static func find(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        var index = start
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first {
                var matched = 1
                while matched < needle.count, haystack[index + matched] == needle[matched] { matched += 1 }
                if matched == needle.count { return index }
            }
            index += 1
        }
        return nil
    }

    private static func queryValue(_ name: String, in query: String?) -> String? {
        guard let query, !query.isEmpty else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == name else { continue }
            return String(parts[1]).removingPercentEncoding ?? String(parts[1])
        }
        return nil
    }
}
