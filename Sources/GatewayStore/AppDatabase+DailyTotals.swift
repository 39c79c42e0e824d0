import Foundation
import GatewayCore
import GRDB

// MARK: - Folding raw rows into the daily tables

/// One of the `daily_*` tables of migration 0002 and the `pending_daily_*` view that says what
/// the rows not yet folded add to it.
struct DailyTable: Sendable {
    /// The table; its view is `pending_<name>`.
    let name: String
    /// The columns that name a row (the primary key).
    let keyColumns: [String]
    /// Columns that add up.
    let sumColumns: [String]
    /// Columns that keep the largest value.
    let maxColumns: [String]

    /// `INSERT ... SELECT ... FROM pending_<name> ... ON CONFLICT DO UPDATE`: adds the pending
    /// totals to the rows already there.
    let foldSQL: String
    /// `INSERT ... VALUES (?, ...) ON CONFLICT DO UPDATE`: adds one row of totals, given in the
    /// order of ``columns``, to the row already there.
    let addSQL: String

    /// The statements are made once here: every log batch runs them.
    init(name: String, keyColumns: [String], sumColumns: [String], maxColumns: [String]) {
        self.name = name
        self.keyColumns = keyColumns
        self.sumColumns = sumColumns
        self.maxColumns = maxColumns
        let all = keyColumns + sumColumns + maxColumns
        let columns = all.joined(separator: ", ")
        let updates = sumColumns.map { "\($0) = \($0) + excluded.\($0)" }
            + maxColumns.map { "\($0) = max(COALESCE(\($0), excluded.\($0)), COALESCE(excluded.\($0), \($0)))" }
        let upsert = "ON CONFLICT (\(keyColumns.joined(separator: ", "))) DO UPDATE SET \(updates.joined(separator: ", "))"
        foldSQL = """
            INSERT INTO \(name) (\(columns))
            SELECT \(columns) FROM pending_\(name) WHERE true
            \(upsert)
            """
        addSQL = """
            INSERT INTO \(name) (\(columns))
            VALUES (\(Array(repeating: "?", count: all.count).joined(separator: ", ")))
            \(upsert)
            """
    }

    /// Every column, in the order the fold statements name them.
    var columns: [String] { keyColumns + sumColumns + maxColumns }

    static let all: [DailyTable] = [
        DailyTable(
            name: "daily_usage", keyColumns: ["day", "client", "model"],
            sumColumns: UsageColumn.allCases.map(\.name), maxColumns: []
        ),
        DailyTable(
            name: "daily_key_usage", keyColumns: ["day", "key_id"],
            sumColumns: [
                "requests", "successful", "errors", "total_tokens", "attempts", "successful_attempts",
                "throttled_attempts", "key_failures", "upstream_failures", "cost_micros", "list_cost_micros",
            ],
            maxColumns: []
        ),
        DailyTable(
            name: "daily_upstream_usage", keyColumns: ["day", "upstream_id", "model"],
            sumColumns: [
                "requests", "successful", "errors", "attempts", "successful_attempts", "throttled_attempts",
                "key_failures", "upstream_failures", "timed_attempts", "latency_ms_sum",
            ],
            maxColumns: ["latency_ms_max"]
        ),
        DailyTable(
            name: "daily_upstream_latency", keyColumns: ["day", "upstream_id", "model", "bucket_ms"],
            sumColumns: ["attempts"], maxColumns: []
        ),
    ]
}

extension AppDatabase {
    /// Makes sure every `requests`/`attempts` row above the bookmarks in `log_state` is pending:
    /// if rows at the top were deleted (by hand), the next ids SQLite hands out could be at or
    /// below the bookmark and would never be folded. Call before inserting.
    static func lowerFoldBookmarks(_ db: Database) throws {
        try db.cachedStatement(sql: """
            UPDATE log_state SET
                requests_folded_through = min(requests_folded_through, COALESCE((SELECT MAX(id) FROM requests), 0)),
                attempts_folded_through = min(attempts_folded_through, COALESCE((SELECT MAX(id) FROM attempts), 0))
            WHERE requests_folded_through > COALESCE((SELECT MAX(id) FROM requests), 0)
               OR attempts_folded_through > COALESCE((SELECT MAX(id) FROM attempts), 0)
            """).execute()
    }

