import Foundation
import Testing
@testable import GatewayCore

@Suite struct ProjectResourceTests {
    // MARK: Names in paths

    @Test(arguments: [
        ("/v1beta/files/abc-123", "files/abc-123"),
        ("/v1beta/files/abc:download", "files/abc"),
        ("/download/v1beta/files/abc:download", "files/abc"),
        ("/v1/cachedContents/xyz", "cachedContents/xyz"),
        ("/v1beta/batches/42:cancel", "batches/42"),
        ("/v1beta/tunedModels/my-model:generateContent", "tunedModels/my-model"),
    ])
    func aPathNamesItsResource(path: String, name: String) {
        #expect(ProjectResource.named(inPath: path) == name)
    }

    @Test(arguments: ["/v1beta/files", "/v1beta/models/gemini-2.5-flash:generateContent", "/files/abc", "/v1beta/files/:x", "/", ""])
    func otherPathsNameNothing(path: String) {
        #expect(ProjectResource.named(inPath: path) == nil)
    }

    @Test func anUploadSessionComesFromTheUploadID() {
        #expect(ProjectResource.uploadSession(path: "/upload/v1beta/files", query: "upload_id=AB-c_1&upload_protocol=resumable") == "uploads/AB-c_1")
        #expect(ProjectResource.uploadSession(path: "/upload/v1beta/files", query: "upload_protocol=resumable") == nil)
        #expect(ProjectResource.uploadSession(path: "/v1beta/files", query: "upload_id=x") == nil)
        #expect(ProjectResource.uploadID(inURL: "https://g.example/upload/v1beta/files?upload_id=Q%2D1&upload_protocol=resumable") == "Q-1")
    }

    @Test func creatingCalls() {
        #expect(ProjectResource.creates(method: "POST", path: "/upload/v1beta/files"))
        #expect(ProjectResource.creates(method: "POST", path: "/v1beta/cachedContents"))
        #expect(ProjectResource.creates(method: "POST", path: "/v1beta/models/gemini-2.5-flash:batchGenerateContent"))
        #expect(ProjectResource.creates(method: "POST", path: "/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent"))
        #expect(!ProjectResource.creates(method: "GET", path: "/v1beta/cachedContents"))
        #expect(!ProjectResource.creates(method: "POST", path: "/v1beta/models/gemini-2.5-flash:generateContent"))
        #expect(!ProjectResource.creates(method: "POST", path: "/v1beta/models/gemini-embedding-001:batchEmbedContents"))
        #expect(!ProjectResource.creates(method: "POST", path: "/v1beta/cachedContents/x/cachedContents"))
        #expect(!ProjectResource.creates(method: "POST", path: "/v1beta/other/m:batchGenerateContent"))
        #expect(!ProjectResource.creates(method: "POST", path: "/cachedContents"))
        #expect(ProjectResource.creates(method: "POST", path: "/v1/tunedModels"))
    }

    // MARK: Names in bodies and answers

    @Test func aBodyReferencesFilesAndCachedContents() {
        let body = #"{"cachedContent":"cachedContents/c1","contents":[{"parts":[{"fileData":{"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/f-1"}},{"fileData":{"fileUri":"files/f2"}},{"text":"my profiles/x and files/f-1 again"}]}]}"#
        let names = Array(body.utf8).withUnsafeBytes { ProjectResource.referenced(inBody: $0) }
        #expect(names == ["files/f-1", "files/f2", "cachedContents/c1"])
        #expect(Array("no resources here, files/".utf8).withUnsafeBytes { ProjectResource.referenced(inBody: $0) }.isEmpty)
    }

    @Test func anAnswerNamesWhatWasCreated() {
        func created(_ text: String) -> [String] { ProjectResource.created(inAnswer: Array(text.utf8)) }
        #expect(created(#"{"file":{"name":"files/abc","uri":"https://x/v1beta/files/abc"}}"#) == ["files/abc"])
        #expect(created(#"{"name":"cachedContents/c9","model":"models/m"}"#) == ["cachedContents/c9"])
        #expect(created(#"{"name":"batches/7","metadata":{"state":"BATCH_STATE_PENDING"}}"#) == ["batches/7"])
        #expect(created(#"{"name":"operations/1"}"#).isEmpty)
        #expect(created(#"{"name":"files/"}"#).isEmpty)
        #expect(created("not json").isEmpty)
    }

    @Test func theUploadURLIsRewrittenToTheGateway() {
        let google = "https://generativelanguage.googleapis.com/upload/v1beta/files?upload_id=U1&upload_protocol=resumable"
        #expect(ProjectResource.rewrite(uploadURL: google, upstreamBase: "https://generativelanguage.googleapis.com", publicBase: "http://127.0.0.1:8000/")
            == "http://127.0.0.1:8000/upload/v1beta/files?upload_id=U1&upload_protocol=resumable")
        // A relay under a path prefix hands out URLs under it; the prefix is the relay's, not the gateway's.
        let relayed = "https://relay.example/gemini/upload/v1beta/files?upload_id=U2"
        #expect(ProjectResource.rewrite(uploadURL: relayed, upstreamBase: "https://relay.example/gemini/", publicBase: "https://gw.example")
            == "https://gw.example/upload/v1beta/files?upload_id=U2")
        #expect(ProjectResource.rewrite(uploadURL: "not a url", upstreamBase: "https://x", publicBase: "https://gw") == nil)
    }

    // MARK: The pinned pick

    @Test func aPinnedPickUsesTheOwnerKeyAndItsUpstreamOrSaysWhyNot() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(2))
        // Key 3 however often; any upstream, then the other one once the first was tried.
        let first = scheduler.pick(key: 3, upstream: nil, model: "m", now: baseDate)
        #expect(first.keyID == 3)
        let second = scheduler.pick(key: 3, upstream: nil, model: "m", now: baseDate, tried: [first.pairID!])
        #expect(second.keyID == 3 && second.upstreamID != first.upstreamID)
        #expect(scheduler.pick(key: 3, upstream: nil, model: "m", now: baseDate, tried: [first.pairID!, second.pairID!]) == .exhausted)
        // An upload session: that upstream only.
        #expect(scheduler.pick(key: 2, upstream: 2, model: "m", now: baseDate).upstreamID == 2)
        #expect(scheduler.pick(key: 2, upstream: 2, model: "m", now: baseDate, tried: [PairID(key: 2, upstream: 2)]) == .exhausted)
        #expect(scheduler.pick(key: 2, upstream: 9, model: "m", now: baseDate) == .noUpstreams)
        // Not in the pool (disabled or deleted).
        #expect(scheduler.pick(key: 7, upstream: nil, model: "m", now: baseDate) == .noKeys)
        // Cooling for the model: the owner's cooldown, never another key.
        let until = baseDate.addingTimeInterval(30)
        scheduler.replace(
            keys: poolKeys(3), upstreams: poolUpstreams(2),
            cooldowns: [KeyCooldown(keyID: 3, model: "m", until: until, reason: "RATE_LIMITED", quotaID: nil)]
        )
        #expect(scheduler.pick(key: 3, upstream: nil, model: "m", now: baseDate) == .allKeysCooling(until: until))
        #expect(scheduler.pick(key: 3, upstream: nil, model: "other", now: baseDate).keyID == 3)
    }
}
