import Foundation
import GatewayCore
import GRDB

// MARK: - What is written per request

/// One upstream try of a request: a row of `attempts`.
public struct AttemptRow: Sendable, Equatable, Codable {
    public var attempt: Int
    public var startedAt: Date
    public var keyId: Int64?
    public var upstreamId: Int64?
    public var status: Int?
    public var verdict: String
    public var googleStatus: String?
    public var reason: String?
    public var quotaId: String?
    public var latencyMs: Double?

    public init(
        attempt: Int, startedAt: Date, keyId: Int64?, upstreamId: Int64?, status: Int?, verdict: String,
        googleStatus: String? = nil, reason: String? = nil, quotaId: String? = nil, latencyMs: Double? = nil
    ) {
        self.attempt = attempt
        self.startedAt = startedAt
        self.keyId = keyId
        self.upstreamId = upstreamId
        self.status = status
        self.verdict = verdict
        self.googleStatus = googleStatus
        self.reason = reason
        self.quotaId = quotaId
        self.latencyMs = latencyMs
    }
}

/// One client request with its attempts: a row of `requests` and its rows of `attempts`.
public struct RequestLogEntry: Sendable, Equatable, Codable {
    public var requestId: String
    public var startedAt: Date
    public var clientId: Int64?
    public var clientName: String?
    public var method: String
    public var endpoint: String
    public var apiVersion: String?
    public var model: String?
    public var isStream: Bool
    public var status: Int
    public var outcome: RequestOutcome
    public var keyId: Int64?
    public var keyFingerprint: String?
    public var upstreamId: Int64?
    public var upstreamUrl: String?
    public var latencyMs: Double?
    public var ttfbMs: Double?
    /// Milliseconds spent waiting for a key to come back (`serve --max-queue-wait`); nil when
    /// the request never waited.
    public var queueWaitMs: Double?
    public var requestBytes: Int
    public var responseBytes: Int
    public var promptTokens: Int
    public var cachedTokens: Int
    public var candidatesTokens: Int
    public var thoughtsTokens: Int
    public var toolUseTokens: Int
    public var totalTokens: Int
    /// The prompt's audio tokens (part of ``promptTokens``), which the price table may price
    /// apart: priced into ``cost`` when the row is finished, not a column of its own.
    public var audioTokens: Int
    public var usageStatus: UsageStatus
    public var errorStatus: String?
    public var errorReason: String?
    /// What it cost (`cost_micros`, `list_cost_micros`, `price_status`), set when the row is
    /// finished; nil: nothing (0, `none`).
    public var cost: RequestCost?
    public var attempts: [AttemptRow]

    public init(requestId: String, startedAt: Date, method: String, endpoint: String) {
        self.requestId = requestId
        self.startedAt = startedAt
        self.method = method
        self.endpoint = endpoint
        isStream = false
        status = 0
        outcome = .gatewayError
        requestBytes = 0
        responseBytes = 0
        promptTokens = 0
        cachedTokens = 0
        candidatesTokens = 0
        thoughtsTokens = 0
        toolUseTokens = 0
        totalTokens = 0
        audioTokens = 0
        usageStatus = .none
        attempts = []
    }
}

extension Array where Element == RequestLogEntry {
    /// The first ten request ids, for a log line about these rows (`a,b,…` when there are more).
    public var requestIDsForLog: String {
        prefix(10).map(\.requestId).joined(separator: ",") + (count > 10 ? ",…" : "")
    }
}

extension AppDatabase {
    /// Writes a batch of request rows and their attempts in ONE transaction, and folds them into
    /// the daily totals (migration 0002) in the same transaction.
    ///
    /// The totals of the batch are summed in Swift as its rows are bound, and added to the daily
    /// tables with one upsert per day and group, instead of reading the rows back through the
    /// `pending_daily_*` views. The SQL fold still runs when that would not give the same totals:
    /// rows were pending before this batch (inserted by hand), `INSERT OR IGNORE` skipped a row
    /// of the batch (a repeated request id), or a sum left the 64-bit range.
    public func insert(_ entries: [RequestLogEntry]) async throws {
        try await writer.write { db in try Self.insert(entries, db) }
    }

