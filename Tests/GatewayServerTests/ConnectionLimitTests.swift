import FakeGemini
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

    /// At the cap a new client is not left waiting while a connection sits idle: the one idle
    /// the longest is closed for it, and the others stay open.
    @Test func atTheCapTheConnectionIdleTheLongestMakesRoom() async throws {
        try await withGateway(keys: [a], configure: {
            $0.maximumConnections = 2
            $0.keepAliveTimeout = .seconds(600)  // no keep-alive timeout frees a place meanwhile
        }) { gateway, _ in
            let port = gateway.port
            let (newStatus, closedAfter, secondAgain) = try await withRawConnection(port: port) { first in
                first.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try first.readAnswer(to: "GET")
                let second = try RawConnection(port: port)
                defer { second.close() }
                second.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                _ = try second.readAnswer(to: "GET")
                // Both idle now; the first longer. A third client is served at once...
                let third = try RawConnection(port: port)
                defer { third.close() }
                third.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let newStatus = try third.readAnswer(to: "GET").status
                // ...because the first was closed for it, and the second kept.
                let closedAfter = try first.readToClose()
                second.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return (newStatus, closedAfter, try second.readAnswer(to: "GET").status)
            }
            #expect(newStatus == 200)
            #expect(closedAfter.isEmpty, "the idle connection was closed without a word")
            #expect(secondAgain == 200)
            let metrics = String(decoding: await gateway.gateway.metrics.exposition(), as: UTF8.self)
            #expect(metrics.contains(#"gemini_gateway_client_connections_closed_total{reason="idle_at_connection_cap"} 1"#))
        }
    }

    /// At the cap with every connection busy, a new client waits (in the listen backlog) and the
    /// request being answered is not cut for it; that connection is closed once answered, not
    /// kept alive, and the waiting client is served.
    @Test func atTheCapABusyConnectionIsAnsweredWholeThenMakesRoom() async throws {
        try await withGateway(keys: [a], configure: {
            $0.maximumConnections = 1
            $0.keepAliveTimeout = .seconds(600)
        }) { gateway, fakes in
            let gate = FakeGemini.StreamGate(permits: 1)
            let events = (0..<3).map { #"{"candidates":[{"content":{"parts":[{"text":"part \#($0)"}]}}]}"# }
            fakes[0].setRules([.init(method: "streamGenerateContent", reply: .sse(events: events, interval: .zero, gate: gate))])
            let port = gateway.port
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            let (heldBack, streamed, waitingStatus) = try await withRawConnection(port: port) { busy in
                busy.send(
                    "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1\r\nHost: x\r\n"
                        + "x-goog-api-key: \(gateway.token)\r\nContent-Type: application/json\r\n"
                        + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
                try waitUntilBlocking("the stream's first event upstream") { fakes[0].eventLog().count == 1 }
                let waiting = try RawConnection(port: port)
                defer { waiting.close() }
                waiting.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                // Not served while the stream runs. This waits for an answer that cannot come
                // (not for something to happen), so a slow machine cannot make it pass or fail wrongly.
                let heldBack = (try? waiting.readAnswer(to: "GET", timeout: 1)) == nil
                gate.open()
                let streamed = String(decoding: try busy.readToClose(), as: UTF8.self)
                return (heldBack, streamed, try waiting.readAnswer(to: "GET").status)
            }
            #expect(heldBack, "the waiting client was served while the only connection was busy")
            #expect(streamed.hasPrefix("HTTP/1.1 200"))
            #expect(streamed.contains("part 0") && streamed.contains("part 2"), "the answer is whole")
            #expect(waitingStatus == 200)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "success")
        }
    }
}
