import FakeGemini
import Foundation
import GatewayCore
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
