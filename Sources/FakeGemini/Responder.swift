import Foundation
import Hummingbird
import NIOCore

/// Per-request context: Hummingbird's basics plus the connection, so `.closeConnection` can close it.
struct FakeContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    var maxUploadSize: Int { 1 << 30 }
}

/// Thrown to abort a connection on purpose (mid-body or before answering). Hummingbird closes the
/// connection when writing a response fails, without ending the chunked body.
enum FakeAbort: Error {
    case streamAborted
    case connectionClosed
}

/// What the rules match on.
struct RequestFacts: Sendable {
    var httpMethod: String
    var path: String
    var key: String?
    var model: String?
    var rpcMethod: String?
    var bodyText: String
}

/// The route of a request, parsed from its path.
enum Route: Equatable {
    /// `/{version}/models` or `/{version}/tunedModels`
    case listModels(version: String)
    /// `/{version}/models/{model}`
    case getModel(version: String, model: String)
    /// `/{version}/models/{model}:{method}`
    case rpc(version: String, model: String, method: String)
    case openAIChat
    case openAIEmbeddings
    case openAIListModels
    case openAIGetModel(String)
    case unknown

    static let versions: Set<String> = ["v1", "v1beta", "v1alpha"]

    init(path: String) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
        guard parts.count >= 2, Self.versions.contains(parts[0]) else {
            self = .unknown
            return
        }
        let version = parts[0]
        switch parts[1] {
        case "models", "tunedModels":
            if parts.count == 2 {
                self = .listModels(version: version)
            } else if parts.count == 3 {
                let last = parts[2]
                if let colon = last.firstIndex(of: ":") {
                    self = .rpc(version: version, model: String(last[..<colon]), method: String(last[last.index(after: colon)...]))
                } else {
                    self = .getModel(version: version, model: last)
                }
            } else {
                self = .unknown
            }
        case "openai":
            let rest = Array(parts.dropFirst(2))
            if rest == ["chat", "completions"] {
                self = .openAIChat
            } else if rest == ["embeddings"] {
                self = .openAIEmbeddings
            } else if rest == ["models"] {
                self = .openAIListModels
            } else if rest.count >= 2, rest[0] == "models" {
                let name = rest.dropFirst().joined(separator: "/")
                self = .openAIGetModel(name.hasPrefix("models/") ? String(name.dropFirst(7)) : name)
            } else {
                self = .unknown
            }
        default:
            self = .unknown
        }
    }

    var isOpenAI: Bool {
        switch self {
        case .openAIChat, .openAIEmbeddings, .openAIListModels, .openAIGetModel: return true
        default: return false
        }
    }
}

/// HTTPTypes' field types, reached through the `HTTPFields` that Hummingbird re-exports (the target
/// does not depend on swift-http-types directly).
typealias Field = HTTPFields.Element
typealias FieldName = HTTPFields.Element.Name

struct FakeResponder: HTTPResponder {
    typealias Context = FakeContext
    let core: Core

    func respond(to request: Request, context: FakeContext) async throws -> Response {
        var request = request
        let bodyBuffer = try await request.collectBody(upTo: context.maxUploadSize)
        let body = [UInt8](buffer: bodyBuffer)

        let target = request.head.path ?? "/"
        let path: String
        let query: String
        if let q = target.firstIndex(of: "?") {
            path = String(target[..<q])
            query = String(target[target.index(after: q)...])
        } else {
            path = target
            query = ""
        }
        let route = Route(path: path)

        var headers: [FakeGemini.Header] = []
        if let authority = request.head.authority {
            headers.append(.init(name: "Host", value: authority))
        }
        for field in request.headers {
            headers.append(.init(name: field.name.rawName, value: field.value))
        }

        // The key: x-goog-api-key, then ?key=, then Authorization: Bearer.
        var key: String?
        var keySource: FakeGemini.KeySource?
        if let value = request.headers[FieldName("x-goog-api-key")!], !value.isEmpty {
            key = value
            keySource = .header
        } else if let value = parseQuery(query).first(where: { $0.0 == "key" })?.1, !value.isEmpty {
            key = value
            keySource = .query
        } else if let auth = request.headers[.authorization], auth.lowercased().hasPrefix("bearer ") {
            let token = String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces)
            if !token.isEmpty {
                key = token
                keySource = .bearer
            }
        }

        var model: String?
        var rpcMethod: String?
        var openAIStream = false
        var openAIInputs = 1
        switch route {
        case .rpc(_, let m, let method):
            model = m
            rpcMethod = method
        case .getModel(_, let m):
            model = m
        case .openAIChat, .openAIEmbeddings:
            let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
            if let m = object?["model"] as? String {
                model = m.hasPrefix("models/") ? String(m.dropFirst(7)) : m
            }
            openAIStream = (object?["stream"] as? Bool) == true
            openAIInputs = (object?["input"] as? [Any])?.count ?? 1
        case .openAIGetModel(let m):
            model = m
        default:
            break
        }

