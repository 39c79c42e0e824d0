import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// A running `serve` process, its port, and the requests the CLI tests send it.
struct ServedGateway {
    let process: ServeProcess
    let port: Int

    static func start(store: SharedDatabase, in ws: Workspace) async throws -> ServedGateway {
        let port = try freePort()
        let process = try await ServeProcess(
            ["serve", "--store", store.url, "--host", "127.0.0.1", "--port", "\(port)", "--metrics-public"],
            in: ws.path)
        #expect(await process.waitForStderr(timeout: patience) { $0.contains("Server started") } != nil, "\(process.stderr)")
        return ServedGateway(process: process, port: port)
    }

    func generate(token: String) async throws -> Int {
        try await generateWithID(token: token).status
    }

    func generateWithID(token: String, model: String = "gemini-2.5-flash") async throws -> (status: Int, id: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1beta/models/\(model):generateContent")
        request.method = .POST
        request.headers.add(name: "x-goog-api-key", value: token)
        request.body = .bytes(ByteBuffer(string: #"{"contents":[{"parts":[{"text":"hi"}]}]}"#))
        let response = try await Self.execute(request, timeout: .seconds(60))
        _ = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), response.headers.first(name: "x-gateway-request-id") ?? "")
    }

    /// The request, sent once more if the connection it went out on was reset: a kept-alive
    /// connection the gateway closes for idleness (while a test waits out an outage) at the
    /// moment the client reuses it. Such a request never reached the gateway's handler.
    static func execute(_ request: HTTPClientRequest, timeout: TimeAmount) async throws -> HTTPClientResponse {
        do {
            return try await HTTPClient.shared.execute(request, timeout: timeout)
        } catch where wasReset(error) {
            return try await HTTPClient.shared.execute(request, timeout: timeout)
        }
    }

    /// The connection a request went out on was reset or closed by the gateway.
    private static func wasReset(_ error: any Error) -> Bool {
        (error as? IOError)?.errnoCode == ECONNRESET || (error as? HTTPClientError) == .remoteConnectionClosed
    }

    /// Any request; `token` nil sends none.
    func send(
        _ path: String, method: HTTPMethod = .POST, token: String?, headers: [(String, String)] = [], body: String? = nil
    ) async throws -> (status: Int, headers: HTTPHeaders, body: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let token { request.headers.add(name: "x-goog-api-key", value: token) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await Self.execute(request, timeout: .seconds(60))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return (Int(response.status.code), response.headers, text)
    }

    /// The value of one sample line of `/metrics`, nil when absent.
    func metric(_ sample: String) async throws -> Double? {
        let response = try await Self.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 16 << 20))
        return text.split(separator: "\n").first { $0.hasPrefix(sample + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }
}
