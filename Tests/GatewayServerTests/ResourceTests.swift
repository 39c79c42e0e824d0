import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import NIOHTTP1
import Testing
import TestSupport

/// Files, cached contents, batches and upload sessions belong to the project of the key that
/// created them; the fake upstream refuses every other key with Google's 403, so each test would
/// fail if the gateway spread these calls over its keys as it does everything else.
@Suite struct ResourceTests {
    let a = testKey("a"), b = testKey("b"), c = testKey("c")

    // MARK: Resumable upload

    @Test func resumableUploadGoesThroughTheGatewayAndTheFileStaysWithItsKey() async throws {
        try await withGateway(keys: [a, b, c], fakes: 2) { gateway, fakes in
            // Start: the upload URL the client gets points at the gateway, not at the upstream.
            let start = try await gateway.send(gateway.request(
                "/upload/v1beta/files",
                headers: [
                    ("x-goog-upload-protocol", "resumable"), ("x-goog-upload-command", "start"),
                    ("x-goog-upload-header-content-length", "10"), ("x-goog-upload-header-content-type", "text/plain"),
                ],
                body: #"{"file":{"display_name":"notes"}}"#
            ))
            #expect(start.status == 200, "\(start.text)")
            let uploadURL = try #require(start.header("x-goog-upload-url"))
            #expect(uploadURL.hasPrefix(gateway.baseURL + "/upload/v1beta/files?upload_id="), "\(uploadURL)")
            #expect(!fakes.contains { uploadURL.contains(":\($0.port)") })

            // Two chunks without any token, as the SDKs send them: the upload id is the credential.
            let path = String(uploadURL.dropFirst(gateway.baseURL.count))
            let first = try await gateway.send(gateway.request(
                path, token: .some(nil),
                headers: [("x-goog-upload-command", "upload"), ("x-goog-upload-offset", "0")], body: "hello"
            ))
            #expect(first.status == 200, "\(first.text)")
            #expect(first.header("x-goog-upload-status") == "active")
            let last = try await gateway.send(gateway.request(
                path, token: .some(nil),
                headers: [("x-goog-upload-command", "upload, finalize"), ("x-goog-upload-offset", "5")], body: "world"
            ))
            #expect(last.status == 200, "\(last.text)")
            #expect(last.header("x-goog-upload-status") == "final")
            let file = try #require(try last.json()["file"] as? [String: Any])
            let name = try #require(file["name"] as? String)
            #expect(file["sizeBytes"] as? String == "10")

            // Every step reached one upstream, with one key.
            let uploads = fakes.map { $0.received().filter { $0.path.hasPrefix("/upload/") } }
            #expect(uploads.map(\.count).sorted() == [0, 3])
            let owner = try #require(fakes.lazy.compactMap { $0.resourceOwners()[name] }.first)
            #expect(Set(uploads.flatMap { $0 }.map(\.key)) == [owner])

            // Follow-ups naming the file go to its key, whichever upstream carries them.
            for _ in 0..<6 {
                let got = try await gateway.send(gateway.request("/v1beta/\(name)", method: .GET))
                #expect(got.status == 200, "\(got.text)")
                #expect(got.header("x-fake-key") == String(owner.suffix(4)))
            }
            let uri = try #require(file["uri"] as? String)
            for _ in 0..<3 {
                let answer = try await gateway.send(gateway.request(
                    "/v1beta/models/gemini-2.5-flash:generateContent",
                    body: #"{"contents":[{"parts":[{"fileData":{"fileUri":"\#(uri)","mimeType":"text/plain"}},{"text":"sum up"}]}]}"#
                ))
                #expect(answer.status == 200, "\(answer.text)")
                #expect(answer.header("x-fake-key") == String(owner.suffix(4)))
            }
            // Other calls still spread over every key.
            var keysUsed = Set<String>()
            for _ in 0..<6 { keysUsed.insert(try await gateway.generate().header("x-fake-key") ?? "") }
            #expect(keysUsed.count == 3)

            // The owners are in SQLite; the chunks are logged under the client that started the upload.
            let ownerID = try gateway.database.findKey(owner).id!
            let rows = try gateway.database.read { db in
                try Row.fetchAll(db, sql: "SELECT name, key_id, upstream_id FROM resource_owners ORDER BY name")
            }
            #expect(rows.map { $0["name"] as String }.contains(name))
            #expect(rows.count == 2, "the file and its upload session")
            #expect(rows.allSatisfy { $0["key_id"] as Int64 == ownerID })
            let logged = try await gateway.requestRows(count: 18)
            let chunks = logged.filter { ($0["endpoint"] as String) == "other" && ($0["method"] as String) == "POST" }
            #expect(chunks.count == 3)
            #expect(chunks.allSatisfy { $0["client_name"] as String? == "tests" && $0["status"] as Int == 200 })

            // Deleting the file through the gateway forgets it.
            let deleted = try await gateway.send(gateway.request("/v1beta/\(name)", method: .DELETE))
            #expect(deleted.status == 200)
            let remaining = try gateway.database.read { db in
                try String.fetchAll(db, sql: "SELECT name FROM resource_owners")
            }
            #expect(!remaining.contains(name))
        }
    }

