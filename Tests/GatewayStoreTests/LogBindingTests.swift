import Foundation
import GatewayCore
import GRDB
@testable import GatewayStore
import Testing

/// The request log's rows are bound with SQLite's C API and folded into the daily tables in Swift
/// (RequestLog.swift, SQLiteBinding.swift, AppDatabase+DailyTotals.swift). These tests hold both
/// to what GRDB and the SQL views of migration 0002 give for the same rows: the same bytes, the
/// same totals, to the last bit.
@Suite struct LogBindingTests {
    /// A small deterministic generator (Knuth's MMIX linear congruential one, high half).
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (state >> 32) | (state << 32)
        }
    }

    // MARK: - Dates

    static func grdbText(_ date: Date) -> String? {
        String.fromDatabaseValue(date.databaseValue)
    }

    @Test func datesAreWrittenAsGRDBWritesThem() {
        var generator = Generator(state: 7)
        var dates: [Date] = [
            Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: -0.0004), Date(timeIntervalSince1970: -0.0005),
            Date(timeIntervalSince1970: -0.0006), Date(timeIntervalSince1970: -1), Date(timeIntervalSince1970: -86_400.5),
            Date(timeIntervalSince1970: 1_764_250_000.9995), Date(timeIntervalSince1970: 1_764_250_000.99949),
            Date(timeIntervalSince1970: 1_764_250_000.0005), Date(timeIntervalSince1970: 1_764_250_000.0004999),
            Date(timeIntervalSinceReferenceDate: 785_942_800.9995), Date(timeIntervalSinceReferenceDate: 785_942_800.0005),
            Date(timeIntervalSince1970: 946_684_799.9995),  // 1999-12-31 23:59:59.9995: the next year
            Date(timeIntervalSince1970: 951_782_400),  // 2000-02-29
            Date(timeIntervalSince1970: 4_107_542_399.9996),  // 2100-02-28 23:59:59.9996: no 29th in 2100
            Date(timeIntervalSince1970: 253_402_300_799.999),  // 9999-12-31 23:59:59.999
            Date(timeIntervalSince1970: 253_402_300_799.9995),  // ... rounds into the year 10000
            Date(timeIntervalSince1970: 253_402_300_800), Date(timeIntervalSince1970: -12_219_292_800),  // 1582-10-15
            Date(timeIntervalSince1970: -62_135_596_800), .distantPast, .distantFuture, Date(),
        ]
        // Every day boundary of a few years around now and the leap years, just before and after.
        for day in stride(from: 10_900, to: 20_900, by: 1) {
            let midnight = Double(day) * 86_400
            dates.append(Date(timeIntervalSince1970: midnight - 0.0005))
            dates.append(Date(timeIntervalSince1970: midnight.nextDown))
            dates.append(Date(timeIntervalSince1970: midnight - 0.000_500_000_1))
        }
        // Random instants, and random instants at half a millisecond.
        for _ in 0..<20_000 {
            let seconds = Double(Int64.random(in: 0..<253_402_300_800, using: &generator))
            dates.append(Date(timeIntervalSince1970: seconds + Double.random(in: 0..<1, using: &generator)))
            let millisecond = Double(Int.random(in: 0..<1000, using: &generator)) / 1000
            dates.append(Date(timeIntervalSince1970: seconds + millisecond + 0.0005))
            dates.append(Date(timeIntervalSinceReferenceDate: Double(Int64.random(in: -978_307_200..<788_000_000, using: &generator))
                + millisecond + 0.0005))
        }
        var mismatches: [String] = []
        for date in dates {
            let timestamp = LogTimestamp(date)
            let expected = Self.grdbText(date)
            if timestamp.text != expected || timestamp.day != expected.map({ String($0.prefix(10)) }) {
                mismatches.append("\(date.timeIntervalSinceReferenceDate): \(timestamp.text) vs \(expected ?? "nil")")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(10))")
    }

    // MARK: - Rows

    /// The insert as it was written before: every value boxed and bound by GRDB.
    static func insertThroughGRDB(_ entries: [RequestLogEntry], _ db: Database) throws {
        for e in entries {
            let values: [(any DatabaseValueConvertible)?] = [
                e.requestId, e.startedAt, e.clientId, e.clientName, e.method, e.endpoint, e.apiVersion, e.model,
                e.isStream, e.status, e.outcome.rawValue, e.attempts.count, e.keyId, e.keyFingerprint, e.upstreamId,
                e.upstreamUrl, e.latencyMs, e.ttfbMs, e.requestBytes, e.responseBytes, e.promptTokens,
                e.cachedTokens, e.candidatesTokens, e.thoughtsTokens, e.toolUseTokens, e.totalTokens,
                e.usageStatus.rawValue, e.errorStatus, e.errorReason, e.queueWaitMs, e.cost?.costMicros ?? 0,
                e.cost?.listCostMicros ?? 0, (e.cost?.status ?? .none).rawValue,
            ]
            try db.execute(sql: AppDatabase.insertRequestSQL, arguments: StatementArguments(values))
            for a in e.attempts {
                let values: [(any DatabaseValueConvertible)?] = [
                    e.requestId, a.attempt, a.startedAt, a.keyId, a.upstreamId, a.status, a.verdict,
                    a.googleStatus, a.reason, a.quotaId, a.latencyMs,
                ]
                try db.execute(sql: AppDatabase.insertAttemptSQL, arguments: StatementArguments(values))
            }
        }
    }

    /// A value exactly as stored: its storage class and its bits.
    static func exact(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return "null"
        case .int64(let number): return "integer \(number)"
        case .double(let number): return "real \(String(number.bitPattern, radix: 16)) (\(number))"
        case .string(let text): return "text \(Array(text.utf8))"
        case .blob(let data): return "blob \(Array(data))"
        }
    }

    /// Every row of `table` in the order of `order`, every value exactly.
    static func dump(_ store: AppDatabase, _ table: String, orderBy order: String) async throws -> [[String]] {
        try await store.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM \(table) ORDER BY \(order)").map { row in
                row.columnNames.map { "\($0)=" + exact(row[$0] as DatabaseValue) }
            }
        }
    }

    struct Fixture {
        let directory = TemporaryDirectory()
        let store: AppDatabase
        let keys: [Int64]
        let upstream: Int64
        let clients: [Int64]

        init() throws {
            let (store, keys, upstream) = try RetentionTests.database(directory)
            (self.store, self.keys, self.upstream) = (store, keys, upstream)
            clients = try ["alice", "bob"].compactMap { try store.addClient(name: $0).client.id }
        }
    }

    static let texts: [String?] = [
        nil, "", "-", "alice", "gemini-2.5-flash", "\u{e9}t\u{e9}", "e\u{301}te\u{301}", "nul\0one", "nul\0two", "nul",
        "emoji 🚀 \"quoted\" 'single' \\ back", String(repeating: "long ", count: 40),
    ]
    static let verdicts = ["success", "throttled", "key_dead", "key_unusable", "upstream_blocked", "client_error",
                           "transient", "upstream_failure", "cancelled", "throttled\0x", "other"]
    static let doubles: [Double?] = [nil, 0, -0.0, 0.1, 1, 12.345_678_9, .nan, .infinity, -1, 1e15, 1e15.nextUp,
                                     1e300, .leastNonzeroMagnitude, 999_999.999]

    /// Random rows with every kind of value; `fractional` latencies make real sums depend on order.
    static func entries(
        _ count: Int, prefix: String, fixture: Fixture, base: Date, generator: inout Generator, fewGroups: Bool = false
    ) -> [RequestLogEntry] {
        (0..<count).map { index in
            func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &generator)] }
            func maybe<T>(_ value: T) -> T? { Bool.random(using: &generator) ? value : nil }
            func latency() -> Double? {
                Int.random(in: 0..<4, using: &generator) == 0 ? pick(doubles) : Double.random(in: 0..<5_000, using: &generator)
            }
            // Dates over four days, some of them outside what the fast formatting handles.
            let start = Int.random(in: 0..<200, using: &generator) == 0
                ? Date(timeIntervalSince1970: -86_400 * 400 + Double(index))
                : base.addingTimeInterval(Double.random(in: 0..<(fewGroups ? 600 : 4 * 86_400), using: &generator))
            var e = RequestLogEntry(
                requestId: "\(prefix)-\(index)", startedAt: start, method: pick(["POST", "GET"]),
                endpoint: pick(["generateContent", "streamGenerateContent", "countTokens"])
            )
            e.clientId = maybe(pick(fixture.clients))
            e.clientName = fewGroups ? pick(["alice", "bob"]) : pick(texts)
            e.apiVersion = pick(texts)
            e.model = fewGroups ? "gemini-2.5-flash" : pick(texts)
            e.isStream = Bool.random(using: &generator)
            e.status = pick([200, 400, 429, 499, 502, 503])
            e.outcome = fewGroups ? pick([.success, .throttled]) : pick(RequestOutcome.allCases)
            e.keyId = maybe(pick(fixture.keys))
            e.keyFingerprint = pick(texts)
            e.upstreamId = maybe(fixture.upstream)
            e.upstreamUrl = pick(texts)
            e.latencyMs = latency()
            e.ttfbMs = latency()
            e.requestBytes = Int.random(in: 0..<1_000_000, using: &generator)
            e.responseBytes = pick([0, 1_338, Int.random(in: 0..<Int(Int32.max), using: &generator)])
            e.promptTokens = Int.random(in: 0..<100_000, using: &generator)
            e.cachedTokens = Int.random(in: 0..<1_000, using: &generator)
            e.candidatesTokens = Int.random(in: 0..<10_000, using: &generator)
            e.thoughtsTokens = Int.random(in: 0..<10_000, using: &generator)
            e.toolUseTokens = pick([0, 7])
            e.totalTokens = e.promptTokens + e.candidatesTokens
            e.usageStatus = pick(UsageStatus.allCases)
            e.errorStatus = pick(texts)
            e.errorReason = pick(texts)
            e.queueWaitMs = latency()
            // Costs (migration 0007): none, priced, free-tier, unpriced, and sums near the 64-bit edge.
            e.cost = pick([
                nil, RequestCost(costMicros: 33, listCostMicros: 33, status: .priced),
                RequestCost(costMicros: 0, listCostMicros: 557_500, status: .freeTier),
                RequestCost(costMicros: 0, listCostMicros: 0, status: .unpriced),
                RequestCost(costMicros: Int64.random(in: 0..<1_000_000_000, using: &generator), listCostMicros: 1, status: .priced),
            ])
            e.attempts = (0..<Int.random(in: 0...3, using: &generator)).map { attempt in
                AttemptRow(
                    attempt: attempt + 1,
                    // Now and then on another day than its request.
                    startedAt: start.addingTimeInterval(Double(attempt) * pick([0.001, 0.5, 43_200])),
                    keyId: maybe(pick(fixture.keys)), upstreamId: fewGroups ? fixture.upstream : maybe(fixture.upstream),
                    status: maybe(pick([200, 429, 500])), verdict: fewGroups ? pick(["success", "throttled"]) : pick(verdicts),
                    googleStatus: pick(texts), reason: pick(texts), quotaId: pick(texts), latencyMs: latency()
                )
            }
            return e
        }
    }

    @Test func rowsAreStoredAsGRDBStoresThem() async throws {
        var generator = Generator(state: 11)
        let direct = try Fixture(), boxed = try Fixture()
        let base = Date(timeIntervalSince1970: 1_764_201_600 - 3_600)
        for batch in 0..<4 {
            let rows = Self.entries(400, prefix: "b\(batch)", fixture: direct, base: base, generator: &generator)
            try await direct.store.writer.write { db in try AppDatabase.insertRows(rows, db) }
            try await boxed.store.writer.write { db in try Self.insertThroughGRDB(rows, db) }
        }
        // Repeated ids are ignored alike, also among new rows in one many-row statement.
        let again = Self.entries(5, prefix: "b0", fixture: direct, base: base, generator: &generator)
            + Self.entries(AppDatabase.rowsPerInsert + 3, prefix: "c", fixture: direct, base: base, generator: &generator)
        try await direct.store.writer.write { db in try AppDatabase.insertRows(again, db) }
        try await boxed.store.writer.write { db in try Self.insertThroughGRDB(again, db) }
        for (table, order) in [("requests", "id"), ("attempts", "id")] {
            let mine = try await Self.dump(direct.store, table, orderBy: order)
            let grdb = try await Self.dump(boxed.store, table, orderBy: order)
            #expect(mine.count == grdb.count)
            let differing = zip(mine, grdb).filter { $0 != $1 }
            #expect(differing.isEmpty, "\(table): \(differing.prefix(3))")
        }
        #expect(try RetentionTests.count(direct.store, "SELECT COUNT(*) FROM requests") == 1_600 + AppDatabase.rowsPerInsert + 3)
    }

    @Test func theWriterKeepsItsStatementJournalsInMemory() async throws {
        // A statement journal of a many-row insert must not spill to a temporary file on the
        // writer (it doubled the bytes written per request).
        let fixture = try Fixture()
        #expect(try await fixture.store.writer.write { try Int.fetchOne($0, sql: "PRAGMA temp_store") } == 2)
        #expect(try await fixture.store.writer.read { try Int.fetchOne($0, sql: "PRAGMA temp_store") } == 0)
    }

    @Test func aValueSQLiteRefusesFailsTheWriteAndLeavesNothing() async throws {
        let fixture = try Fixture()
        // A row SQLite refuses (here: a trigger of this connection refuses key 9999; a full disk
        // or a corrupt page would do the same).
        try await fixture.store.writer.write { db in
            try db.execute(sql: """
                CREATE TEMP TRIGGER refuse_key BEFORE INSERT ON main.requests WHEN NEW.key_id = 9999
                BEGIN SELECT RAISE(ABORT, 'refused'); END
                """)
        }
        var entry = RetentionTests.entry("refused", at: Date(), keys: fixture.keys, upstream: fixture.upstream)
        entry.keyId = 9_999
        await #expect(throws: DatabaseError.self) { try await fixture.store.insert([entry]) }
        #expect(try RetentionTests.count(fixture.store, "SELECT COUNT(*) FROM requests") == 0)
        // The same in a statement of many rows: the whole batch fails, nothing of it stays.
        var batch = (0..<(AppDatabase.rowsPerInsert + 2)).map {
            RetentionTests.entry("many-\($0)", at: Date(), keys: fixture.keys, upstream: fixture.upstream)
        }
        batch[3].keyId = 9_999
        await #expect(throws: DatabaseError.self) { try await fixture.store.insert(batch) }
        #expect(try RetentionTests.count(fixture.store, "SELECT COUNT(*) FROM requests") == 0)
        #expect(try RetentionTests.count(fixture.store, "SELECT COUNT(*) FROM attempts") == 0)
        // The cached statements still work afterwards.
        try await fixture.store.insert([RetentionTests.entry("ok", at: Date(), keys: fixture.keys, upstream: fixture.upstream)])
        batch[3].keyId = fixture.keys.first
        try await fixture.store.insert(batch)
        #expect(try RetentionTests.count(fixture.store, "SELECT SUM(requests) FROM daily_usage") == 1 + AppDatabase.rowsPerInsert + 2)
    }

    // MARK: - Daily totals

    static let dailyTables = [
        ("daily_usage", "day, client, model"), ("daily_key_usage", "day, key_id"),
        ("daily_upstream_usage", "day, upstream_id, model"), ("daily_upstream_latency", "day, upstream_id, model, bucket_ms"),
        ("log_state", "id"),
    ]

    /// The same batches through ``AppDatabase/insert(_:)`` and through the SQL fold of the views.
    static func compareFolds(_ batches: [[RequestLogEntry]], handInserted: [RequestLogEntry] = []) async throws {
        let swift = try Fixture(), views = try Fixture()
        if !handInserted.isEmpty {
            // Rows inserted without folding, before the log writer's batches.
            for fixture in [swift, views] {
                try await fixture.store.writer.write { db in try AppDatabase.insertRows(handInserted, db) }
            }
        }
        for batch in batches {
            // A batch that fails (a sum SQLite refuses) must fail both ways, and leave nothing.
            let swiftError = await Result { try await swift.store.insert(batch) }.failure
            let viewsError = await Result {
                try await views.store.writer.write { db in
                    try AppDatabase.lowerFoldBookmarks(db)
                    try AppDatabase.insertRows(batch, db)
                    try AppDatabase.foldPendingRows(db)
                }
            }.failure
            #expect((swiftError as? DatabaseError)?.extendedResultCode == (viewsError as? DatabaseError)?.extendedResultCode,
                    "\(String(describing: swiftError)) vs \(String(describing: viewsError))")
        }
        for (table, order) in dailyTables {
            let mine = try await dump(swift.store, table, orderBy: order)
            let sql = try await dump(views.store, table, orderBy: order)
            #expect(mine.count == sql.count, "\(table)")
            let differing = zip(mine, sql).filter { $0 != $1 }
            #expect(differing.isEmpty, "\(table): \(differing.prefix(3))")
        }
    }

    /// ``RequestOutcome/category`` and the usage statuses, as the fold counts them, against the
    /// columns `request_facts` (migration 0007) gives the stored words: one row per case.
    @Test func everyOutcomeCountsWhereRequestFactsCountsIt() async throws {
        let fixture = try Fixture()
        let columns: [(RequestOutcome.Category, String)] = [
            (.successful, "successful"), (.clientErrors, "client_errors"), (.throttled, "throttled"),
            (.noCapacity, "no_capacity"), (.upstreamErrors, "upstream_errors"), (.cancelled, "cancelled"),
            (.truncated, "truncated"), (.clientLimited, "client_limited"),
        ]
        #expect(columns.map(\.0) == RequestOutcome.Category.allCases)
        let usages = UsageStatus.allCases
        let rows = RequestOutcome.allCases.enumerated().map { index, outcome in
            var entry = RetentionTests.entry("o-\(outcome.rawValue)", at: Date(), outcome: outcome, keys: fixture.keys, upstream: fixture.upstream)
            entry.usageStatus = usages[index % usages.count]
            return entry
        }
        try await fixture.store.writer.write { db in try AppDatabase.insertRows(rows, db) }
        for entry in rows {
            let facts = try #require(try fixture.store.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM request_facts WHERE request_id = ?", arguments: [entry.requestId])
            })
            let outcome = entry.outcome
            #expect(facts["errors"] as Bool == (outcome.category != .successful), "\(outcome)")
            for (category, column) in columns {
                #expect(facts[column] as Bool == (outcome.category == category), "\(outcome): \(column)")
            }
            #expect(facts["usage_missing"] as Bool == (entry.usageStatus == .missing), "\(entry.usageStatus)")
            #expect(facts["usage_truncated"] as Bool == (entry.usageStatus == .truncated), "\(entry.usageStatus)")
        }
    }

    @Test func foldedTotalsAreTheViewsTotalsToTheLastBit() async throws {
        var generator = Generator(state: 23)
        let fixture = try Fixture()
        let base = Date(timeIntervalSince1970: 1_764_201_600 - 7_200)
        let batches = (0..<6).map { batch in
            Self.entries([1, 7, 300, 1_000, 2, 500][batch], prefix: "f\(batch)", fixture: fixture, base: base, generator: &generator)
        }
        try await Self.compareFolds(batches)
    }

    @Test func bigGroupsSumTheirLatenciesInRowOrder() async throws {
        // Thousands of rows in a handful of groups, every latency with all its bits: a sum in any
        // other order would differ in its last bits.
        var generator = Generator(state: 31)
        let fixture = try Fixture()
        let base = Date(timeIntervalSince1970: 1_764_230_000)
        let batches = (0..<3).map { batch in
            Self.entries(3_000, prefix: "g\(batch)", fixture: fixture, base: base, generator: &generator, fewGroups: true)
        }
        try await Self.compareFolds(batches)
    }

    @Test func repeatedIdsAndRowsInsertedByHandAreFoldedByTheViews() async throws {
        var generator = Generator(state: 47)
        let fixture = try Fixture()
        let base = Date(timeIntervalSince1970: 1_764_201_600)
        let first = Self.entries(50, prefix: "r", fixture: fixture, base: base, generator: &generator)
        // A batch repeating ids of the first (ignored rows; their attempts join the first's rows),
        // and one repeating an id within itself.
        let repeated = Self.entries(20, prefix: "r", fixture: fixture, base: base, generator: &generator)
        // (21 rows: the repeats fall inside the first many-row statement.)
        var within = Self.entries(10, prefix: "w", fixture: fixture, base: base, generator: &generator)
        within.append(contentsOf: Self.entries(3, prefix: "w", fixture: fixture, base: base, generator: &generator))
        within.append(contentsOf: Self.entries(8, prefix: "x", fixture: fixture, base: base, generator: &generator))
        let handInserted = Self.entries(30, prefix: "h", fixture: fixture, base: base, generator: &generator)
        try await Self.compareFolds([first, repeated, within, Self.entries(40, prefix: "z", fixture: fixture, base: base, generator: &generator)],
                                    handInserted: handInserted)
    }

    @Test func aSumThatIsNotANumberFailsAsTheViewsFail() async throws {
        // Infinite latencies of both signs in one group add up to NaN, which SQLite stores as
        // NULL, which the daily tables refuse: the batch fails either way.
        let fixture = try Fixture()
        let rows = [Double.infinity, -.infinity].enumerated().map { index, latency in
            var entry = RetentionTests.entry("inf-\(index)", at: Date(timeIntervalSince1970: 1_764_201_600),
                                             keys: fixture.keys, upstream: fixture.upstream)
            entry.latencyMs = latency
            return entry
        }
        try await Self.compareFolds([rows, Array(rows[..<1])])
    }

    @Test func sumsBeyond64BitsFailAsTheViewsFail() async throws {
        let fixture = try Fixture()
        let rows = (0..<2).map { index in
            var entry = RetentionTests.entry("big-\(index)", at: Date(), keys: fixture.keys, upstream: fixture.upstream)
            entry.promptTokens = Int.max
            return entry
        }
        await #expect(throws: (any Error).self) { try await fixture.store.insert(rows) }
        #expect(try RetentionTests.count(fixture.store, "SELECT COUNT(*) FROM requests") == 0)
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }

    var failure: (any Error)? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