    /// What ``insert(_:)`` does in its transaction; `inserted` is called between inserting and
    /// folding (for the benchmark that times each).
    static func insert(_ entries: [RequestLogEntry], _ db: Database, inserted: () -> Void = {}) throws {
        try lowerFoldBookmarks(db)
        var totals = try hasPendingRows(db) ? nil : DailyTotals(latencyBuckets: latencyBuckets(db))
        try insertRows(entries, db, totals: &totals)
        inserted()
        if let totals, !totals.overflowed {
            try totals.fold(into: db)
            try moveFoldBookmarks(db)
        } else {
            try foldPendingRows(db)
        }
    }

    /// The rows alone, without folding (the benchmark of folding compares with this).
    static func insertRows(_ entries: [RequestLogEntry], _ db: Database) throws {
        var totals: DailyTotals?
        try insertRows(entries, db, totals: &totals)
    }

    /// A `requests` row; its values in the order ``insertRows(_:_:totals:)`` binds them.
    static let insertRequestSQL = insertSQL(requestsRows: 1)

    /// An `attempts` row.
    static let insertAttemptSQL = insertSQL(attemptsRows: 1)

    /// Rows one `INSERT` carries when a batch has that many left: SQLite then runs one program for
    /// all of them (its cursors opened once, one reset and one step); the writer's whole work per
    /// row took 23% fewer instructions than with a statement a row (`bench/RESULTS.md`, "Writer
    /// and usage scan, instruction counts"). 16 rows of `requests` are 528 parameters, under the
    /// 999 that older SQLite builds allow.
    static let rowsPerInsert = 16

    /// ``rowsPerInsert`` rows of `requests`, and of `attempts`.
    static let insertRequestsSQL = insertSQL(requestsRows: rowsPerInsert)
    static let insertAttemptsSQL = insertSQL(attemptsRows: rowsPerInsert)

    static func insertSQL(requestsRows rows: Int) -> String {
        insertSQL(
            "requests",
            columns: """
                request_id, started_at, client_id, client_name, method, endpoint, api_version, model,
                is_stream, status, outcome, attempt_count, key_id, key_fingerprint, upstream_id, upstream_url,
                latency_ms, ttfb_ms, request_bytes, response_bytes, prompt_tokens, cached_tokens,
                candidates_tokens, thoughts_tokens, tool_use_tokens, total_tokens, usage_status,
                error_status, error_reason, queue_wait_ms, cost_micros, list_cost_micros, price_status
                """,
            values: 33, rows: rows)
    }

    static func insertSQL(attemptsRows rows: Int) -> String {
        insertSQL(
            "attempts",
            columns: """
                request_id, attempt, started_at, key_id, upstream_id, status, verdict, google_status,
                reason, quota_id, latency_ms
                """,
            values: 11, rows: rows)
    }

    /// `INSERT OR IGNORE INTO table (columns) VALUES (?, …), …` for `rows` rows of `values` values.
    private static func insertSQL(_ table: String, columns: String, values: Int, rows: Int) -> String {
        let row = "(" + Array(repeating: "?", count: values).joined(separator: ", ") + ")"
        return "INSERT OR IGNORE INTO \(table) (\(columns)) VALUES "
            + Array(repeating: row, count: rows).joined(separator: ", ")
    }

    /// Inserts the rows, binding every value with SQLite's C API (``RowBinder``): the same
    /// statements and the same stored values as binding them through GRDB's `StatementArguments`,
    /// without boxing 40 values a request and formatting dates with a `DateFormatter`. Rows go
    /// ``rowsPerInsert`` to a statement while a batch has that many left, then one by one, in the
    /// batch's order (so ids are as with one statement a row). Adds each inserted row to
    /// `totals`, and sets `totals` to nil if a row was ignored.
    static func insertRows(_ entries: [RequestLogEntry], _ db: Database, totals: inout DailyTotals?) throws {
        let requests = RowsInsert(
            one: try db.cachedStatement(sql: insertRequestSQL),
            many: try db.cachedStatement(sql: insertRequestsSQL))
        let attempts = RowsInsert(
            one: try db.cachedStatement(sql: insertAttemptSQL),
            many: try db.cachedStatement(sql: insertAttemptsSQL))
        try TextArena.with { arena in
            // The statements point into the arena: cleared before it goes.
            defer {
                requests.clear()
                attempts.clear()
            }
            let allInserted = try requests.insert(entries.count, db, arena: arena) { index, row in
                let day = bindRequest(entries[index], to: &row)
                totals?.add(entries[index], day: day)
            }
            if !allInserted { totals = nil }
            // The attempts of all the batch's requests, in order, as (request, attempt) indices.
            var tries: [(request: Int, attempt: Int)] = []
            tries.reserveCapacity(entries.count)
            for (request, e) in entries.enumerated() {
                for attempt in e.attempts.indices { tries.append((request, attempt)) }
            }
            let allTriesInserted = try attempts.insert(tries.count, db, arena: arena) { index, row in
                let e = entries[tries[index].request]
                let a = e.attempts[tries[index].attempt]
                let day = bindAttempt(a, of: e, to: &row)
                totals?.add(a, of: e, day: day)
            }
            if !allTriesInserted { totals = nil }
        }
    }