    @Test func anUnknownUploadSessionNeedsAToken() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let answer = try await gateway.send(gateway.request(
                "/upload/v1beta/files?upload_id=never-started&upload_protocol=resumable", token: .some(nil),
                headers: [("x-goog-upload-command", "upload, finalize"), ("x-goog-upload-offset", "0")], body: "data"
            ))
            #expect(answer.status == 401)
            #expect(fakes[0].received().isEmpty)
        }
    }

    @Test func theUploadURLUsesThePublicURLOrTheForwardedHeaders() async throws {
        let headers = [("x-goog-upload-protocol", "resumable"), ("x-goog-upload-command", "start")]
        try await withGateway(keys: [a], configure: { $0.publicURL = "https://gemini.example.com" }) { gateway, _ in
            let start = try await gateway.send(gateway.request("/upload/v1beta/files", headers: headers, body: "{}"))
            #expect(start.header("x-goog-upload-url")?.hasPrefix("https://gemini.example.com/upload/v1beta/files?upload_id=") == true)
        }
        try await withGateway(keys: [a]) { gateway, _ in
            let start = try await gateway.send(gateway.request(
                "/upload/v1beta/files",
                headers: headers + [("x-forwarded-proto", "https"), ("x-forwarded-host", "gw.internal:8443")], body: "{}"
            ))
            #expect(start.header("x-goog-upload-url")?.hasPrefix("https://gw.internal:8443/upload/v1beta/files?upload_id=") == true)
        }
    }

    // MARK: Cached contents and batches

    @Test func cachedContentsAndBatchesFollowTheKeyThatMadeThemAcrossARestart() async throws {
        let fake = try await FakeGemini.start()
        let first = try await GatewayHarness.start(keys: [a, b, c], upstreams: [fake.baseURL])
        let created = try await first.send(first.request("/v1beta/cachedContents", body: #"{"model":"models/gemini-2.5-flash"}"#))
        #expect(created.status == 200)
        let cache = try #require(try created.json()["name"] as? String)
        let batch = try await first.send(first.request(
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent", body: #"{"batch":{"input_config":{}}}"#
        ))
        let batchName = try #require(try batch.json()["name"] as? String)
        #expect(batchName.hasPrefix("batches/"))
        try await first.stop()

        // After a restart the owners come back from SQLite.
        let second = try await GatewayHarness.start(keys: [], upstreams: [], directory: first.directory)
        let token: String?? = .some("gw-static-token-for-restarts")
        for _ in 0..<4 {
            #expect(try await second.send(second.request("/v1beta/\(cache)", method: .GET, token: token)).status == 200)
            #expect(try await second.send(second.request("/v1beta/\(batchName)", method: .GET, token: token)).status == 200)
        }
        let owner = try #require(fake.resourceOwners()[cache])
        let answer = try await second.send(second.request(
            "/v1beta/models/gemini-2.5-flash:generateContent", token: token,
            body: #"{"cachedContent":"\#(cache)","contents":[{"parts":[{"text":"and?"}]}]}"#
        ))
        #expect(answer.status == 200, "\(answer.text)")
        #expect(answer.header("x-fake-key") == String(owner.suffix(4)))
        try await second.stop()
        second.removeFiles()
        await fake.stop()
    }

    @Test func aThrottledOwnerKeyAnswers429InsteadOfTryingAnotherKey() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            let created = try await gateway.send(gateway.request("/v1beta/cachedContents", body: "{}"))
            let cache = try #require(try created.json()["name"] as? String)
            let owner = try #require(fakes[0].resourceOwners()[cache])
            fakes[0].setRules([.init(key: owner, model: "gemini-2.5-flash", times: 1, reply: .perMinuteThrottle(retryDelay: 3_600))])
            fakes[0].clearReceived()
            let answer = try await gateway.send(gateway.request(
                "/v1beta/models/gemini-2.5-flash:generateContent",
                body: #"{"cachedContent":"\#(cache)","contents":[{"parts":[{"text":"x"}]}]}"#
            ))
            #expect(answer.status == 429)
            #expect(answer.header("retry-after") != nil)
            #expect(fakes[0].received().map(\.key) == [owner])
        }
    }

    @Test func aDisabledOwnerKeyIsNamedAndNoOtherKeyIsUsed() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            let created = try await gateway.send(gateway.request("/v1beta/cachedContents", body: "{}"))
            let cache = try #require(try created.json()["name"] as? String)
            let owner = try #require(fakes[0].resourceOwners()[cache])
            try gateway.database.setKeyState(owner, to: .disabled)
            fakes[0].clearReceived()
            try await gateway.waitForReload()
            let answer = try await gateway.send(gateway.request("/v1beta/\(cache)", method: .GET))
            #expect(answer.status == 409)
            #expect(answer.text.contains("FAILED_PRECONDITION") && answer.text.contains(cache))
            #expect(!answer.text.contains(owner))
            #expect(fakes[0].received().allSatisfy { $0.key == owner }, "never another key")
        }
    }

    @Test func resourcesOfTwoKeysInOneRequestAreTheClientsError() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            var caches: [String] = []
            for _ in 0..<2 {
                let created = try await gateway.send(gateway.request("/v1beta/cachedContents", body: "{}"))
                caches.append(try #require(try created.json()["name"] as? String))
            }
            let owners = caches.map { fakes[0].resourceOwners()[$0] }
            try #require(owners[0] != owners[1], "two keys in turn made the two caches")
            fakes[0].clearReceived()
            let answer = try await gateway.send(gateway.request(
                "/v1beta/models/gemini-2.5-flash:generateContent",
                body: #"{"cachedContent":"\#(caches[0])","contents":[{"parts":[{"fileData":{"fileUri":"x/v1beta/\#(caches[1])"}}]}]}"#
            ))
            #expect(answer.status == 400)
            #expect(answer.text.contains("INVALID_ARGUMENT"))
            #expect(fakes[0].received().isEmpty)
            let rows = try await gateway.requestRows(count: 3)
            #expect(rows.last?["outcome"] as String? == "client_error")
        }
    }
}