        let now = Date()
        let instant = ContinuousClock.now
        let (index, settings) = core.record { index in
            FakeGemini.ReceivedRequest(
                index: index,
                method: request.method.rawValue,
                path: path,
                query: query,
                headers: headers,
                body: body,
                key: key,
                keySource: keySource,
                model: model,
                rpcMethod: rpcMethod,
                time: now,
                instant: instant
            )
        }

        var exchange = Exchange(
            core: core,
            index: index,
            settings: settings,
            route: route,
            httpMethod: request.method.rawValue,
            query: query,
            body: body,
            openAIStream: openAIStream,
            openAIInputs: openAIInputs,
            model: model,
            channel: context.channel
        )
        if let key {
            exchange.extraHeaders.append(("x-fake-key", String(key.suffix(4))))
        }

        // Auth, as Google does it.
        if key == nil, settings.requireKey, !ResourceStore.isUploadChunk(path: path, query: query) {
            return try await exchange.render(.fixture("403-unregistered-caller"))
        }
        if !route.isOpenAI, settings.rejectAuthorizationOnNativePaths, request.headers[.authorization] != nil {
            return try await exchange.render(.fixture("401-unauthenticated"))
        }

        let facts = RequestFacts(
            httpMethod: request.method.rawValue,
            path: path,
            key: key,
            model: model,
            rpcMethod: rpcMethod,
            bodyText: String(decoding: body, as: UTF8.self)
        )
        let reply = core.reply(for: facts)
        if reply == nil,
           let answer = core.resources.answer(for: exchange, path: path, headers: request.headers, key: key, host: request.head.authority) {
            return answer
        }
        return try await exchange.render(reply ?? .ok)
    }
}

/// One request being answered.
struct Exchange: Sendable {
    let core: Core
    let index: Int
    let settings: FakeGemini.Settings
    let route: Route
    let httpMethod: String
    let query: String
    let body: [UInt8]
    /// `"stream": true` in an OpenAI chat request body.
    let openAIStream: Bool
    /// Number of inputs of an OpenAI embeddings request.
    let openAIInputs: Int
    let model: String?
    let channel: any Channel
    var extraHeaders: [(String, String)] = []

    static let jsonType = "application/json; charset=UTF-8"

    func render(_ reply: FakeGemini.Reply) async throws -> Response {
        switch reply {
        case .ok:
            return try await defaultAnswer()

        case .fixture(let name, let arrayWrapped):
            guard let bytes = FixtureStore.all[name], let status = FixtureStore.status(of: name) else {
                return plain(500, "FakeGemini: no fixture named '\(name)'. Known: \(FixtureStore.all.keys.sorted().joined(separator: ", "))\n", type: "text/plain; charset=utf-8")
            }
            var buffer = ByteBuffer()
            if arrayWrapped { buffer.writeString("[") }
            buffer.writeBytes(bytes)
            if arrayWrapped { buffer.writeString("]") }
            return response(status, Self.jsonType, body: .init(byteBuffer: buffer))

        case .status(let status, let body, let contentType):
            return plain(status, body, type: contentType)

        case .sse(let events, let interval, let failAfter, let framing, let gate):
            return sse(events, interval: interval, failAfter: failAfter, framing: framing ?? settings.sseFraming, gate: gate)

        case .jsonStream(let elements, let interval, let failAfter, let gate):
            return jsonStream(elements, interval: interval, failAfter: failAfter, gate: gate)

        case .delay(let duration, let then):
            try await Task.sleep(for: duration)
            return try await render(then)

        case .headers(let headers, let then):
            var inner = self
            inner.extraHeaders.append(contentsOf: headers)
            return try await inner.render(then)

        case .closeConnection:
            // Close the socket without a byte of answer. The handler then fails (its write hits a
            // closed channel) and Hummingbird drops the connection.
            try? await channel.close()
            throw FakeAbort.connectionClosed
        }
    }

    // MARK: Default answers

