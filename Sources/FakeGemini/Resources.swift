import Foundation
import Hummingbird
import Synchronization

/// Google's project-bound resources, as far as a gateway must respect them: files (through the
/// resumable upload: `start`, then `upload` chunks at the returned URL, the last with
/// `finalize`), cached contents and batches. Each belongs to the key that created it (every key is
/// its own project here); any other key gets Google's 403 PERMISSION_DENIED, also when it names
/// such a resource in a generateContent body. Fakes started with `sharingResourcesWith:` share
/// the resources (relays in front of one Google); upload sessions stay with the fake that
/// started them, whose address their upload URL names.
final class ResourceStore: Sendable {
    /// Resource name (`files/x`, `cachedContents/x`, `batches/x`) -> owning key.
    final class Owners: Sendable {
        let table = Mutex<(owners: [String: String], nextID: Int)>(([:], 0))
    }

    struct Upload: Sendable {
        var key: String
        var displayName: String?
        var mimeType: String?
        var received = 0
    }

    private let uploads = Mutex<[String: Upload]>([:])
    let shared: Owners

    init(sharing shared: Owners = Owners()) {
        self.shared = shared
    }

    /// The owner of each resource created so far, by name (for tests).
    var owners: [String: String] { shared.table.withLock { $0.owners } }

    /// True for a chunk of a resumable upload, which Google accepts without a key.
    static func isUploadChunk(path: String, query: String) -> Bool {
        path.hasPrefix("/upload/") && parseQuery(query).contains { $0.0 == "upload_id" }
    }

    /// The answer for a resource call, or nil when the request is not one (nor names one).
    func answer(for exchange: Exchange, path: String, headers: HTTPFields, key: String?, host: String?) -> Response? {
        let parts = path.split(separator: "/").map(String.init)
        let base = "http://\(host ?? "127.0.0.1")"

        if parts.first == "upload" {
            return upload(exchange, parts: Array(parts.dropFirst()), headers: headers, key: key, base: base)
        }
        guard parts.count >= 2, Route.versions.contains(parts[0]), let key else { return nil }
        let method = exchange.httpMethod
        switch (parts.count, parts[1]) {
        case (2, "files") where method == "GET":
            let names = shared.table.withLock { $0.owners.filter { $0.key.hasPrefix("files/") && $0.value == key }.keys.sorted() }
            return exchange.json(JSONText.object([("files", .array(names.map { Self.file($0, base: base, upload: nil) }))]).text)
        case (2, "cachedContents") where method == "POST":
            let name = create("cachedContents", key: key)
            return exchange.json(JSONText.object([
                ("name", .string(name)), ("model", .string("models/gemini-2.5-flash")),
                ("usageMetadata", .object([("totalTokenCount", .int(1234))])),
            ]).text)
        case (3, "files"), (3, "cachedContents"), (3, "batches"):
            let id = parts[2].split(separator: ":", maxSplits: 1)[0]
            let name = "\(parts[1])/\(id)"
            guard shared.table.withLock({ $0.owners[name] }) == key else { return Self.denied(exchange, name) }
            if method == "DELETE" {
                _ = shared.table.withLock { $0.owners.removeValue(forKey: name) }
                return exchange.json("{}")
            }
            if parts[1] == "files" { return exchange.json(Self.file(name, base: base, upload: nil).text) }
            return exchange.json(JSONText.object([("name", .string(name))]).text)
        case (3, "models") where parts[2].hasSuffix(":batchGenerateContent") && method == "POST":
            let name = create("batches", key: key)
            return exchange.json(JSONText.object([
                ("name", .string(name)),
                ("metadata", .object([("name", .string(name)), ("state", .string("BATCH_STATE_PENDING"))])),
            ]).text)
        case (3, "models") where method == "POST":
            // A call naming a file or cached content of another project is refused.
            let text = String(decoding: exchange.body, as: UTF8.self)
            let foreign = shared.table.withLock { state in
                state.owners.first { name, owner in owner != key && text.contains(name) }?.key
            }
            return foreign.map { Self.denied(exchange, $0) }
        default:
            return nil
        }
    }

