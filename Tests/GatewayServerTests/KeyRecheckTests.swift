import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import Testing
import TestSupport

/// `--invalid-key-recheck` over real sockets: a first `API_KEY_INVALID` only cools the key; a
/// second one after the cooldown soft-deletes it; a success in between clears the suspicion.
@Suite struct KeyRecheckTests {
    let a = testKey("a"), b = testKey("b")
    static let grace = 1.0

    /// The key's cooldowns in the database (written behind by the gateway).
    /// The key's cooldown rows as written, also those already over: the grace is short, and on a
    /// busy machine the check may come after its end.
    func cooldowns(of key: String, in database: AppDatabase) throws -> [KeyCooldownRecord] {
        let id = try database.findKey(key).id
        return try database.read { db in try KeyCooldownRecord.filter(Column("key_id") == id).fetchAll(db) }
    }

    /// Waits until the running gateway has B disabled and A's grace cooldown over: A alone usable.
    func waitForOnlyAUsable(_ gateway: GatewayHarness) async throws {
        try await gateway.waitForReload()
        try await waitUntil("key a's cooldown to end") {
            let pool = gateway.gateway.pool.snapshot()
            return pool.activeKeys == 1 && pool.coolingKeys == 0
        }
    }

    @Test func aFirstInvalidCoolsTheKeyAndASuccessAfterTheCooldownKeepsIt() async throws {
        try await withGateway(keys: [a, b], configure: { $0.policy.invalidKeyGrace = Self.grace }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .fixture("400-api-key-invalid"))])

            // The request fails over to the other key at once.
            let first = try await gateway.generate()
            #expect(first.status == 200)
            #expect(first.header("x-fake-key") == String(b.suffix(4)))

            // A is cooling for every model, not deleted, and the cooldown is in SQLite.
            #expect(try await gateway.eventually { db in try cooldowns(of: a, in: db).contains { $0.model == "*" } })
            let cooldown = try #require(try cooldowns(of: a, in: gateway.database).first)
            #expect(cooldown.reason == CooldownPolicy.invalidKeyRecheckReason)
            #expect(try gateway.database.findKey(a).state == .active)
            for _ in 0..<3 { #expect(try await gateway.generate().header("x-fake-key") == String(b.suffix(4))) }

            // With B out of the way and the cooldown over, A is re-checked and works.
            try gateway.database.setKeyState(b, to: .disabled)
            try await waitForOnlyAUsable(gateway)
            let recheck = try await gateway.generate()
            #expect(recheck.status == 200)
            #expect(recheck.header("x-fake-key") == String(a.suffix(4)))

            // The suspicion is over: another API_KEY_INVALID earns another grace, not a deletion.
            fakes[0].setRules([.init(key: a, times: 1, reply: .fixture("400-api-key-invalid"))])
            let again = try await gateway.generate()
            #expect(again.status == 429, "the only key is cooling: \(again.text)")
            // The verdict is in the pool before the answer goes out: cooling, not deleted.
            let pool = gateway.gateway.pool.snapshot()
            #expect(pool.activeKeys == 1 && pool.coolingKeys == 1, "\(pool)")
            #expect(try gateway.database.findKey(a).state == .active)
            #expect(fakes[0].received().filter { $0.key == a }.count == 3)
        }
    }

    @Test func anInvalidAgainAfterTheCooldownSoftDeletesTheKey() async throws {
        try await withGateway(keys: [a, b], configure: { $0.policy.invalidKeyGrace = Self.grace }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, reply: .fixture("400-api-key-invalid"))])
            #expect(try await gateway.generate().status == 200)
            #expect(try await gateway.eventually { db in !(try cooldowns(of: a, in: db)).isEmpty })
            #expect(try gateway.database.findKey(a).state == .active)

            try gateway.database.setKeyState(b, to: .disabled)
            try await waitForOnlyAUsable(gateway)
            let recheck = try await gateway.generate()
            #expect(recheck.status == 503, "the only key was refused: \(recheck.text)")
            #expect(try await gateway.eventually { db in try db.findKey(a).state == .deleted })
            let key = try gateway.database.findKey(a)
            #expect(key.deletedReason == "API_KEY_INVALID")
            #expect(fakes[0].received().filter { $0.key == a }.count == 2, "tried once, re-checked once")
            for line in gateway.logs.all { #expect(!line.contains(a) && !line.contains(b)) }
        }
    }

    // MARK: keys check --restore while serving

    @Test func cooldownsClearedInTheDatabaseFreeTheKeyInTheRunningGateway() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .fixture("403-service-disabled"))])
            #expect(try await gateway.generate().header("x-fake-key") == String(b.suffix(4)))
            #expect(try await gateway.eventually { db in !(try cooldowns(of: a, in: db)).isEmpty })

            // What `keys check --restore` does for a cooling key found alive.
            let id = try #require(try gateway.database.findKey(a).id)
            #expect(try gateway.database.clearKeyCooldowns(id: id) == 1)
            #expect(try cooldowns(of: a, in: gateway.database).isEmpty)
            try gateway.database.setKeyState(b, to: .disabled)
            // The running gateway reads both changes at its next reload check.
            try await gateway.waitForReload()
            let answer = try await gateway.generate()
            #expect(answer.status == 200, "the 10-minute cooldown held in memory is gone: \(answer.text)")
            #expect(answer.header("x-fake-key") == String(a.suffix(4)))
            // A key that is not active is left alone.
            #expect(try gateway.database.clearKeyCooldowns(id: try #require(try gateway.database.findKey(b).id)) == nil)
        }
    }
}