    /// Adds every pending raw row to the daily tables and moves the bookmarks past them. Run in
    /// the transaction that inserted the rows, so the daily tables are never behind and no row is
    /// counted twice. Costs a few microseconds per row, nothing when nothing is pending.
    static func foldPendingRows(_ db: Database) throws {
        guard try hasPendingRows(db) else { return }
        for table in DailyTable.all {
            try db.cachedStatement(sql: table.foldSQL).execute()
        }
        try moveFoldBookmarks(db)
    }

    /// Whether `requests` or `attempts` hold rows above the bookmarks, not yet in the daily tables.
    static func hasPendingRows(_ db: Database) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: """
            SELECT COALESCE((SELECT MAX(id) FROM requests), 0) > requests_folded_through
                OR COALESCE((SELECT MAX(id) FROM attempts), 0) > attempts_folded_through
            FROM log_state
            """)) ?? false
    }

    /// Marks every row there is as folded.
    static func moveFoldBookmarks(_ db: Database) throws {
        try db.cachedStatement(sql: """
            UPDATE log_state SET
                requests_folded_through = COALESCE((SELECT MAX(id) FROM requests), 0),
                attempts_folded_through = COALESCE((SELECT MAX(id) FROM attempts), 0)
            """).execute()
    }

    /// The upper bounds of the latency histogram's buckets, ascending (migration 0002).
    static func latencyBuckets(_ db: Database) throws -> [Double] {
        try Double.fetchAll(db.cachedStatement(sql: "SELECT upper_ms FROM latency_buckets ORDER BY upper_ms"))
    }

    /// Folds rows that were inserted without going through ``insert(_:)`` (by hand, by a
    /// benchmark). The log writer and retention do this themselves.
    public func foldPendingRows() throws {
        try write { db in try Self.foldPendingRows(db) }
    }
}

// MARK: - Folding a batch as it is written

/// What a batch of log rows adds to the daily tables, summed in Swift while the rows are bound:
/// the same totals as the `pending_daily_*` views of migration 0002 compute from the same rows
/// (see ``AppDatabase/insert(_:)``), added with the same upserts.
///
/// Exactly the same, not nearly: texts are grouped and compared byte for byte as SQLite stores
/// them (up to the first NUL, as GRDB binds a `String`), a NaN stored as NULL counts as NULL, and
/// the real sums add the rows in the order the views do (each group's rows in id order), so even
/// their last bits agree.
struct DailyTotals {
    struct UsageKey: Hashable {
        let day: String
        let client: StoredText
        let model: StoredText
    }

    /// `requests`, `successful`, `errors`: the first sums of every daily table but the latency one.
    struct RequestCounts {
        var requests = 0, successful = 0, errors = 0

        mutating func add(successful: Bool) {
            requests += 1
            if successful { self.successful += 1 } else { errors += 1 }
        }

        var values: [Int] { [requests, successful, errors] }
    }

    /// `attempts`, `successful_attempts`, `throttled_attempts`, `key_failures`, `upstream_failures`.
    struct AttemptCounts {
        var attempts = 0, successful = 0, throttled = 0, keyFailures = 0, upstreamFailures = 0

        fileprivate mutating func add(_ verdict: Verdict) {
            attempts += 1
            switch verdict {
            case .success: successful += 1
            case .throttled: throttled += 1
            case .keyFailure: keyFailures += 1
            case .upstreamFailure: upstreamFailures += 1
            case .cancelled, .other: break
            }
        }

        var values: [Int] { [attempts, successful, throttled, keyFailures, upstreamFailures] }
    }

    /// A `daily_usage` row's measures (``UsageColumn``).
    struct UsageSums {
        var counts = RequestCounts()
        var clientErrors = 0, throttled = 0, noCapacity = 0
        var upstreamErrors = 0, cancelled = 0, truncated = 0, streamed = 0, upstreamAttempts = 0
        var usageMissing = 0, usageTruncated = 0, promptTokens = 0, cachedTokens = 0, candidatesTokens = 0
        var thoughtsTokens = 0, toolUseTokens = 0, totalTokens = 0, requestBytes = 0, responseBytes = 0
        var latencySum = 0.0, ttfbSum = 0.0
        var ttfbRequests = 0
        var clientLimited = 0, unpricedRequests = 0, costMicros = 0, listCostMicros = 0

