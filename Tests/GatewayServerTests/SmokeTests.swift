import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GRDB
import Testing
import TestSupport

@Suite struct SmokeTests {
    @Test func aRequestIsProxiedAndLogged() async throws {
        try await withGateway(keys: [testKey("a")]) { gateway, fakes in
            let answer = try await gateway.generate()
            #expect(answer.status == 200, "\(answer.text)")
            // A plain JSON answer keeps its length: no chunked re-framing.
            #expect(answer.header("content-length") == String(answer.body.count))
            #expect(answer.header("transfer-encoding") == nil)
            let json = try answer.json()
            #expect(json["candidates"] != nil)
            let requestID = try #require(answer.header("x-gateway-request-id"))
            let received = fakes[0].received()
            #expect(received.count == 1)
            #expect(received.first?.key == testKey("a"))
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.count == 1)
            #expect(rows.first?["request_id"] as String? == requestID)
            #expect(rows.first?["outcome"] as String? == "success")
            #expect(rows.first?["usage_status"] as String? == "complete")
            #expect(rows.first?["total_tokens"] as Int? ?? 0 > 0)
        }
    }
}