    /// Binds the values of `e`'s `requests` row, in ``insertRequestSQL``'s order; returns its day.
    private static func bindRequest(_ e: RequestLogEntry, to row: inout RowBinder) -> String {
        row.bind(e.requestId)
        let started = row.bind(e.startedAt)
        row.bind(e.clientId)
        row.bind(e.clientName)
        row.bind(e.method)
        row.bind(e.endpoint)
        row.bind(e.apiVersion)
        row.bind(e.model)
        row.bind(e.isStream)
        row.bind(e.status)
        row.bind(e.outcome.rawValue)
        row.bind(e.attempts.count)
        row.bind(e.keyId)
        row.bind(e.keyFingerprint)
        row.bind(e.upstreamId)
        row.bind(e.upstreamUrl)
        row.bind(e.latencyMs)
        row.bind(e.ttfbMs)
        row.bind(e.requestBytes)
        row.bind(e.responseBytes)
        row.bind(e.promptTokens)
        row.bind(e.cachedTokens)
        row.bind(e.candidatesTokens)
        row.bind(e.thoughtsTokens)
        row.bind(e.toolUseTokens)
        row.bind(e.totalTokens)
        row.bind(e.usageStatus.rawValue)
        row.bind(e.errorStatus)
        row.bind(e.errorReason)
        row.bind(e.queueWaitMs)
        row.bind(e.cost?.costMicros ?? 0)
        row.bind(e.cost?.listCostMicros ?? 0)
        row.bind((e.cost?.status ?? .none).rawValue)
        return started.day
    }

    /// Binds the values of attempt `a` of `e`, in ``insertAttemptSQL``'s order; returns its day.
    private static func bindAttempt(_ a: AttemptRow, of e: RequestLogEntry, to row: inout RowBinder) -> String {
        row.bind(e.requestId)
        row.bind(a.attempt)
        let started = row.bind(a.startedAt)
        row.bind(a.keyId)
        row.bind(a.upstreamId)
        row.bind(a.status)
        row.bind(a.verdict)
        row.bind(a.googleStatus)
        row.bind(a.reason)
        row.bind(a.quotaId)
        row.bind(a.latencyMs)
        return started.day
    }
}

/// The two prepared statements that insert rows of one table: one row, or ``AppDatabase/rowsPerInsert``.
private struct RowsInsert {
    let one: Statement
    let many: Statement

    /// Inserts `count` rows, ``AppDatabase/rowsPerInsert`` to a statement while that many are
    /// left, then one by one; `bind(i, &row)` binds the values of row `i`. Returns false if
    /// `INSERT OR IGNORE` ignored a row.
    func insert(_ count: Int, _ db: Database, arena: TextArena, bind: (Int, inout RowBinder) -> Void) throws -> Bool {
        var allInserted = true
        var next = 0
        while next < count {
            let rows = count - next >= AppDatabase.rowsPerInsert ? AppDatabase.rowsPerInsert : 1
            var row = RowBinder(rows == 1 ? one : many, db, arena: arena)
            for index in next..<(next + rows) { bind(index, &row) }
            if try row.execute() < rows { allInserted = false }
            next += rows
        }
        return allInserted
    }

    func clear() {
        RowBinder.clear(one)
        RowBinder.clear(many)
    }
}