        /// Binds the value of `column`.
        func bind(_ column: UsageColumn, to row: inout RowBinder) {
            switch column {
            case .requests: row.bind(counts.requests)
            case .successful: row.bind(counts.successful)
            case .errors: row.bind(counts.errors)
            case .clientErrors: row.bind(clientErrors)
            case .throttled: row.bind(throttled)
            case .noCapacity: row.bind(noCapacity)
            case .upstreamErrors: row.bind(upstreamErrors)
            case .cancelled: row.bind(cancelled)
            case .truncated: row.bind(truncated)
            case .streamed: row.bind(streamed)
            case .upstreamAttempts: row.bind(upstreamAttempts)
            case .usageMissing: row.bind(usageMissing)
            case .usageTruncated: row.bind(usageTruncated)
            case .promptTokens: row.bind(promptTokens)
            case .cachedTokens: row.bind(cachedTokens)
            case .candidatesTokens: row.bind(candidatesTokens)
            case .thoughtsTokens: row.bind(thoughtsTokens)
            case .toolUseTokens: row.bind(toolUseTokens)
            case .totalTokens: row.bind(totalTokens)
            case .requestBytes: row.bind(requestBytes)
            case .responseBytes: row.bind(responseBytes)
            case .latencyMsSum: row.bind(latencySum)
            case .ttfbMsSum: row.bind(ttfbSum)
            case .ttfbRequests: row.bind(ttfbRequests)
            case .clientLimited: row.bind(clientLimited)
            case .unpricedRequests: row.bind(unpricedRequests)
            case .costMicros: row.bind(costMicros)
            case .listCostMicros: row.bind(listCostMicros)
            }
        }
    }

    struct KeyKey: Hashable {
        let day: String
        let keyId: Int64
    }

    struct KeySums {
        var counts = RequestCounts()
        var totalTokens = 0
        var tries = AttemptCounts()
        var costMicros = 0, listCostMicros = 0
    }

    struct UpstreamKey: Hashable {
        let day: String
        let upstreamId: Int64
        let model: StoredText
    }

    struct UpstreamSums {
        var counts = RequestCounts()
        var tries = AttemptCounts()
        var timedAttempts = 0
        var latencySum = 0.0
        var latencyMax: Double?
    }

    struct LatencyKey: Hashable {
        let upstream: UpstreamKey
        /// The bucket's upper bound's bit pattern.
        let bucket: UInt64
    }

    /// `latency_buckets.upper_ms`, ascending.
    let latencyBuckets: [Double]
    private(set) var usage: [UsageKey: UsageSums] = [:]
    private(set) var keys: [KeyKey: KeySums] = [:]
    private(set) var upstreams: [UpstreamKey: UpstreamSums] = [:]
    private(set) var latencies: [LatencyKey: Int] = [:]
    /// A sum left the 64-bit range (where SQLite's SUM fails): only the SQL fold can say what then.
    private(set) var overflowed = false

    init(latencyBuckets: [Double]) {
        self.latencyBuckets = latencyBuckets
    }

    // MARK: Adding rows

    /// `total += value`, noting an overflow instead of trapping.
    private static func add(_ value: Int, to total: inout Int, _ overflowed: inout Bool) {
        let (sum, overflow) = total.addingReportingOverflow(value)
        total = sum
        if overflow { overflowed = true }
    }

