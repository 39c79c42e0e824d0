import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// Scenario 9: only gateway tokens get in, and only the pool key goes out.
@Suite struct ClientAuthTests {
    let a = testKey("a")

    @Test func aMissingOrWrongTokenIs401AndNothingIsForwarded() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            for token: String? in [nil, "gw-wrong-token", "", testKey("a")] {
                let answer = try await gateway.send(gateway.request("/v1beta/models/gemini-2.5-flash:generateContent", token: .some(token)))
                #expect(answer.status == 401)
                let error = try #require(try answer.json()["error"] as? [String: Any])
                #expect(error["status"] as? String == "UNAUTHENTICATED")
                #expect(error["code"] as? Int == 401)
            }
            #expect(fakes[0].received().isEmpty)
            let rows = try await gateway.requestRows(count: 4)
            #expect(rows.map { $0["outcome"] as String } == Array(repeating: "unauthorized", count: 4))
        }
    }

    /// The token is judged from the head: a stranger's body is neither read nor asked for. Each
    /// head below announces far more than it sends (50 MB; a chunked body over the limit), so
    /// an answer at all shows that the gateway did not wait for the body.
    @Test func aRequestWithoutAValidTokenIsRefusedFromItsHeadBeforeItsBody() async throws {
        try await withGateway(keys: [a], configure: { $0.maximumBodyBytes = 1 << 20 }) { gateway, fakes in
            let start = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
            let heads = [
                start + "Content-Length: 50000000\r\n\r\n",
                // A wrong token asking to be told to go on: it is not (no `100 Continue` first).
                start + "x-goog-api-key: gw-wrong-token\r\nContent-Length: 50000000\r\nExpect: 100-continue\r\n\r\n",
                // Chunked, the first chunk sent: 401, not the 413 its length would get later.
                start + "Transfer-Encoding: chunked\r\n\r\n1000\r\n" + String(repeating: "a", count: 4096) + "\r\n",
            ]
            for head in heads {
                let (answer, rest) = try await withRawConnection(port: gateway.port) { connection in
                    connection.send(head)
                    let answer = try connection.readAnswer()
                    return (answer, try connection.readToClose())
                }
                #expect(answer.status == 401, "\(answer)")
                #expect(answer.header("connection")?.lowercased() == "close", "\(answer)")
                let error = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])["error"] as? [String: Any]
                #expect(error?["status"] as? String == "UNAUTHENTICATED")
                #expect(rest.isEmpty, "nothing after the 401: \(String(decoding: rest, as: UTF8.self))")
            }
            #expect(fakes[0].received().isEmpty)
            // Each refused request has its row, as any refused request does.
            let rows = try await gateway.requestRows(count: heads.count)
            #expect(rows.map { $0["outcome"] as String } == Array(repeating: "unauthorized", count: heads.count))
            #expect(rows.allSatisfy { $0["status"] as Int == 401 })
            // An authenticated body is still held to the limit: one byte over it is refused (and
            // nothing is sent after that byte, which the gateway would leave unread).
            let over = try await withRawConnection(port: gateway.port) { connection in
                connection.send(start + "x-goog-api-key: \(gateway.token)\r\nTransfer-Encoding: chunked\r\n\r\n")
                connection.send("100001\r\n" + String(repeating: "b", count: (1 << 20) + 1))
                return try connection.readAnswer()
            }
            #expect(over.status == 413, "\(over)")
        }
    }

    @Test func theTokenIsAcceptedInEachPlaceAndNeverForwarded() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let token = gateway.token
            // x-goog-api-key
            #expect(try await gateway.generate().status == 200)
            // ?key=, with another parameter kept
            var query = gateway.request("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=\(token)", token: .some(nil))
            query.headers.remove(name: "x-goog-api-key")
            #expect(try await gateway.send(query).status == 200)
            // Authorization: Bearer, on a native path (Google would take it for an OAuth token)
            let bearer = gateway.request("/v1beta/models/gemini-2.5-flash:generateContent", token: .some(nil), headers: [("Authorization", "Bearer \(token)")])
            #expect(try await gateway.send(bearer).status == 200)
            // The OpenAI-compatible endpoint: the pool key goes up as a Bearer token.
            let openAI = gateway.request(
                "/v1beta/openai/chat/completions", token: .some(nil), headers: [("Authorization", "Bearer \(token)")],
                body: #"{"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}"#
            )
            let openAIAnswer = try await gateway.send(openAI)
            #expect(openAIAnswer.status == 200)

            let received = fakes[0].received()
            #expect(received.count == 4)
            for request in received.prefix(3) {
                #expect(request.header("x-goog-api-key") == a)
                #expect(!request.hasHeader("authorization"))
            }
            #expect(received[1].query == "alt=sse")
            #expect(received[3].header("authorization") == "Bearer \(a)")
            #expect(!received[3].hasHeader("x-goog-api-key"))
            for request in received {
                let everything = request.headers.map(\.description).joined(separator: "\n") + request.query + request.bodyText
                #expect(!everything.contains(token), "the gateway token reached the upstream")
            }
        }
    }

    @Test func hopByHopHeadersAreDroppedAndOthersKept() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let request = gateway.request("/v1beta/models/gemini-2.5-flash:generateContent", headers: [
                ("Connection", "keep-alive, X-Hop-Custom"),
                ("X-Hop-Custom", "dropped"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authorization", "Basic c2VjcmV0"),
                ("TE", "trailers"),
                ("Proxy-Connection", "keep-alive"),
                ("X-Goog-Api-Client", "genai-py/1.0"),
                ("User-Agent", "tests/1.0"),
            ])
            #expect(try await gateway.send(request).status == 200)
            let received = try #require(fakes[0].received().first)
            for name in ["x-hop-custom", "keep-alive", "proxy-authorization", "te", "proxy-connection", "authorization"] {
                #expect(!received.hasHeader(name), "\(name) was forwarded")
            }
            #expect(received.header("x-goog-api-client") == "genai-py/1.0")
            #expect(received.header("user-agent") == "tests/1.0")
            #expect(received.headerValues("x-goog-api-key") == [a])
            #expect(received.bodyText == #"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
        }
    }

    /// Google learns nothing of the clients' addresses unless the operator says so.
    @Test(arguments: [false, true])
    func theClientsAddressHeadersReachTheUpstreamOnlyWhenKept(keep: Bool) async throws {
        try await withGateway(keys: [a], configure: { $0.forwardClientAddress = keep }) { gateway, fakes in
            let names = ["X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP", "Forwarded", "Via", "CF-Connecting-IP", "True-Client-IP"]
            let request = gateway.request("/v1beta/models/gemini-2.5-flash:generateContent", headers: names.map { ($0, "203.0.113.7") })
            #expect(try await gateway.send(request).status == 200)
            let received = try #require(fakes[0].received().first)
            for name in names {
                #expect(received.hasHeader(name.lowercased()) == keep, "\(name)")
            }
        }
    }

    @Test func eachRequestIsAttributedToItsClient() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let (bob, bobToken) = try gateway.database.addClient(name: "bob")
            // Added beside the running gateway, as the CLI does: in force once reloaded.
            try await gateway.waitForReload()
            let answer = try await gateway.send(gateway.request("/v1beta/models/m:generateContent", token: .some(bobToken)))
            #expect(answer.status == 200, "\(answer.text)")
            #expect(try await gateway.generate().status == 200)
            let staticAnswer = try await gateway.send(gateway.request("/v1beta/models/m:generateContent", token: .some("gw-static-token-for-restarts")))
            #expect(staticAnswer.status == 200, "\(staticAnswer.text)")
            let rows = try await gateway.requestRows(count: 3)
            #expect(rows.map { $0["client_name"] as String? } == ["bob", "tests", "proxy-key"])
            #expect(rows[0]["client_id"] as Int64? == bob.id)
            // Revoked: refused once reloaded.
            try gateway.database.revokeClient("bob")
            try await gateway.waitForReload()
            #expect(try await gateway.send(gateway.request("/v1beta/models/m:generateContent", token: .some(bobToken))).status == 401)
        }
    }

    @Test func keysAndTokensNeverAppearInTheLogs() async throws {
        let b = testKey("b")
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(key: b, times: 1, reply: .fixture("400-api-key-invalid"))])
            _ = try await gateway.generate()
            _ = try await gateway.generate()
            _ = try await gateway.send(gateway.request("/v1beta/models/m:generateContent?key=\(gateway.token)", token: .some(nil)))
            _ = try await gateway.send(gateway.request("/v1beta/models/m:generateContent", token: .some("gw-wrong-token-xyz")))
            _ = try await gateway.send(gateway.request(
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", body: #"{"contents":[]}"#
            ))
            _ = try await gateway.requestRows(count: 5)
            let logs = gateway.logs.all
            #expect(logs.count >= 5)
            for line in logs {
                for secret in [a, b, gateway.token, "gw-wrong-token-xyz", "gw-static-token-for-restarts"] {
                    #expect(!line.contains(secret), "a secret in the log: \(line)")
                }
            }
            let requestLines = logs.filter { $0.contains("request_id") }
            #expect(requestLines.contains { $0.contains(Secret.fingerprint(a)) }, "log lines name keys by fingerprint")
        }
    }
}
