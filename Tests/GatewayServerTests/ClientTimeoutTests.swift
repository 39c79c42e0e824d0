import FakeGemini
import Foundation
import GatewayServer
import GRDB
import Testing
import TestSupport

/// Slow and idle clients: a stalled head, a stalled body and an idle keep-alive connection are
/// each closed by their own timeout, counted in /metrics. Each test sets the timeout it is about
/// short and the others long: a connection closed within the test's patience was closed by the
/// short one, long before the others could have.
@Suite struct ClientTimeoutTests {
    let a = testKey("a")
    static let long: Duration = .seconds(600)

    private func closed(_ gateway: GatewayHarness, _ reason: String) async throws -> Double {
        let text = String(decoding: await gateway.gateway.metrics.exposition(), as: UTF8.self)
        return try Exposition(text).value("gemini_gateway_client_connections_closed_total", ["reason": reason]) ?? -1
    }

    @Test func aHeadThatStallsIsClosed() async throws {
        try await withGateway(keys: [a], configure: {
            $0.requestHeadTimeout = .seconds(1)
            $0.requestBodyTimeout = Self.long
            $0.keepAliveTimeout = Self.long
        }) { gateway, fakes in
            #expect(try await closed(gateway, "request_head_timeout") == 0)
            // Half a head (a slowloris), and a connection that sends nothing at all.
            for bytes in ["POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api", ""] {
                let rest = try await withRawConnection(port: gateway.port) { connection in
                    connection.send(bytes)
                    return try connection.readToClose()
                }
                #expect(rest.isEmpty)
            }
            #expect(try await closed(gateway, "request_head_timeout") == 2)
            #expect(fakes[0].received().isEmpty)
        }
    }

    @Test func aBodyThatStallsIsAnswered408AndClosed() async throws {
        try await withGateway(keys: [a], configure: {
            $0.requestHeadTimeout = Self.long
            $0.requestBodyTimeout = .seconds(1)
            $0.keepAliveTimeout = Self.long
        }) { gateway, fakes in
            let head = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: 100\r\n\r\n{\"contents\":"
            let (answer, rest) = try await withRawConnection(port: gateway.port) { connection in
                connection.send(head)
                let answer = try connection.readAnswer()
                return (answer, try connection.readToClose())
            }
            #expect(answer.status == 408, "\(answer)")
            #expect(answer.header("connection")?.lowercased() == "close")
            #expect(answer.bodyText.contains("DEADLINE_EXCEEDED"), "\(answer)")
            #expect(rest.isEmpty)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "client_error")
            #expect(rows.first?["error_reason"] as String? == "REQUEST_BODY_TIMEOUT")
            #expect(rows.first?["status"] as Int? == 408)
            #expect(fakes[0].received().isEmpty)
            #expect(try await closed(gateway, "request_body_timeout") == 1)
        }
    }

    /// The keep-alive timeout is the connection's: it closes after a local route's
    /// answer (`/healthz`) as after a proxied one. A request being answered is not timed,
    /// however long the upstream takes.
    @Test func anIdleKeepAliveConnectionIsClosedButAnAnswerInProgressIsNot() async throws {
        try await withGateway(keys: [a], configure: {
            $0.requestHeadTimeout = Self.long
            $0.requestBodyTimeout = Self.long
            $0.keepAliveTimeout = .seconds(1)
        }) { gateway, fakes in
            let health = try await withRawConnection(port: gateway.port) { connection in
                connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let answer = try connection.readAnswer(to: "GET")
                return (answer, try connection.readToClose())
            }
            #expect(health.0.status == 200, "\(health.0)")
            #expect(health.1.isEmpty)
            // The upstream takes longer than the keep-alive timeout.
            fakes[0].setRules([.init(reply: .delay(.seconds(3), then: .ok))])
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            let request = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let proxied = try await withRawConnection(port: gateway.port) { connection in
                connection.send(request)
                let answer = try connection.readAnswer()
                return (answer, try connection.readToClose())
            }
            #expect(proxied.0.status == 200, "\(proxied.0)")
            #expect(proxied.1.isEmpty)
            #expect(try await closed(gateway, "keep_alive_timeout") == 2)
            #expect(try await gateway.requestRows(count: 1).first?["outcome"] as String? == "success")
        }
    }
}
