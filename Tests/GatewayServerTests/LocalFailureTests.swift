import FakeGemini
import Foundation
import GatewayCore
@testable import GatewayHTTP
@testable import GatewayServer
import GRDB
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

/// A shortage of the gateway's own (descriptors, memory) is not an upstream's failure (how each
/// error is classified: `TransportErrorTests`).
@Suite struct LocalFailureTests {
    let a = testKey("a"), b = testKey("b")

    /// The gateway's own sockets run out: the client is told to come back (503, Retry-After),
    /// no other pair is tried, and neither key nor upstream is charged.
    @Test func outOfDescriptorsIs503WithRetryAfterAndChargesNobody() async throws {
        let transport = ShortOfDescriptors()
        try await withGateway(keys: [a, b], fakes: 2, transport: transport) { gateway, _ in
            let answer = try await gateway.generate()
            #expect(answer.status == 503, "\(answer.text)")
            #expect(answer.header("retry-after") == "1")
            #expect(answer.text.contains(#""status":"UNAVAILABLE""#))
            #expect(transport.tries == 1, "another try would meet the same shortage")
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows[0]["outcome"] as String? == "no_capacity")
            #expect(rows[0]["error_reason"] as String? == "LOCAL_RESOURCES")
            let attempts = try gateway.attemptRows(requestID: rows[0]["request_id"])
            #expect(attempts.map { $0["verdict"] as String } == ["local_failure"])
            let pool = gateway.gateway.pool.snapshot()
            #expect(pool.healthyUpstreams == 2 && pool.coolingKeys == 0 && pool.activeKeys == 2, "\(pool)")
        }
    }
}

/// A transport whose every connection fails as the gateway's own socket would at its
/// descriptor limit: `socket()` failing with EMFILE.
private final class ShortOfDescriptors: UpstreamTransport, Service {
    private let count = Mutex(0)
    var tries: Int { count.withLock { $0 } }

    func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        count.withLock { $0 += 1 }
        throw UpstreamTransportError(IOError(errnoCode: EMFILE, reason: "socket"))
    }

    func run() async throws {
        try? await gracefulShutdown()
    }
}

/// What is not a transport failure is not charged as one (`ProxyHandler.transportFailed`).
@Suite struct NotATransportFailureTests {
    let a = testKey("a"), b = testKey("b")

    /// An error that is no `UpstreamTransportError` (a bug of the gateway's own) is not dressed
    /// as the upstream's failure: 500 `INTERNAL`, no other pair tried, nobody charged.
    @Test func anInternalErrorIs500AndBlamesNobody() async throws {
        let transport = Scripted(.throwing(InternalBug()))
        try await withGateway(keys: [a, b], fakes: 2, transport: transport) { gateway, _ in
            let answer = try await gateway.generate()
            #expect(answer.status == 500, "\(answer.text)")
            #expect(answer.text.contains(#""status":"INTERNAL""#), "\(answer.text)")
            #expect(transport.tries == 1, "another pair would meet the same fault")
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows[0]["outcome"] as String? == "gateway_error")
            #expect(rows[0]["error_reason"] as String? == "INTERNAL_ERROR")
            let attempts = try gateway.attemptRows(requestID: rows[0]["request_id"])
            #expect(attempts.map { $0["verdict"] as String } == ["local_failure"])
            #expect(attempts.map { $0["reason"] as String? } == ["INTERNAL_ERROR"])
            let pool = gateway.gateway.pool.snapshot()
            #expect(pool.healthyUpstreams == 2 && pool.coolingKeys == 0 && pool.activeKeys == 2, "\(pool)")
            #expect(gateway.logs.all.contains { $0.contains("internal error") && $0.contains("InternalBug") }, "the log names the error's type")
        }
    }

    /// The client goes away while the upstream's error answer is being read: the read ends in a
    /// cancellation, which is nobody's failure. The try and the request are `cancelled`, and the
    /// upstream is not cooled as if it had broken off.
    @Test func aClientGoneWhileAnErrorBodyIsReadBlamesNobody() async throws {
        let transport = Scripted(.errorBodyUntilCancelled)
        try await withGateway(keys: [a, b], fakes: 2, transport: transport) { gateway, _ in
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            let token = gateway.token
            try await withRawConnection(port: gateway.port) { connection in
                connection.send("POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                    + "x-goog-api-key: \(token)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
                try waitUntilBlocking("the upstream's error answer to have begun") { transport.tries == 1 }
            }
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows[0]["outcome"] as String? == "cancelled")
            let attempts = try gateway.attemptRows(requestID: rows[0]["request_id"])
            #expect(attempts.map { $0["verdict"] as String } == ["cancelled"])
            #expect(transport.tries == 1)
            let pool = gateway.gateway.pool.snapshot()
            #expect(pool.healthyUpstreams == 2 && pool.coolingKeys == 0, "\(pool)")
        }
    }
}

private struct InternalBug: Error {}

/// A transport that answers every request the same way.
private final class Scripted: UpstreamTransport, Service {
    enum Script {
        /// `send` throws this error.
        case throwing(any Error & Sendable)
        /// A 503 head whose body never comes: its read ends when the request is cancelled,
        /// with the error SwiftNIO's transport gives then.
        case errorBodyUntilCancelled
    }

    private let script: Script
    private let count = Mutex(0)
    var tries: Int { count.withLock { $0 } }

    init(_ script: Script) {
        self.script = script
    }

    func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        count.withLock { $0 += 1 }
        switch script {
        case .throwing(let error):
            throw error
        case .errorBodyUntilCancelled:
            return UpstreamResponse(status: 503, headers: ["content-type": "application/json"], body: UntilCancelled())
        }
    }

    func run() async throws {
        try? await gracefulShutdown()
    }

    private struct UntilCancelled: UpstreamBodyStream {
        mutating func next() async throws -> ByteBuffer? {
            do {
                // Waits for the cancellation, not for the time.
                try await Task.sleep(for: .seconds(3600))
            } catch {
                throw UpstreamTransportError(error)
            }
            return nil
        }
    }
}
