import AsyncHTTPClient
import FakeGemini
import Foundation
import TestSupport
import Testing

@Suite("FakeGemini rules, auth and recording", .timeLimit(.minutes(2)))
struct RuleTests {
    /// The fixture as it is in the source tree, to prove the bytes on the wire are the real ones.
    static func sourceFixture(_ name: String) throws -> [UInt8] {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/FakeGemini/Fixtures/\(name).json")
        return [UInt8](try Data(contentsOf: url))
    }

    @Test("every fixture is bundled")
    func fixturesBundled() {
        #expect(FakeGemini.fixtureNames.count >= 18)
        #expect(FakeGemini.fixtureNames.contains("429-per-minute"))
        #expect(FakeGemini.fixtureStatus("429-per-minute") == 429)
        #expect(FakeGemini.fixtureStatus("nope") == nil)
    }

    @Test("a fixture rule replays exactly the fixture's bytes with its status", arguments: FakeGemini.fixtureNames)
    func fixtureReplay(name: String) async throws {
        let expected = try Self.sourceFixture(name)
        try await withFake { fake in
            fake.setRules([.init(reply: .fixture(name))])
            let answer = try await send(fake, "/v1beta/models/gemini-2.5-flash:generateContent")
            #expect(answer.status == Int(name.prefix(3)))
            #expect(answer.body == expected)
            #expect(answer.header("content-type")?.hasPrefix("application/json") == true)
        }
    }

    @Test("a fixture can be wrapped in an array")
    func fixtureArrayWrapped() async throws {
        let expected = try Self.sourceFixture("503-overloaded")
        try await withFake { fake in
            fake.setRules([.init(reply: .fixture("503-overloaded", arrayWrapped: true))])
            let answer = try await send(fake, "/v1beta/models/m:streamGenerateContent")
            #expect(answer.status == 503)
            #expect(answer.body == Array("[".utf8) + expected + Array("]".utf8))
        }
    }

    @Test("times: N answers the first N matching requests, then falls through")
    func timesFallsThrough() async throws {
        try await withFake { fake in
            fake.setRules([
                .init(method: "generateContent", times: 2, reply: .fixture("429-per-minute")),
                .init(method: "generateContent", times: 1, reply: .fixture("503-overloaded")),
            ])
            var statuses: [Int] = []
            for _ in 0..<5 {
                statuses.append(try await send(fake, "/v1beta/models/gemini-2.5-flash:generateContent").status)
            }
            #expect(statuses == [429, 429, 503, 200, 200])
        }
    }

    @Test("rules match per key, whichever way the key came")
    func perKey() async throws {
        try await withFake { fake in
            fake.setRules([
                .init(key: "key-dead-0001", reply: .fixture("400-api-key-invalid")),
                .init(key: "key-slow-0002", reply: .delay(.milliseconds(50), then: .fixture("429-per-day"))),
            ])
            let dead = try await send(fake, "/v1beta/models/m:generateContent", key: "key-dead-0001")
            #expect(dead.status == 400)
            #expect(dead.header("x-fake-key") == "0001")
            let viaQuery = try await send(fake, "/v1beta/models/m:generateContent?key=key-slow-0002", key: nil)
            #expect(viaQuery.status == 429)
            #expect(viaQuery.header("x-fake-key") == "0002")
            let good = try await send(fake, "/v1beta/models/m:generateContent", key: "key-good-0003")
            #expect(good.status == 200)
            #expect(good.header("x-fake-key") == "0003")

            let keys = fake.received().map { "\($0.key ?? "-") \($0.keySource?.rawValue ?? "-")" }
            #expect(keys == ["key-dead-0001 x-goog-api-key", "key-slow-0002 ?key=", "key-good-0003 x-goog-api-key"])
        }
    }