    // MARK: Resumable upload

    private func upload(_ exchange: Exchange, parts: [String], headers: HTTPFields, key: String?, base: String) -> Response? {
        guard parts.count == 2, Route.versions.contains(parts[0]), parts[1] == "files", exchange.httpMethod == "POST" else { return nil }
        let command = (headers[Self.command] ?? "").lowercased()
        let query = parseQuery(exchange.query)
        if let id = query.first(where: { $0.0 == "upload_id" })?.1 {
            // A chunk: no key needed, the upload id is the credential.
            let offset = headers[Self.offset].flatMap(Int.init) ?? 0
            enum Chunk { case refused(String), active, final(Upload, String) }
            let result: Chunk = uploads.withLock { uploads in
                guard var upload = uploads[id] else { return .refused("Upload session not found") }
                guard offset == upload.received else { return .refused("Offset \(offset) does not match \(upload.received)") }
                upload.received += exchange.body.count
                uploads[id] = upload
                guard command.contains("finalize") else { return .active }
                uploads[id] = nil
                return .final(upload, create("files", key: upload.key))
            }
            switch result {
            case .refused(let message):
                return exchange.json(DefaultAnswers.envelope(code: 400, message: message, status: "INVALID_ARGUMENT"), status: 400)
            case .active:
                var inner = exchange
                inner.extraHeaders.append(("x-goog-upload-status", "active"))
                return inner.json("")
            case .final(let upload, let name):
                var inner = exchange
                inner.extraHeaders.append(("x-goog-upload-status", "final"))
                return inner.json(JSONText.object([("file", Self.file(name, base: base, upload: upload))]).text)
            }
        }
        guard let key, command == "start", (headers[Self.protocolName] ?? "").lowercased() == "resumable" else {
            return exchange.json(DefaultAnswers.envelope(code: 400, message: "Only the resumable upload protocol is faked.", status: "INVALID_ARGUMENT"), status: 400)
        }
        let metadata = (try? JSONSerialization.jsonObject(with: Data(exchange.body))) as? [String: Any]
        let file = metadata?["file"] as? [String: Any]
        let id = "upload-\(UInt64.random(in: 0...UInt64.max))"
        uploads.withLock { uploads in
            uploads[id] = Upload(
                key: key, displayName: (file?["displayName"] ?? file?["display_name"]) as? String,
                mimeType: headers[Self.contentType]
            )
        }
        var inner = exchange
        inner.extraHeaders.append(("x-goog-upload-url", "\(base)/upload/\(parts[0])/files?upload_id=\(id)&upload_protocol=resumable"))
        inner.extraHeaders.append(("x-goog-upload-status", "active"))
        return inner.json("")
    }

    // MARK: Helpers

    private func create(_ collection: String, key: String) -> String {
        shared.table.withLock { state in
            state.nextID += 1
            let name = "\(collection)/fake\(state.nextID)"
            state.owners[name] = key
            return name
        }
    }

    private static func file(_ name: String, base: String, upload: Upload?) -> JSONText {
        .object([
            ("name", .string(name)),
            ("displayName", upload?.displayName.map { .string($0) } ?? .null),
            ("mimeType", .string(upload?.mimeType ?? "application/octet-stream")),
            ("sizeBytes", .string(String(upload?.received ?? 0))),
            ("uri", .string("\(base)/v1beta/\(name)")),
            ("state", .string("ACTIVE")),
        ])
    }

    private static func denied(_ exchange: Exchange, _ name: String) -> Response {
        exchange.json(DefaultAnswers.envelope(
            code: 403, message: "You do not have permission to access the \(name) or it may not exist.", status: "PERMISSION_DENIED"
        ), status: 403)
    }

    static let command = HTTPFields.Element.Name("x-goog-upload-command")!
    static let offset = HTTPFields.Element.Name("x-goog-upload-offset")!
    static let protocolName = HTTPFields.Element.Name("x-goog-upload-protocol")!
    static let contentType = HTTPFields.Element.Name("x-goog-upload-header-content-type")!
}
