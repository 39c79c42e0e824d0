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

    /// The default cap leaves a reserve and a second descriptor per connection: the clients
    /// alone never bring the process to its limit (where libdispatch stops it).
    @Test(arguments: [UInt64(1_024), 20_000, 1_048_576, 300, 100, 0])
    func theDefaultCapKeepsDescriptorsInReserve(softLimit: UInt64) {
        let cap = DescriptorLimit.connectionCap(softLimit: softLimit)
        #expect(cap >= 16)
        if softLimit >= DescriptorLimit.reserved + 32 {
            #expect(UInt64(cap) * 2 + DescriptorLimit.reserved <= softLimit)
            #expect(UInt64(cap) * 2 + DescriptorLimit.reserved + 2 > softLimit, "no more is held back than that")
        }
        #expect(DescriptorLimit.connectionCap(softLimit: 1_024) == 384)
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