    /// A `requests` row (`request_facts`: ``RequestOutcome/category`` says which column counts
    /// its outcome), of UTC day `day`.
    mutating func add(_ e: RequestLogEntry, day: String) {
        let outcome = e.outcome.category
        let successful = outcome == .successful
        // Stored as REAL: NaN becomes NULL.
        let latency = e.latencyMs.flatMap { $0.isNaN ? nil : $0 }
        let ttfb = e.ttfbMs.flatMap { $0.isNaN ? nil : $0 }
        let model = StoredText(e.model)
        let cost = Int(e.cost?.costMicros ?? 0), listCost = Int(e.cost?.listCostMicros ?? 0)
        var overflowed = self.overflowed
        Self.update(&usage[UsageKey(day: day, client: StoredText(e.clientName), model: model), default: UsageSums()]) { sums in
            sums.counts.add(successful: successful)
            sums.clientErrors += outcome == .clientErrors ? 1 : 0
            sums.throttled += outcome == .throttled ? 1 : 0
            sums.noCapacity += outcome == .noCapacity ? 1 : 0
            sums.upstreamErrors += outcome == .upstreamErrors ? 1 : 0
            sums.cancelled += outcome == .cancelled ? 1 : 0
            sums.truncated += outcome == .truncated ? 1 : 0
            sums.streamed += e.isStream ? 1 : 0
            sums.upstreamAttempts += e.attempts.count
            sums.usageMissing += e.usageStatus == .missing ? 1 : 0
            sums.usageTruncated += e.usageStatus == .truncated ? 1 : 0
            Self.add(e.promptTokens, to: &sums.promptTokens, &overflowed)
            Self.add(e.cachedTokens, to: &sums.cachedTokens, &overflowed)
            Self.add(e.candidatesTokens, to: &sums.candidatesTokens, &overflowed)
            Self.add(e.thoughtsTokens, to: &sums.thoughtsTokens, &overflowed)
            Self.add(e.toolUseTokens, to: &sums.toolUseTokens, &overflowed)
            Self.add(e.totalTokens, to: &sums.totalTokens, &overflowed)
            Self.add(e.requestBytes, to: &sums.requestBytes, &overflowed)
            Self.add(e.responseBytes, to: &sums.responseBytes, &overflowed)
            sums.latencySum += latency ?? 0
            sums.ttfbSum += ttfb ?? 0
            sums.ttfbRequests += ttfb == nil ? 0 : 1
            sums.clientLimited += outcome == .clientLimited ? 1 : 0
            sums.unpricedRequests += e.cost?.status == .unpriced ? 1 : 0
            Self.add(cost, to: &sums.costMicros, &overflowed)
            Self.add(listCost, to: &sums.listCostMicros, &overflowed)
        }
        if let keyId = e.keyId {
            Self.update(&keys[KeyKey(day: day, keyId: keyId), default: KeySums()]) { sums in
                sums.counts.add(successful: successful)
                Self.add(e.totalTokens, to: &sums.totalTokens, &overflowed)
                Self.add(cost, to: &sums.costMicros, &overflowed)
                Self.add(listCost, to: &sums.listCostMicros, &overflowed)
            }
        }
        if let upstreamId = e.upstreamId {
            upstreams[UpstreamKey(day: day, upstreamId: upstreamId, model: model), default: UpstreamSums()].counts
                .add(successful: successful)
        }
        self.overflowed = overflowed
    }

    /// An `attempts` row of `e` (`attempt_facts`: client and model are its request's), of UTC day
    /// `day`.
    mutating func add(_ a: AttemptRow, of e: RequestLogEntry, day: String) {
        let verdict = Verdict(a.verdict)
        if let keyId = a.keyId {
            keys[KeyKey(day: day, keyId: keyId), default: KeySums()].tries.add(verdict)
        }
        guard let upstreamId = a.upstreamId else { return }
        let key = UpstreamKey(day: day, upstreamId: upstreamId, model: StoredText(e.model))
        // Timed: a latency (NaN is stored as NULL) of a try that was not cancelled.
        let latency = a.latencyMs.flatMap { $0.isNaN || verdict == .cancelled ? nil : $0 }
        Self.update(&upstreams[key, default: UpstreamSums()]) { sums in
            sums.tries.add(verdict)
            if let latency {
                sums.timedAttempts += 1
                sums.latencySum += latency
                sums.latencyMax = Swift.max(sums.latencyMax ?? latency, latency)
            }
        }
        guard let latency else { return }
        // The smallest bucket bound at or above the latency; none above the last (1e15 ms).
        var low = 0, high = latencyBuckets.count
        while low < high {
            let middle = (low + high) / 2
            if latencyBuckets[middle] >= latency { high = middle } else { low = middle + 1 }
        }
        if low < latencyBuckets.count {
            latencies[LatencyKey(upstream: key, bucket: latencyBuckets[low].bitPattern), default: 0] += 1
        }
    }

