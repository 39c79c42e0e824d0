import AsyncHTTPClient
import FakeGemini
import Foundation
import Testing
import TestSupport

/// Starts a fake, runs `body` against it (bounded by a timeout) and always stops the fake.
func withFake(
    settings: FakeGemini.Settings = .init(),
    timeout: Double = 120,
    _ body: @escaping @Sendable (FakeGemini) async throws -> Void
) async throws {
    let fake = try await withTimeout(timeout) { try await FakeGemini.start(settings: settings) }
    do {
        try await withTimeout(timeout) { try await body(fake) }
    } catch {
        await fake.stop()
        throw error
    }
    await fake.stop()
}

let testKey = "AIzaFAKE-test-key-1234"

func makeRequest(
    _ fake: FakeGemini,
    _ path: String,
    method: String = "POST",
    key: String? = testKey,
    headers: [(String, String)] = [],
    body: String? = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
) -> HTTPClientRequest {
    var request = HTTPClientRequest(url: fake.baseURL + path)
    request.method = .init(rawValue: method)
    if let key { request.headers.add(name: "x-goog-api-key", value: key) }
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body, method != "GET" {
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(Array(body.utf8))
    }
    return request
}

/// Sends a request and collects the whole answer.
func send(
    _ fake: FakeGemini,
    _ path: String,
    method: String = "POST",
    key: String? = testKey,
    headers: [(String, String)] = [],
    body: String? = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
    timeout: Duration = .seconds(60)
) async throws -> Answer {
    let request = makeRequest(fake, path, method: method, key: key, headers: headers, body: body)
    let response = try await HTTPClient.shared.execute(request, timeout: .init(timeout))
    var bytes: [UInt8] = []
    for try await chunk in response.body {
        bytes.append(contentsOf: chunk.readableBytesView)
    }
    return Answer(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) }, body: bytes)
}

/// Splits an SSE body into the JSON payloads of its `data:` lines.
func sseEvents(_ text: String, terminator: String = "\r\n\r\n") -> [String] {
    text.components(separatedBy: terminator).filter { !$0.isEmpty }.map { event in
        event.hasPrefix("data: ") ? String(event.dropFirst(6)) : event
    }
}

func parseJSON(_ text: String) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(object as? [String: Any], "not a JSON object: \(text)")
}

/// Reads a streamed SSE answer, noting when each complete event arrived on `ContinuousClock`.
/// Returns the events, their arrival instants, and the error that ended the body, if any.
struct StreamRead: Sendable {
    var status: Int
    var events: [String]
    var arrivals: [ContinuousClock.Instant]
    var failure: String?
}

func readStream(
    _ request: HTTPClientRequest,
    terminator: String = "\r\n\r\n",
    onEvent: @Sendable (Int) async -> Void = { _ in }
) async throws -> StreamRead {
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
    var read = StreamRead(status: Int(response.status.code), events: [], arrivals: [], failure: nil)
    var pending = ""
    do {
        for try await chunk in response.body {
            pending += String(decoding: chunk.readableBytesView, as: UTF8.self)
            while let range = pending.range(of: terminator) {
                let event = String(pending[..<range.lowerBound])
                pending = String(pending[range.upperBound...])
                read.events.append(event.hasPrefix("data: ") ? String(event.dropFirst(6)) : event)
                read.arrivals.append(.now)
                await onEvent(read.events.count - 1)
            }
        }
    } catch {
        read.failure = "\(error)"
    }
    return read
}
