import Foundation
import GatewayCore
import GRDB
@testable import GatewayStore
import Synchronization
import Testing

@Suite struct MigrationTests {
    @Test func everyMigrationFileIsEmbeddedAndApplied() throws {
        let files = try FileManager.default
            .contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("migrations").path)
            .filter { $0.hasSuffix(".sql") }
            .map { String($0.dropLast(4)) }
            .sorted()
        #expect(!files.isEmpty)
        #expect(AppDatabase.migrationIdentifiers == files)

        let store = try AppDatabase.inMemory()
        let applied = try store.read { db in try AppDatabase.migrator.appliedMigrations(db) }
        #expect(applied == files)
        let tables = try store.read { db in
            try String.fetchSet(db, sql: "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        }
        for table in ["keys", "upstreams", "key_cooldowns", "project_cooldowns", "clients", "requests", "attempts"] {
            #expect(tables.contains(table), "missing table \(table)")
        }
    }

    @Test func migrationFileNamesAreNumberedAndOrdered() throws {
        for identifier in AppDatabase.migrationIdentifiers {
            #expect(identifier.range(of: #"^\d{4}_[a-z0-9_]+$"#, options: .regularExpression) != nil, "\(identifier)")
        }
    }
}

@Suite struct DatabaseFileTests {
    @Test func createdWithMode0600InWALMode() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("gateway.db")
        let store = try AppDatabase.open(path: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let journal = try store.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(journal == "wal")
    }

    #if os(Linux)
    /// The request log's batches are written on GRDB's queue, which must not outrank the threads
    /// that serve (the event loops run at the process's nice value, as its main thread does):
    /// GRDB's default QoS ran it at nice -2, and its bursts held up requests. Only where the
    /// process may raise a thread's priority (root, CAP_SYS_NICE): elsewhere every QoS reads 0.
    @Test(.enabled(if: dispatchRaisesUserInitiated, "this process may not raise a thread's priority"))
    func databaseWorkDoesNotOutrankTheEventLoops() async throws {
        let dir = TemporaryDirectory()
        let store = try AppDatabase.open(path: dir.file("gateway.db"))
        let writers = try await store.writer.write { _ in try Self.niceOfThisThread() }
        let process = try Self.nice(statFile: "/proc/self/stat")
        #expect(writers >= process, "the writer's nice \(writers), the process's \(process)")
    }

    /// Whether libdispatch runs `.userInitiated` work above the process here (GRDB's default,
    /// the control of the test above).
    static let dispatchRaisesUserInitiated: Bool = {
        let result = Mutex<Int?>(nil)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue(label: "qos-control", qos: .userInitiated).async {
            result.withLock { $0 = try? niceOfThisThread() }
            done.signal()
        }
        done.wait()
        guard let control = result.withLock({ $0 }), let process = try? nice(statFile: "/proc/self/stat") else { return false }
        return control < process
    }()

    static func niceOfThisThread() throws -> Int {
        try nice(statFile: "/proc/thread-self/stat")
    }

    static func nice(statFile: String) throws -> Int {
        let stat = try String(contentsOfFile: statFile, encoding: .utf8)
        // The fields after the command name, which ends with the last ")": nice is the 19th.
        let fields = stat[stat.lastIndex(of: ")")!...].split(separator: " ")
        return Int(fields[17]) ?? 0
    }
    #endif

    @Test func reopeningKeepsData() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("gateway.db")
        _ = try AppDatabase.open(path: path).importKeys(ListFile.parseKeys(Array("AIzaPersistedKey000001\n".utf8)))
        let keys = try AppDatabase.open(path: path).listKeys()
        #expect(keys.map(\.tail) == ["0001"])
    }

    @Test func aDirectoryIsRefused() throws {
        let dir = TemporaryDirectory()
        #expect(throws: StoreError.isDirectory(path: dir.path)) { try AppDatabase.open(path: dir.path) }
    }

