import FakeGemini
import Foundation
@testable import GatewayHTTP
@testable import GatewayServer
import NIOCore
import Testing
import TestSupport

/// The gateway's own routes (`/healthz`, `/readyz`, `/metrics`, `/status`, unknown paths) on the
/// same SwiftNIO connection handler as the proxied requests: what a probe, `nc` or a load
/// balancer sends, byte for byte.
@Suite struct LocalRoutesTests {
    let a = testKey("a")

    @Test func bytesThatAreNotHTTPGetA400AndTheConnectionCloses() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let reply = try await withRawConnection(port: gateway.port) { connection in
                connection.send("GARBAGE\r\n\r\n")
                return String(decoding: try connection.readToClose(), as: UTF8.self)
            }
            #expect(reply.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(reply)")
            #expect(reply.contains("\r\nConnection: close\r\n"), "\(reply)")
            #expect(try await gateway.generate().status == 200)
        }
    }

    /// `printf 'GET /healthz HTTP/1.1\r\n\r\n' | nc host port` shuts its sending side after the
    /// request: the probe is still answered, then the connection closes.
    @Test func aProbeWhoseClientShutItsSendingSideIsAnsweredThenClosed() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let (answer, rest) = try await withRawConnection(port: gateway.port) { connection in
                connection.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                connection.shutdownSending()
                let answer = try connection.readAnswer(to: "GET")
                return (answer, try connection.readToClose())
            }
            #expect(answer.status == 200, "\(answer.text)")
            #expect(answer.bodyText.contains(#""ready":true"#), "\(answer.text)")
            #expect(rest.isEmpty)
        }
    }

    /// A connection that opens and shuts its sending side without asking anything is closed,
    /// not left half open until the keep-alive timeout.
    @Test func aConnectionThatAsksNothingAndShutsItsSideIsClosed() async throws {
        try await withGateway(keys: [a], configure: { $0.keepAliveTimeout = .seconds(3600) }) { gateway, _ in
            let rest = try await withRawConnection(port: gateway.port) { connection in
                connection.shutdownSending()
                return try connection.readToClose()
            }
            #expect(rest.isEmpty)
        }
    }

    /// `HEAD` gets the head its `GET` gets, with the same Content-Length and no body: the next
    /// request on the connection is read from the right place.
    @Test func aHeadProbeHasTheHeadOfItsGetAndTheConnectionStaysInStep() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let (head, get, notFound) = try await withRawConnection(port: gateway.port) { connection in
                connection.send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let head = try connection.readAnswer(to: "HEAD")
                connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let get = try connection.readAnswer(to: "GET")
                connection.send("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
                return (head, get, try connection.readAnswer(to: "GET"))
            }
            #expect(head.status == 200 && head.body.isEmpty, "\(head.text)")
            #expect(get.status == 200 && get.bodyText == #"{"status":"ok"}"#, "\(get.text)")
            #expect(head.header("content-length") == get.header("content-length"))
            #expect(head.header("content-type") == "application/json")
            #expect(notFound.status == 404 && notFound.bodyText.contains("NOT_FOUND"), "\(notFound.text)")
        }
    }

    /// At a graceful shutdown an idle keep-alive connection is closed at once: the shutdown does
    /// not wait out its grace (here far longer than any test) for clients that asked nothing.
    @Test func aGracefulShutdownClosesIdleConnectionsAtOnce() async throws {
        let fake = try await FakeGemini.start()
        let gateway = try await GatewayHarness.start(keys: [a], upstreams: [fake.baseURL]) {
            $0.shutdownGracePeriod = .seconds(3600)
            $0.keepAliveTimeout = .seconds(3600)
        }
        let connection = try RawConnection(port: gateway.port)
        connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try connection.readAnswer(to: "GET").status == 200)
        // Without the close the stop would wait out the hour's grace: the timeout fails the test.
        try await withTimeout(120) { try await gateway.stop() }
        // Closed before the stop returned (a read with a short deadline failed on a saturated
        // machine: the deadline passed before the thread first polled).
        #expect(try connection.readToClose().isEmpty)
        #expect(connection.closedByServer)
        await fake.stop()
        gateway.removeFiles()
    }
    // MARK: Request bodies

    /// A probe with a small body (a load balancer that POSTs `{}`) is answered as without one,
    /// the body dropped, and the connection goes on.
    @Test func aSmallBodyToALocalRouteIsDroppedAndTheConnectionGoesOn() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let (first, second) = try await withRawConnection(port: gateway.port) { connection in
                let body = String(repeating: "x", count: LocalAnswer.maximumRequestBodyBytes)
                connection.send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
                let first = try connection.readAnswer(to: "POST")
                connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                return (first, try connection.readAnswer(to: "GET"))
            }
            #expect(first.status == 200 && first.bodyText == #"{"status":"ok"}"#, "\(first.text)")
            #expect(second.status == 200, "\(second.text)")
        }
    }

    /// A body declared over the limit is refused from its head: 413 in Gemini's envelope, and the
    /// connection closes without a byte of it read (the client need not send it).
    @Test(arguments: ["/healthz", "/metrics", "/status", "/nowhere"])
    func aBodyDeclaredTooLargeForALocalRouteIs413AndTheConnectionCloses(path: String) async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let (answer, rest) = try await withRawConnection(port: gateway.port) { connection in
                connection.send("POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Length: \(100 << 20)\r\n\r\n")
                let answer = try connection.readAnswer(to: "POST")
                return (answer, try connection.readToClose())
            }
            #expect(answer.status == 413, "\(answer.text)")
            #expect(answer.header("connection") == "close")
            #expect(answer.bodyText.contains(#""status":"INVALID_ARGUMENT""#), "\(answer.text)")
            #expect(rest.isEmpty)
            #expect(try await gateway.send(gateway.request("/healthz", method: .GET)).status == 200)
        }
    }

    /// A chunked body (no length declared) is counted as it arrives: the chunk that takes it
    /// over the limit gets 413 and the connection closes; nothing of it was kept.
    @Test func aChunkedBodyThatGrowsTooLargeForALocalRouteIs413() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let (answer, rest) = try await withRawConnection(port: gateway.port) { connection in
                connection.send("POST /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
                let header = Array((String(chunk.count, radix: 16) + "\r\n").utf8)
                // Up to the limit exactly, then one more byte: nothing is sent after the byte over
                // it, so the close that follows the answer is not a reset of unread bytes.
                for _ in 0..<(LocalAnswer.maximumRequestBodyBytes / chunk.count) { connection.send(header + chunk + [13, 10]) }
                connection.send("1\r\nx")
                let answer = try connection.readAnswer(to: "POST")
                return (answer, try connection.readToClose())
            }
            #expect(answer.status == 413, "\(answer.text)")
            #expect(answer.header("connection") == "close")
            #expect(rest.isEmpty)
            #expect(try await gateway.send(gateway.request("/readyz", method: .GET)).status == 200)
        }
    }
}
