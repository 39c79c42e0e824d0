import Foundation
import GatewayCore
import GRDB
@testable import GatewayStore
import Testing
import TestSupport

@Suite struct KeyImportTests {
    func keys(_ text: String) -> ListFile.Parsed<ListFile.KeyEntry> { ListFile.parseKeys(Array(text.utf8)) }

    @Test func importIsIdempotentAndDeduplicates() throws {
        let store = try AppDatabase.inMemory()
        let file = keys("AIzaKeyAlpha0000000001\nAIzaKeyBravo0000000002 proj\nAIzaKeyAlpha0000000001\nbad!\n")
        let first = try store.importKeys(file)
        #expect(first.added == 2)
        #expect(first.duplicatesInFile == 1)
        #expect(first.invalid.map(\.line) == [4])
        let second = try store.importKeys(file)
        #expect(second.added == 0)
        #expect(second.alreadyPresent == 2)
        let listed = try store.listKeys()
        #expect(listed.count == 2)
        #expect(listed.map(\.project) == [nil, "proj"])
        #expect(listed.allSatisfy { $0.state == .active })
    }

    @Test func storedFingerprintAndTailMatchTheSecret() throws {
        let store = try AppDatabase.inMemory()
        _ = try store.importKeys(keys("AIzaKeyAlpha0000000001\n"))
        let record = try store.read { db in try KeyRecord.fetchOne(db)! }
        #expect(record.fingerprint == Secret.fingerprint("AIzaKeyAlpha0000000001"))
        #expect(record.tail == "0001")
        #expect(record.secret == "AIzaKeyAlpha0000000001")
    }

    @Test func aSoftDeletedKeyIsNotResurrected() throws {
        let store = try AppDatabase.inMemory()
        _ = try store.importKeys(keys("AIzaKeyAlpha0000000001\nAIzaKeyBravo0000000002\n"))
        let deleted = try store.setKeyState("1", to: .deleted, reason: "API_KEY_INVALID")
        let again = try store.importKeys(keys("AIzaKeyAlpha0000000001\nAIzaKeyBravo0000000002\n"))
        #expect(again.added == 0)
        #expect(again.alreadyPresent == 1)
        #expect(again.softDeleted == [deleted.fingerprint])
        let alpha = try store.listKeys().first { $0.id == 1 }!
        #expect(alpha.state == .deleted)
        #expect(alpha.deletedReason == "API_KEY_INVALID")
        #expect(alpha.deletedAt != nil)
        // The row is kept: a soft delete never removes it, and restore brings it back.
        try store.setKeyState(deleted.fingerprint, to: .active)
        #expect(try store.listKeys().first { $0.id == 1 }?.state == .active)
    }

    @Test func aNewLabelUpdatesTheProject() throws {
        let store = try AppDatabase.inMemory()
        _ = try store.importKeys(keys("AIzaKeyAlpha0000000001\n"))
        let summary = try store.importKeys(keys("AIzaKeyAlpha0000000001,proj-x\n"))
        #expect(summary.labelsUpdated == 1)
        #expect(try store.listKeys().first?.project == "proj-x")
    }

    @Test func keysAndUpstreamsTogetherAreOneTransaction() throws {
        let store = try AppDatabase.inMemory()
        // A trigger that fails the upstream insert stands in for any error half-way through.
        try store.write { db in
            try db.execute(sql: """
                CREATE TEMP TRIGGER fail_upstreams BEFORE INSERT ON upstreams
                BEGIN SELECT RAISE(ABORT, 'boom'); END
                """)
        }
        #expect(throws: (any Error).self) {
            try store.importLists(
                keys: keys("AIzaKeyAlpha0000000001\n"),
                upstreams: ListFile.parseUpstreams(Array("https://relay.example.com\n".utf8))
            )
        }
        #expect(try store.listKeys().isEmpty)
    }

    @Test func aHundredThousandKeysImportInSeconds() async throws {
        let dir = TemporaryDirectory()
        let store = try AppDatabase.open(path: dir.file("gateway.db"))
        let (summary, seconds) = try await onOwnThread {
            let text = (0..<100_000).map { String(format: "AIzaGeneratedKey%020d", $0) }.joined(separator: "\n")
            let started = Date()
            let summary = try store.importKeys(ListFile.parseKeys(Array(text.utf8)))
            return (summary, Date().timeIntervalSince(started))
        }
        #expect(summary.added == 100_000)
        print("imported 100000 keys in \(String(format: "%.2f", seconds)) s")
        let count = try await store.writer.read { db in try KeyRecord.fetchCount(db) }
        #expect(count == 100_000)
    }
}