    @Test func aReadOnlyPlaceIsRefused() throws {
        // /proc refuses new files even to root, which ignores permission bits.
        #expect {
            try AppDatabase.open(path: "/proc/gateway-test.db")
        } throws: { error in
            guard case .cannotCreate(let path, _) = error as? StoreError else { return false }
            return path == "/proc/gateway-test.db"
        }
    }

    @Test func aMissingDirectoryIsRefused() throws {
        let dir = TemporaryDirectory()
        #expect {
            try AppDatabase.open(path: dir.file("no/such/dir/gateway.db"))
        } throws: { error in
            (error as? StoreError).map { "\($0)".contains("No such file or directory") } ?? false
        }
    }

    @Test func aFileThatIsNotADatabaseIsRefused() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("notes.txt")
        try Data(String(repeating: "this is not sqlite\n", count: 200).utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: StoreError.notADatabase(path: path)) { try AppDatabase.open(path: path) }
    }

    /// SQLite checks no foreign keys (`AppDatabase.checksForeignKeys`): the gateway itself must
    /// never leave a reference dangling. Everything it writes, then `PRAGMA foreign_key_check`.
    @Test func whatTheGatewayWritesLeavesNoReferenceDangling() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        let client = try store.addClient(name: "alice").client
        try await store.insert((0..<20).map {
            var entry = RetentionTests.entry("r\($0)", at: Date(), keys: keys, upstream: upstream, verdicts: ["throttled", "success"])
            entry.clientId = client.id
            return entry
        })
        try await store.apply([
            .keyCooldown(KeyCooldown(keyID: keys[0], model: "gemini-2.5-flash", until: Date().addingTimeInterval(60), reason: "429")),
            .keyDeleted(id: keys[1], reason: "API_KEY_INVALID", at: Date()),
            .upstreamFailed(id: upstream, until: Date().addingTimeInterval(30), streak: 1, reason: "reset", at: Date()),
        ])
        try await store.saveResourceOwners(["files/abc"], owner: ResourceOwner(keyID: keys[0], upstreamID: upstream, clientID: client.id))
        _ = try store.setKeyState(try store.listKeys()[0].fingerprint, to: .disabled)
        _ = try store.revokeClient("alice")
        _ = try await store.pruneBatch(before: Date().addingTimeInterval(3_600), limit: 5)
        let dangling = try store.read { db in try Row.fetchAll(db, sql: "PRAGMA foreign_key_check") }
        #expect(dangling.isEmpty, "\(dangling)")
        #expect(try store.read { db in try Int.fetchOne(db, sql: "PRAGMA foreign_keys") } == 0)
    }

    @Test func aNewerSchemaIsNeverDowngraded() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("gateway.db")
        let store = try AppDatabase.open(path: path)
        try store.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('9999_from_the_future')") }
        #expect(throws: StoreError.newerSchema(unknownMigrations: ["9999_from_the_future"])) {
            try AppDatabase.open(path: path)
        }
    }

    @Test func aWriteWaitsForTheBusyTimeoutThenFailsCleanly() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("gateway.db")
        let store = try AppDatabase.open(path: path, busyTimeout: 0.3)
        // Another connection (as another process would) holds the write lock.
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true
        let other = try DatabaseQueue(path: path, configuration: configuration)
        try other.inDatabase { db in try db.execute(sql: "BEGIN IMMEDIATE") }
        let started = Date()
        #expect(throws: StoreError.busy(path: path, seconds: 0.3)) {
            try store.importKeys(ListFile.parseKeys(Array("AIzaBlockedKey00000001\n".utf8)))
        }
        #expect(Date().timeIntervalSince(started) >= 0.25)
        try other.inDatabase { db in try db.execute(sql: "ROLLBACK") }
        // Nothing was half-written, and the database still works.
        #expect(try store.listKeys().isEmpty)
        let summary = try store.importKeys(ListFile.parseKeys(Array("AIzaBlockedKey00000001\n".utf8)))
        #expect(summary.added == 1)
        let integrity = try store.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == "ok")
    }
}