    @Test("rules match on model, path, HTTP method and body")
    func otherCriteria() async throws {
        try await withFake { fake in
            fake.setRules([
                .init(model: "gemini-2.5-pro", reply: .status(502, body: "<html><body>Bad Gateway</body></html>", contentType: "text/html")),
                .init(path: ":countTokens", reply: .fixture("500-internal")),
                .init(httpMethod: "get", reply: .fixture("504-deadline")),
                .init(bodyContains: "please-fail", reply: .headers([("retry-after", "7")], then: .fixture("429-bare"))),
            ])
            let html = try await send(fake, "/v1beta/models/gemini-2.5-pro:generateContent")
            #expect(html.status == 502)
            #expect(html.header("content-type") == "text/html")
            #expect(html.text == "<html><body>Bad Gateway</body></html>")
            let status1 = try await send(fake, "/v1beta/models/gemini-2.5-flash:countTokens").status
            #expect(status1 == 500)
            let status2 = try await send(fake, "/v1beta/models", method: "GET").status
            #expect(status2 == 504)
            let throttled = try await send(fake, "/v1beta/models/x:generateContent", body: #"{"x":"please-fail"}"#)
            #expect(throttled.status == 429)
            #expect(throttled.header("retry-after") == "7")
            let status3 = try await send(fake, "/v1beta/models/gemini-2.5-flash:generateContent").status
            #expect(status3 == 200)
        }
    }

    @Test("setRules replaces, addRule appends, clearRules removes")
    func ruleLists() async throws {
        try await withFake { fake in
            fake.setRules([.init(reply: .fixture("500-internal"))])
            fake.setRules([.init(reply: .fixture("503-overloaded"))])
            fake.addRule(.init(reply: .fixture("500-internal")))
            let status4 = try await send(fake, "/v1beta/models/m:generateContent").status
            #expect(status4 == 503)
            fake.clearRules()
            let status5 = try await send(fake, "/v1beta/models/m:generateContent").status
            #expect(status5 == 200)
        }
    }

    @Test("a request without a key gets Google's 403 unregistered-caller answer")
    func missingKey() async throws {
        let expected = try Self.sourceFixture("403-unregistered-caller")
        try await withFake { fake in
            fake.setRules([.init(reply: .fixture("500-internal"))])  // auth comes before rules, as at Google
            let answer = try await send(fake, "/v1beta/models/m:generateContent", key: nil)
            #expect(answer.status == 403)
            #expect(answer.body == expected)
            #expect(answer.header("x-fake-key") == nil)
            let openAI = try await send(fake, "/v1beta/openai/chat/completions", key: nil, body: #"{"model":"m","messages":[]}"#)
            #expect(openAI.status == 403)
            #expect(fake.received().count == 2)
            #expect(fake.received().allSatisfy { $0.key == nil })
        }
    }

    @Test("an Authorization header on a native path gets Google's 401")
    func authorizationOnNativePath() async throws {
        let expected = try Self.sourceFixture("401-unauthenticated")
        try await withFake { fake in
            let answer = try await send(fake, "/v1beta/models/m:generateContent", headers: [("Authorization", "Bearer client-token")])
            #expect(answer.status == 401)
            #expect(answer.body == expected)
        }
    }

    @Test("received() records method, path, query, every header, body and key")
    func recording() async throws {
        try await withFake { fake in
            let body = #"{"contents":[{"parts":[{"text":"record me"}]}]}"#
            _ = try await send(
                fake, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&x=a%20b",
                headers: [("X-Custom", "one"), ("X-Custom", "two"), ("Proxy-Authorization", "Basic abc"), ("TE", "trailers")],
                body: body
            )
            let request = try #require(fake.received().first)
            #expect(request.method == "POST")
            #expect(request.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
            #expect(request.query == "alt=sse&x=a%20b")
            #expect(request.queryValue("x") == "a b")
            #expect(request.bodyText == body)
            #expect(request.body == Array(body.utf8))
            #expect(request.key == testKey)
            #expect(request.keySource == .header)
            #expect(request.model == "gemini-2.5-flash")
            #expect(request.rpcMethod == "streamGenerateContent")
            #expect(request.headerValues("x-custom") == ["one", "two"])
            #expect(request.header("proxy-authorization") == "Basic abc")
            #expect(request.header("te") == "trailers")
            #expect(request.header("host") == "127.0.0.1:\(fake.port)")
            #expect(request.header("x-goog-api-key") == testKey)
            #expect(!request.hasHeader("authorization"))
            #expect(request.time <= Date())

            fake.clearReceived()
            #expect(fake.received().isEmpty)
            #expect(fake.eventLog().isEmpty)
            #expect(fake.requestCount == 1)
        }
    }

    @Test("closeConnection fails the request without an answer")
    func closeConnection() async throws {
        try await withFake { fake in
            fake.setRules([.init(times: 1, reply: .closeConnection)])
            await #expect(throws: (any Error).self) {
                _ = try await send(fake, "/v1beta/models/m:generateContent")
            }
            #expect(fake.received().count == 1)
            // The next request is answered normally (on a new connection).
            let status6 = try await send(fake, "/v1beta/models/m:generateContent").status
            #expect(status6 == 200)
        }
    }

    @Test("fakes start in parallel on distinct ports and stop")
    func parallelStarts() async throws {
        let fakes = try await withTimeout {
            try await withThrowingTaskGroup(of: FakeGemini.self) { group in
                for _ in 0..<6 { group.addTask { try await FakeGemini.start() } }
                var fakes: [FakeGemini] = []
                for try await fake in group { fakes.append(fake) }
                return fakes
            }
        }
        #expect(Set(fakes.map(\.port)).count == 6)
        #expect(fakes.allSatisfy { $0.port > 0 && $0.baseURL == "http://127.0.0.1:\($0.port)" })
        for fake in fakes {
            let answer = try await withTimeout { try await send(fake, "/v1beta/models/m:countTokens") }
            #expect(answer.status == 200)
        }
        for fake in fakes { await fake.stop() }
        let stopped = fakes[0]
        await stopped.stop()  // idempotent
        // Nothing listens any more. (AsyncHTTPClient retries a refused connection until the request's
        // deadline, hence the short one.)
        await #expect(throws: (any Error).self) {
            _ = try await withTimeout { try await send(stopped, "/v1beta/models/m:countTokens", timeout: .seconds(1)) }
        }
    }
}
