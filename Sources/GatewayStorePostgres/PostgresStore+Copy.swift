import Foundation
import GatewayStore
import GRDB
import PostgresNIO

// MARK: - Moving a SQLite node into the shared store (`store copy`)

/// What ``PostgresStore/copy(from:includingLog:)`` copied: rows by table, in copy order.
public struct StoreCopySummary: Sendable, Encodable {
    public var tables: [Table] = []

    public struct Table: Sendable, Encodable {
        public var name: String
        public var rows: Int
    }
}

extension PostgresStore {
    /// The tables a node's state lives in, in an order their references allow, and whether each
    /// is part of the raw request log (left out by `includingLog: false`). Daily totals always go:
    /// they are the reports of the days the raw rows no longer cover. `latency_buckets` is made by
    /// the schema itself; `streams_in_flight` stays behind (its streams belong to the old node's
    /// process, which recovers them if it starts again).
    static let copiedTables: [(name: String, log: Bool)] = [
        ("keys", false), ("upstreams", false), ("clients", false), ("key_cooldowns", false), ("project_cooldowns", false),
        ("prices", false), ("resource_owners", false), ("daily_usage", false), ("daily_key_usage", false),
        ("daily_upstream_usage", false), ("daily_upstream_latency", false), ("requests", true), ("attempts", true),
    ]

    /// Copies a SQLite store into this one, in ONE transaction: keys (their secrets, states and
    /// soft deletes), upstreams, clients (token hashes and limits), cooldowns in force, prices,
    /// resource owners, the daily totals and (unless `includingLog` is false) the raw request log,
    /// with their ids, so that references between them hold. This store must be empty of all of
    /// them: two nodes' histories are not merged. The SQLite file is only read (rows inserted by
    /// hand and not yet counted are added to its daily totals first).
    public func copy(from source: AppDatabase, includingLog: Bool = true) async throws -> StoreCopySummary {
        try source.foldPendingRows()
        let tables = Self.copiedTables.filter { includingLog || !$0.log }.map(\.name)
        var columns: [String: [String]] = [:]
        let sourceColumns = try source.read { db in
            try Dictionary(uniqueKeysWithValues: tables.map { table in (table, try db.columns(in: table).map(\.name)) })
        }
        do {
            return try await client.withTransaction(logger: logger) { connection in
                // The SQLite store's times are UTC without a zone: read as such.
                try await connection.query("SET LOCAL TIME ZONE 'UTC'", logger: self.logger)
                for table in tables {
                    var target = Set<String>()
                    for try await name in try await connection.query(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = \(table)",
                        logger: self.logger
                    ).decode(String.self) { target.insert(name) }
                    columns[table] = (sourceColumns[table] ?? []).filter(target.contains)
                    let present = try await Self.count(connection.query("SELECT COUNT(*) FROM \(unescaped: table)", logger: self.logger))
                    // The price table is filled at every start when empty: the node's own replaces it.
                    if present > 0, table == "prices" {
                        try await connection.query("DELETE FROM prices", logger: self.logger)
                    } else if present > 0 {
                        throw StoreError.invalid("the PostgreSQL store is not empty (\(table) has \(present) rows); 'store copy' moves a node into an empty store and merges nothing")
                    }
                }
                var summary = StoreCopySummary()
                for table in tables {
                    let names = columns[table] ?? []
                    let rows = try await self.copy(table, columns: names, from: source, connection)
                    summary.tables.append(.init(name: table, rows: rows))
                }
                for table in ["keys", "upstreams", "clients"] + (includingLog ? ["requests", "attempts"] : []) {
                    try await connection.query("""
                        SELECT setval(pg_get_serial_sequence(\(table), 'id'), COALESCE((SELECT MAX(id) FROM \(unescaped: table)), 0) + 1, false)
                        """, logger: self.logger)
                }
                if let state = try source.read({ db in try Row.fetchOne(db, sql: "SELECT * FROM log_state") }) {
                    try await connection.query("""
                        UPDATE log_state SET pruned_before = \(Self.date(state["pruned_before"])), last_pruned_at = \(Self.date(state["last_pruned_at"])),
                            requests_pruned = \(state["requests_pruned"] as Int64? ?? 0), attempts_pruned = \(state["attempts_pruned"] as Int64? ?? 0)
                        """, logger: self.logger)
                }
                // Every instance reloads what it now shares.
                _ = try await Self.bump(connection, logger: self.logger)
                return summary
            }
        } catch let error as StoreError {
            throw error
        } catch let error as PostgresTransactionError {
            if let error = error.closureError as? StoreError { throw error }
            throw StoreError.unavailable(reason: "PostgreSQL at \(location): \(Self.describe(error))")
        } catch {
            throw StoreError.unavailable(reason: "PostgreSQL at \(location): \(Self.describe(error))")
        }
    }

    /// One table, 10,000 rows at a time (by rowid where the table has one), as a JSON parameter
    /// (not `COPY`: see ``StoreRecords``).
    private func copy(_ table: String, columns: [String], from source: AppDatabase, _ connection: PostgresConnection) async throws -> Int {
        let list = columns.map { "\"\($0)\"" }.joined(separator: ", ")
        // A WITHOUT ROWID table (the cooldowns, the daily totals) has no rowid to page by: it is
        // small (a row per key, or per day and client and model), read whole.
        let hasRowID = try source.read { db in (try? db.execute(sql: "SELECT rowid FROM \(table) LIMIT 0")) != nil }
        var copied = 0
        var after: Int64 = .min
        while true {
            let (records, last, count) = try source.read { db -> (StoreRecords, Int64, Int) in
                var records = StoreRecords(columns: columns)
                var last = after
                var count = 0
                let sql = hasRowID
                    ? "SELECT rowid AS copy_rowid, \(list) FROM \(table) WHERE rowid > ? ORDER BY rowid LIMIT 10000"
                    : "SELECT 0 AS copy_rowid, \(list) FROM \(table)"
                let rows = try Row.fetchCursor(db, sql: sql, arguments: hasRowID ? [after] : [])
                while let row = try rows.next() {
                    last = row["copy_rowid"]
                    records.row(columns.indices.map { StoreRecords.Value(row[$0 + 1] as DatabaseValue) })
                    count += 1
                }
                return (records, last, count)
            }
            if count > 0 {
                try await connection.query("""
                    INSERT INTO \(unescaped: table) (\(unescaped: list))
                    SELECT \(unescaped: list) FROM json_populate_recordset(NULL::\(unescaped: table), \(records.json)::json)
                    """, logger: logger)
            }
            copied += count
            after = last
            if !hasRowID || count < 10_000 { return copied }
        }
    }

    /// A SQLite time (text, UTC) as a date.
    private static func date(_ value: DatabaseValue) -> Date? {
        Date.fromDatabaseValue(value)
    }
}

extension StoreRecords.Value {
    /// A SQLite value as the store's records take it: times stay the text SQLite holds (read as UTC),
    /// 0 and 1 go into boolean columns as PostgreSQL reads them.
    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .text(nil)
        case .int64(let number): self = .int(number)
        case .double(let number): self = .double(number)
        case .string(let text): self = .text(text)
        case .blob(let data): self = .text(String(decoding: data, as: UTF8.self))
        }
    }
}