@Suite struct AdminTests {
    @Test func keySelectorsByIdFingerprintTailAndSecret() throws {
        let store = try AppDatabase.inMemory()
        _ = try store.importKeys(ListFile.parseKeys(Array("AIzaKeyAlpha0000000001\nAIzaKeyBravo0000000002\n".utf8)))
        let bravo = Secret.fingerprint("AIzaKeyBravo0000000002")
        #expect(try store.findKey("2").fingerprint == bravo)
        #expect(try store.findKey(bravo).fingerprint == bravo)
        #expect(try store.findKey(String(bravo.prefix(6))).fingerprint == bravo)
        #expect(try store.findKey("0002").fingerprint == bravo)
        #expect(try store.findKey("…0002").fingerprint == bravo)
        #expect(try store.findKey("AIzaKeyBravo0000000002").fingerprint == bravo)
        #expect(throws: StoreError.self) { try store.findKey("zzzz") }
    }

    @Test func unknownSelectorErrorNeverQuotesAWholeKey() throws {
        let store = try AppDatabase.inMemory()
        do {
            _ = try store.findKey("AIzaSomeoneElsesKeyThatIsSecret01")
            Issue.record("expected an error")
        } catch {
            #expect(!"\(error)".contains("SomeoneElses"))
        }
    }

    @Test func disableRestoreAndCooldownsInListing() throws {
        let store = try AppDatabase.inMemory()
        _ = try store.importKeys(ListFile.parseKeys(Array("AIzaKeyAlpha0000000001 proj\nAIzaKeyBravo0000000002\n".utf8)))
        let now = Date()
        try store.write { db in
            try KeyCooldownRecord(keyId: 2, model: "gemini-2.5-flash", until: now + 60, reason: "RATE_LIMIT_PER_MINUTE",
                                  quotaId: "GenerateRequestsPerMinute", createdAt: now).insert(db)
            try KeyCooldownRecord(keyId: 2, model: "gemini-old", until: now - 60, reason: "expired", quotaId: nil, createdAt: now).insert(db)
            try ProjectCooldownRecord(project: "proj", model: "gemini-2.5-pro", until: now + 3600, reason: "RATE_LIMIT_PER_DAY",
                                      quotaId: nil, createdAt: now).insert(db)
        }
        let listed = try store.listKeys(now: now)
        #expect(listed[0].cooldowns.map(\.model) == ["gemini-2.5-pro"])
        #expect(listed[0].cooldowns.first?.project == "proj")
        #expect(listed[1].cooldowns.map(\.model) == ["gemini-2.5-flash"])
        let status = try store.status(now: now)
        #expect(status.coolingKeys == 2)
        #expect(status.usableKeys == 0)

        try store.setKeyState("2", to: .disabled)
        #expect(try store.status(now: now).disabledKeys == 1)
        try store.setKeyState("2", to: .active)
        // Restoring clears the key's own cooldowns.
        #expect(try store.listKeys(now: now)[1].cooldowns.isEmpty)
    }

    @Test func upstreamsAddDisableRestore() throws {
        let store = try AppDatabase.inMemory()
        #expect(try store.addUpstream("https://Relay.example.com/").added == 1)
        #expect(try store.addUpstream("https://relay.example.com").alreadyPresent == 1)
        #expect(throws: StoreError.self) { try store.addUpstream("ftp://relay.example.com") }
        try store.setUpstreamState("https://relay.example.com", to: .disabled)
        #expect(try store.listUpstreams().first?.state == .disabled)
        #expect(try store.addUpstream("https://relay.example.com").disabled == ["https://relay.example.com"])
        try store.setUpstreamState("1", to: .active)
        #expect(try store.listUpstreams().first?.state == .active)
        #expect(try store.status().activeUpstreams == 1)
    }

    @Test func clientsStoreOnlyTheHash() throws {
        let store = try AppDatabase.inMemory()
        let (client, token) = try store.addClient(name: "alice")
        #expect(client.tokenHash == Secret.tokenHash(token))
        #expect(try store.client(tokenHash: Secret.tokenHash(token))?.name == "alice")
        let everything = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM clients").map { $0.description }.joined()
        }
        #expect(!everything.contains(token))
        #expect(throws: StoreError.self) { try store.addClient(name: "alice") }
        try store.revokeClient("alice")
        #expect(try store.client(tokenHash: Secret.tokenHash(token)) == nil)
        #expect(try store.listClients().first?.revokedAt != nil)
        // The name is free again after a revoke.
        #expect(try store.addClient(name: "alice").client.name == "alice")
    }
}