    /// Runs `body` on a dictionary value in place (one lookup).
    @inline(__always)
    private static func update<Value>(_ value: inout Value, _ body: (inout Value) -> Void) {
        body(&value)
    }

    // MARK: Writing

    /// Adds the totals to the daily tables, one upsert per row of each.
    func fold(into db: Database) throws {
        let tables = DailyTable.all
        try Self.add(usage, to: tables[0], db) { row, key, sums in
            row.bind(key.day)
            row.bind(key.client.value)
            row.bind(key.model.value)
            for column in UsageColumn.allCases { sums.bind(column, to: &row) }
        }
        try Self.add(keys, to: tables[1], db) { row, key, sums in
            row.bind(key.day)
            row.bind(key.keyId)
            row.bind(sums.counts.values + [sums.totalTokens] + sums.tries.values + [sums.costMicros, sums.listCostMicros])
        }
        try Self.add(upstreams, to: tables[2], db) { row, key, sums in
            row.bind(key.day)
            row.bind(key.upstreamId)
            row.bind(key.model.value)
            row.bind(sums.counts.values + sums.tries.values + [sums.timedAttempts])
            row.bind(sums.latencySum)
            row.bind(sums.latencyMax)
        }
        try Self.add(latencies, to: tables[3], db) { row, key, attempts in
            row.bind(key.upstream.day)
            row.bind(key.upstream.upstreamId)
            row.bind(key.upstream.model.value)
            row.bind(Double(bitPattern: key.bucket))
            row.bind(attempts)
        }
    }

    /// Upserts each of `rows` into `table`, its values bound by `bind` in the order of the
    /// table's ``DailyTable/columns``.
    private static func add<Key, Sums>(
        _ rows: [Key: Sums], to table: DailyTable, _ db: Database, _ bind: (inout RowBinder, Key, Sums) -> Void
    ) throws {
        let statement = try db.cachedStatement(sql: table.addSQL)
        defer { RowBinder.clear(statement) }
        for (key, sums) in rows {
            var row = RowBinder(statement, db)
            bind(&row, key, sums)
            _ = try row.execute()
        }
    }

    // MARK: What a row counts as

    /// `attempts.verdict` as `attempt_facts` sorts it.
    fileprivate enum Verdict {
        case success, throttled, keyFailure, upstreamFailure, cancelled, other

        init(_ verdict: String) {
            let text = StoredText(verdict)
            if text.equals("success") {
                self = .success
            } else if text.equals("throttled") {
                self = .throttled
            } else if text.equals("key_dead") || text.equals("key_unusable") {
                self = .keyFailure
            } else if text.equals("upstream_failure") || text.equals("upstream_blocked") || text.equals("transient") {
                self = .upstreamFailure
            } else if text.equals("cancelled") {
                self = .cancelled
            } else {
                self = .other
            }
        }
    }
}

/// A text column's value as SQLite holds it: a `String` bound as GRDB binds it is stored up to
/// its first NUL, and nil is grouped as '-' (`COALESCE(x, '-')`). Equal and hashed byte for byte,
/// as SQLite's BINARY collation compares (Swift's `==` would equate canonically equivalent
/// strings, which SQLite keeps apart).
struct StoredText: Hashable {
    let value: String

    init(_ value: String?) {
        self.value = value ?? "-"
    }

    /// Calls `body` with the stored bytes: the string as a C string, up to its first NUL (a
    /// native string is NUL-terminated in place, so this copies nothing but small strings).
    private func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        value.withCString { text in body(UnsafeRawBufferPointer(start: text, count: strlen(text))) }
    }

    private static func same(_ left: UnsafeRawBufferPointer, _ right: UnsafeRawBufferPointer) -> Bool {
        left.count == right.count && (left.count == 0 || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0)
    }

    static func == (lhs: StoredText, rhs: StoredText) -> Bool {
        lhs.withBytes { left in rhs.withBytes { right in same(left, right) } }
    }

    func hash(into hasher: inout Hasher) {
        withBytes { hasher.combine(bytes: $0) }
    }

    /// Whether the stored text is `literal` (ASCII).
    func equals(_ literal: StaticString) -> Bool {
        withBytes { Self.same($0, UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)) }
    }
}
