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

/// A shortage of the gateway's own (descriptors, memory) is not an upstream's failure; errors
/// that are (no route to the host) are named.
@Suite struct LocalFailureTests {
    let a = testKey("a"), b = testKey("b")

    @Test("errors are classified by their errno", arguments: [
        (EMFILE, "LOCAL_RESOURCES"), (ENFILE, "LOCAL_RESOURCES"), (ENOBUFS, "LOCAL_RESOURCES"), (ENOMEM, "LOCAL_RESOURCES"),
        (EADDRNOTAVAIL, "LOCAL_RESOURCES"), (EHOSTUNREACH, "HOST_UNREACHABLE"), (ENETUNREACH, "NETWORK_UNREACHABLE"),
        (ECONNREFUSED, "CONNECTION_REFUSED"), (ECONNRESET, "CONNECTION_RESET"), (ETIMEDOUT, "TIMEOUT"),
    ])
    func errnoNamesTheFailure(code: CInt, name: String) {
        let error = IOError(errnoCode: code, reason: "connect")
        #expect(NIOHTTP1Transport.transportError(error).failure.rawValue == name)
        let verdict = OutcomeClassifier.classify(transport: NIOHTTP1Transport.transportError(error).failure)
        #expect((verdict == .localFailure(reason: "LOCAL_RESOURCES")) == (name == "LOCAL_RESOURCES"), "\(verdict)")
    }

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
        throw NIOHTTP1Transport.transportError(IOError(errnoCode: EMFILE, reason: "socket"))
    }

    func run() async throws {
        try? await gracefulShutdown()
    }
}
