import Foundation
import GatewayServer
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Descriptors: the soft limit goes up to the hard one, and --max-connections caps the clients.
@Suite struct ConnectionLimitTests {
    let a = testKey("a")

    @Test func theSoftDescriptorLimitIsRaisedToTheHardOne() throws {
        let limit = try #require(DescriptorLimit.raise())
        #expect(limit.before <= limit.now)
        var now = rlimit()
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &now) == 0)
        #expect(UInt64(now.rlim_cur) == limit.now && UInt64(now.rlim_max) == limit.hard)
        // A hard limit the kernel grants is reached (an unlimited one may not be).
        if limit.hard != UInt64.max { #expect(limit.now == limit.hard) }
    }

    /// At the cap the gateway stops accepting: a new client waits (in the listen backlog) and
    /// is served once a connection closes.
    @Test func overTheCapANewClientWaitsUntilAConnectionCloses() async throws {
        try await withGateway(keys: [a], configure: { $0.maximumConnections = 1 }) { gateway, _ in
            let port = gateway.port
            let (firstStatus, heldBack, secondStatus) = try await withRawConnection(port: port) { first in
                first.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let firstStatus = try first.readAnswer(to: "GET").status
                let second = try RawConnection(port: port)
                second.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                // Not served while the first is open. This waits for an answer that cannot come
                // (not for something to happen), so a slow machine cannot make it pass or fail wrongly.
                let heldBack = (try? second.readAnswer(to: "GET", timeout: 1)) == nil
                first.close()
                return (firstStatus, heldBack, try second.readAnswer(to: "GET").status)
            }
            #expect(firstStatus == 200)
            #expect(heldBack, "the second client was served while the first was open")
            #expect(secondStatus == 200)
        }
    }
}