    func defaultAnswer() async throws -> Response {
        let s = settings
        switch route {
        case .listModels:
            guard httpMethod == "GET" else { return notFound() }
            return json(DefaultAnswers.modelList(settings: s))

        case .getModel(let version, let m):
            guard httpMethod == "GET" else { return notFound() }
            guard s.models.contains(m) else {
                return json(DefaultAnswers.modelNotFound(m, version: version, method: "get"), status: 404)
            }
            return json(DefaultAnswers.modelGet(m))

        case .rpc(_, let m, let method):
            guard httpMethod == "POST" else { return notFound() }
            switch method {
            case "generateContent":
                return json(DefaultAnswers.generateContent(model: m, requestIndex: index, settings: s))
            case "streamGenerateContent":
                let events = DefaultAnswers.streamEvents(model: m, requestIndex: index, count: s.streamEventCount, settings: s)
                if parseQuery(query).contains(where: { $0.0 == "alt" && $0.1 == "sse" }) {
                    return sse(events, interval: s.streamInterval, failAfter: nil, framing: s.sseFraming, gate: nil)
                }
                return jsonStream(events, interval: s.streamInterval, failAfter: nil, gate: nil)
            case "countTokens":
                return json(DefaultAnswers.countTokens(settings: s))
            case "embedContent":
                return json(DefaultAnswers.embedContent(settings: s))
            case "batchEmbedContents":
                let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
                let count = (object?["requests"] as? [Any])?.count ?? 1
                return json(DefaultAnswers.batchEmbedContents(count: count, settings: s))
            default:
                return notFound()
            }

        case .openAIChat:
            guard httpMethod == "POST" else { return notFound() }
            let m = model ?? "gemini-2.5-flash"
            if openAIStream {
                var events = DefaultAnswers.chatCompletionChunks(model: m, requestIndex: index, count: s.streamEventCount, settings: s)
                events.append("[DONE]")
                return sse(events, interval: s.streamInterval, failAfter: nil, framing: .lf, gate: nil)
            }
            return json(DefaultAnswers.chatCompletion(model: m, requestIndex: index, settings: s))

        case .openAIEmbeddings:
            guard httpMethod == "POST" else { return notFound() }
            return json(DefaultAnswers.openAIEmbeddings(model: model ?? "gemini-embedding-001", inputs: openAIInputs, settings: s))

        case .openAIListModels:
            guard httpMethod == "GET" else { return notFound() }
            return json(DefaultAnswers.openAIModelList(settings: s))

        case .openAIGetModel(let m):
            guard httpMethod == "GET" else { return notFound() }
            guard s.models.contains(m) else {
                return json(DefaultAnswers.modelNotFound(m, version: "v1beta", method: "get"), status: 404)
            }
            return json(DefaultAnswers.openAIModel(m).text)

        case .unknown:
            return notFound()
        }
    }

    // MARK: Building responses

    func notFound() -> Response {
        json(DefaultAnswers.pathNotFound(route == .unknown ? "unknown path" : "\(httpMethod) not supported here"), status: 404)
    }

    func json(_ text: String, status: Int = 200) -> Response {
        plain(status, text, type: Self.jsonType)
    }

    func plain(_ status: Int, _ text: String, type: String) -> Response {
        response(status, type, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func response(_ status: Int, _ contentType: String, body: ResponseBody) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = contentType
        fields[FieldName("x-fake-request")!] = String(index)
        for (name, value) in extraHeaders {
            if let fieldName = FieldName(name) {
                fields.append(Field(name: fieldName, value: value))
            }
        }
        return Response(status: .init(code: status), headers: fields, body: body)
    }

    func sse(_ events: [String], interval: Duration, failAfter: Int?, framing: FakeGemini.SSEFraming, gate: FakeGemini.StreamGate?) -> Response {
        let pieces = events.map { "data: " + $0 + framing.terminator }
        return streamed(pieces, closing: nil, contentType: "text/event-stream", interval: interval, failAfter: failAfter, gate: gate)
    }

    func jsonStream(_ elements: [String], interval: Duration, failAfter: Int?, gate: FakeGemini.StreamGate?) -> Response {
        let pieces = elements.enumerated().map { i, element in (i == 0 ? "[" : ",\r\n") + element }
        return streamed(pieces, closing: elements.isEmpty ? "[]" : "]", contentType: Self.jsonType, interval: interval, failAfter: failAfter, gate: gate)
    }

    /// A chunked body written piece by piece, each flushed and logged as an event. `failAfter: n`
    /// writes n pieces, waits one more `interval` (as if the next event were coming) and then throws,
    /// which makes Hummingbird close the connection (FIN) before the terminating zero-length chunk: the
    /// client sees a truncated body. (An HTTP client may drop body bytes it had received but not yet
    /// handed to its reader when it sees the connection end; AsyncHTTPClient does. The wait gives a
    /// reader the chance to take the last event first.)
    func streamed(
        _ pieces: [String],
        closing: String?,
        contentType: String,
        interval: Duration,
        failAfter: Int?,
        gate: FakeGemini.StreamGate?
    ) -> Response {
        let core = self.core
        let index = self.index
        let body = ResponseBody { writer in
            do {
                for (i, piece) in pieces.enumerated() {
                    if i > 0 { try await Task.sleep(for: interval) }
                    if let failAfter, i >= failAfter { throw FakeAbort.streamAborted }
                    if let gate { try await gate.acquire() }
                    try await writer.write(ByteBuffer(string: piece))
                    core.logEvent(request: index, event: i)
                }
                if let failAfter, failAfter >= 0 {
                    // failAfter >= pieces.count: everything was sent, but the body still never ends.
                    try await Task.sleep(for: interval)
                    throw FakeAbort.streamAborted
                }
                if let closing { try await writer.write(ByteBuffer(string: closing)) }
                try await writer.finish(nil)
                core.logStreamEnd(request: index, .completed)
            } catch FakeAbort.streamAborted {
                core.logStreamEnd(request: index, .aborted)
                throw FakeAbort.streamAborted
            } catch {
                core.logStreamEnd(request: index, .clientGone)
                throw error
            }
        }
        return response(200, contentType, body: body)
    }
}
