import Foundation
import GatewayCore
import GatewayStore
import NIOCore
import PostgresNIO

// MARK: - The request log: each row counted once, from every instance

extension PostgresStore {
    /// Writes a batch of finished rows and snapshots of running streams in ONE transaction:
    /// 1. the rows go as one JSON parameter per table (one round trip whatever the batch's size)
    ///    into temporary stage tables that the commit empties (not by `COPY`: ``StoreRecords``);
    /// 2. `INSERT … SELECT` moves them into `requests` and `attempts`, skipping request ids already
    ///    there: a batch written again after its commit's answer was lost adds nothing;
    /// 3. only the rows inserted now are added to the daily tables, each table's rows upserted in
    ///    key order (so two instances adding to the same day's rows cannot deadlock).
    /// Request ids carry the instance's id (``registerInstance(name:)``), so no other instance
    /// writes the same ones.
    public func insert(_ entries: [RequestLogEntry], streams: [RequestLogEntry]) async throws {
        try await transaction { connection in
            if !entries.isEmpty { try await self.insertRows(entries, connection) }
            try await self.updateStreamsInFlight(finished: entries, snapshots: streams, connection)
        }
    }

    func insertRows(_ entries: [RequestLogEntry], _ connection: PostgresConnection) async throws {
        // Once per connection (then a no-op): the log's columns without its ids and constraints.
        try await connection.query("""
            CREATE TEMP TABLE IF NOT EXISTS requests_stage ON COMMIT DELETE ROWS AS
            SELECT \(unescaped: Self.requestColumns.joined(separator: ", ")) FROM requests WITH NO DATA
            """, logger: logger)
        try await connection.query("""
            CREATE TEMP TABLE IF NOT EXISTS attempts_stage ON COMMIT DELETE ROWS AS
            SELECT \(unescaped: Self.attemptColumns.joined(separator: ", ")) FROM attempts WITH NO DATA
            """, logger: logger)
        var requests = StoreRecords(columns: Self.requestColumns)
        var attempts = StoreRecords(columns: Self.attemptColumns)
        for e in entries {
            requests.row(
                .text(e.requestId), .date(e.startedAt), .int(e.clientId), .text(e.clientName), .text(e.method),
                .text(e.endpoint), .text(e.apiVersion), .text(e.model), .bool(e.isStream), .int(Int64(e.status)),
                .text(e.outcome.rawValue), .int(Int64(e.attempts.count)), .int(e.keyId), .text(e.keyFingerprint),
                .int(e.upstreamId), .text(e.upstreamUrl), .double(e.latencyMs), .double(e.ttfbMs),
                .int(Int64(e.requestBytes)), .int(Int64(e.responseBytes)), .int(Int64(e.promptTokens)),
                .int(Int64(e.cachedTokens)), .int(Int64(e.candidatesTokens)), .int(Int64(e.thoughtsTokens)),
                .int(Int64(e.toolUseTokens)), .int(Int64(e.totalTokens)), .text(e.usageStatus.rawValue),
                .text(e.errorStatus), .text(e.errorReason), .double(e.queueWaitMs), .int(e.cost?.costMicros ?? 0),
                .int(e.cost?.listCostMicros ?? 0), .text((e.cost?.status ?? .none).rawValue))
            for a in e.attempts {
                attempts.row(
                    .text(e.requestId), .int(Int64(a.attempt)), .date(a.startedAt), .int(a.keyId), .int(a.upstreamId),
                    .int(a.status.map(Int64.init)), .text(a.verdict), .text(a.googleStatus), .text(a.reason),
                    .text(a.quotaId), .double(a.latencyMs))
            }
        }
        try await connection.query(
            "INSERT INTO requests_stage SELECT * FROM json_populate_recordset(NULL::requests_stage, \(requests.json)::json)",
            logger: logger)
        if !attempts.isEmpty {
            try await connection.query(
                "INSERT INTO attempts_stage SELECT * FROM json_populate_recordset(NULL::attempts_stage, \(attempts.json)::json)",
                logger: logger)
        }
        let requestList = Self.requestColumns.joined(separator: ", ")
        var inserted: [Int64] = []
        for try await id in try await connection.query("""
            INSERT INTO requests (\(unescaped: requestList))
            SELECT \(unescaped: requestList) FROM requests_stage ORDER BY request_id
            ON CONFLICT (request_id) DO NOTHING
            RETURNING id
            """, logger: logger).decode(Int64.self) {
            inserted.append(id)
        }
        guard !inserted.isEmpty else { return }
        let attemptList = Self.attemptColumns.joined(separator: ", ")
        var insertedAttempts: [Int64] = []
        if !attempts.isEmpty {
            for try await id in try await connection.query("""
                INSERT INTO attempts (\(unescaped: attemptList))
                SELECT \(unescaped: attemptList.split(separator: ",").map { "s." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
                FROM attempts_stage s JOIN requests r ON r.request_id = s.request_id AND r.id = ANY(\(inserted)::bigint[])
                ORDER BY s.request_id, s.attempt
                ON CONFLICT (request_id, attempt) DO NOTHING
                RETURNING id
                """, logger: logger).decode(Int64.self) {
                insertedAttempts.append(id)
            }
        }
        try await fold(requests: inserted, attempts: insertedAttempts, connection)
    }

    static let requestColumns = [
        "request_id", "started_at", "client_id", "client_name", "method", "endpoint", "api_version", "model",
        "is_stream", "status", "outcome", "attempt_count", "key_id", "key_fingerprint", "upstream_id", "upstream_url",
        "latency_ms", "ttfb_ms", "request_bytes", "response_bytes", "prompt_tokens", "cached_tokens",
        "candidates_tokens", "thoughts_tokens", "tool_use_tokens", "total_tokens", "usage_status",
        "error_status", "error_reason", "queue_wait_ms", "cost_micros", "list_cost_micros", "price_status",
    ]

    static let attemptColumns = [
        "request_id", "attempt", "started_at", "key_id", "upstream_id", "status", "verdict", "google_status",
        "reason", "quota_id", "latency_ms",
    ]

    /// Adds the rows `requests` and `attempts` (ids just inserted) to the four daily tables: the
    /// sums SQLite's `pending_daily_*` views compute, over these rows only.
    private func fold(requests: [Int64], attempts: [Int64], _ connection: PostgresConnection) async throws {
        try await connection.query("""
            INSERT INTO daily_usage (day, client, model, \(unescaped: Self.usageColumns.map(\.table).joined(separator: ", ")))
            SELECT day, client, model, \(unescaped: Self.usageColumns.map { "SUM(\($0.facts))" }.joined(separator: ", "))
            FROM request_facts WHERE id = ANY(\(requests)::bigint[])
            GROUP BY day, client, model ORDER BY day, client, model
            ON CONFLICT (day, client, model) DO UPDATE SET
            \(unescaped: Self.usageColumns.map { "\($0.table) = daily_usage.\($0.table) + EXCLUDED.\($0.table)" }.joined(separator: ", "))
            """, logger: logger)
        try await connection.query("""
            INSERT INTO daily_key_usage (day, key_id, requests, successful, errors, total_tokens, attempts, successful_attempts,
                throttled_attempts, key_failures, upstream_failures, cost_micros, list_cost_micros)
            SELECT day, key_id, SUM(requests), SUM(successful), SUM(errors), SUM(total_tokens), SUM(attempts),
                SUM(successful_attempts), SUM(throttled_attempts), SUM(key_failures), SUM(upstream_failures),
                SUM(cost_micros), SUM(list_cost_micros)
            FROM (
                SELECT day, key_id, requests, successful, errors, total_tokens, 0 AS attempts, 0 AS successful_attempts,
                    0 AS throttled_attempts, 0 AS key_failures, 0 AS upstream_failures, cost_micros, list_cost_micros
                FROM request_facts WHERE id = ANY(\(requests)::bigint[]) AND key_id IS NOT NULL
                UNION ALL
                SELECT day, key_id, 0, 0, 0, 0, attempts, successful_attempts, throttled_attempts, key_failures,
                    upstream_failures, 0, 0
                FROM attempt_facts WHERE id = ANY(\(attempts)::bigint[]) AND key_id IS NOT NULL
            ) batch
            GROUP BY day, key_id ORDER BY day, key_id
            ON CONFLICT (day, key_id) DO UPDATE SET
                requests = daily_key_usage.requests + EXCLUDED.requests, successful = daily_key_usage.successful + EXCLUDED.successful,
                errors = daily_key_usage.errors + EXCLUDED.errors, total_tokens = daily_key_usage.total_tokens + EXCLUDED.total_tokens,
                attempts = daily_key_usage.attempts + EXCLUDED.attempts,
                successful_attempts = daily_key_usage.successful_attempts + EXCLUDED.successful_attempts,
                throttled_attempts = daily_key_usage.throttled_attempts + EXCLUDED.throttled_attempts,
                key_failures = daily_key_usage.key_failures + EXCLUDED.key_failures,
                upstream_failures = daily_key_usage.upstream_failures + EXCLUDED.upstream_failures,
                cost_micros = daily_key_usage.cost_micros + EXCLUDED.cost_micros,
                list_cost_micros = daily_key_usage.list_cost_micros + EXCLUDED.list_cost_micros
            """, logger: logger)
        try await connection.query("""
            INSERT INTO daily_upstream_usage (day, upstream_id, model, requests, successful, errors, attempts, successful_attempts,
                throttled_attempts, key_failures, upstream_failures, timed_attempts, latency_ms_sum, latency_ms_max)
            SELECT day, upstream_id, model, SUM(requests), SUM(successful), SUM(errors), SUM(attempts), SUM(successful_attempts),
                SUM(throttled_attempts), SUM(key_failures), SUM(upstream_failures), SUM(timed_attempts), SUM(latency_ms),
                MAX(latency_ms_max)
            FROM (
                SELECT day, upstream_id, model, requests, successful, errors, 0 AS attempts, 0 AS successful_attempts,
                    0 AS throttled_attempts, 0 AS key_failures, 0 AS upstream_failures, 0 AS timed_attempts,
                    0::float8 AS latency_ms, NULL::float8 AS latency_ms_max
                FROM request_facts WHERE id = ANY(\(requests)::bigint[]) AND upstream_id IS NOT NULL
                UNION ALL
                SELECT day, upstream_id, model, 0, 0, 0, attempts, successful_attempts, throttled_attempts, key_failures,
                    upstream_failures, timed_attempts, latency_ms, CASE WHEN timed_attempts = 1 THEN latency_ms END
                FROM attempt_facts WHERE id = ANY(\(attempts)::bigint[]) AND upstream_id IS NOT NULL
            ) batch
            GROUP BY day, upstream_id, model ORDER BY day, upstream_id, model
            ON CONFLICT (day, upstream_id, model) DO UPDATE SET
                requests = daily_upstream_usage.requests + EXCLUDED.requests,
                successful = daily_upstream_usage.successful + EXCLUDED.successful,
                errors = daily_upstream_usage.errors + EXCLUDED.errors, attempts = daily_upstream_usage.attempts + EXCLUDED.attempts,
                successful_attempts = daily_upstream_usage.successful_attempts + EXCLUDED.successful_attempts,
                throttled_attempts = daily_upstream_usage.throttled_attempts + EXCLUDED.throttled_attempts,
                key_failures = daily_upstream_usage.key_failures + EXCLUDED.key_failures,
                upstream_failures = daily_upstream_usage.upstream_failures + EXCLUDED.upstream_failures,
                timed_attempts = daily_upstream_usage.timed_attempts + EXCLUDED.timed_attempts,
                latency_ms_sum = daily_upstream_usage.latency_ms_sum + EXCLUDED.latency_ms_sum,
                latency_ms_max = GREATEST(daily_upstream_usage.latency_ms_max, EXCLUDED.latency_ms_max)
            """, logger: logger)
        guard !attempts.isEmpty else { return }
        try await connection.query("""
            INSERT INTO daily_upstream_latency (day, upstream_id, model, bucket_ms, attempts)
            SELECT day, upstream_id, model, latency_bucket_ms, COUNT(*)
            FROM attempt_facts
            WHERE id = ANY(\(attempts)::bigint[]) AND upstream_id IS NOT NULL AND latency_bucket_ms IS NOT NULL
            GROUP BY day, upstream_id, model, latency_bucket_ms ORDER BY day, upstream_id, model, latency_bucket_ms
            ON CONFLICT (day, upstream_id, model, bucket_ms) DO UPDATE SET attempts = daily_upstream_latency.attempts + EXCLUDED.attempts
            """, logger: logger)
    }

    /// `daily_usage`'s measures and the `request_facts` column each sums (as SQLite's
    /// `pending_daily_usage`).
    static let usageColumns: [(table: String, facts: String)] = [
        "requests", "successful", "errors", "client_errors", "throttled", "no_capacity", "upstream_errors", "cancelled",
        "truncated", "streamed", "upstream_attempts", "usage_missing", "usage_truncated", "prompt_tokens", "cached_tokens",
        "candidates_tokens", "thoughts_tokens", "tool_use_tokens", "total_tokens", "request_bytes", "response_bytes",
        "latency_ms_sum", "ttfb_ms_sum", "ttfb_requests", "client_limited", "unpriced_requests", "cost_micros",
        "list_cost_micros",
    ].map { column in
        (column, column == "latency_ms_sum" ? "latency_ms" : column == "ttfb_ms_sum" ? "ttfb_ms" : column)
    }

    // MARK: Streams in flight

    private func updateStreamsInFlight(finished: [RequestLogEntry], snapshots: [RequestLogEntry], _ connection: PostgresConnection) async throws {
        let ended = Set(finished.lazy.filter(\.isStream).map(\.requestId))
        var written = Set<String>()
        let encoder = JSONEncoder()
        // The newest snapshot of each stream: the last in the batch.
        for snapshot in snapshots.reversed() where !ended.contains(snapshot.requestId) {
            guard written.insert(snapshot.requestId).inserted else { continue }
            let updated = snapshot.startedAt.addingTimeInterval((snapshot.latencyMs ?? 0) / 1000)
            let json = String(decoding: try encoder.encode(snapshot), as: UTF8.self)
            try await connection.query("""
                INSERT INTO streams_in_flight (request_id, started_at, updated_at, client_name, model, key_fingerprint,
                    upstream_url, response_bytes, total_tokens, entry)
                VALUES (\(snapshot.requestId), \(snapshot.startedAt), \(updated), \(snapshot.clientName), \(snapshot.model),
                    \(snapshot.keyFingerprint), \(snapshot.upstreamUrl), \(snapshot.responseBytes), \(snapshot.totalTokens), \(json))
                ON CONFLICT (request_id) DO UPDATE SET updated_at = EXCLUDED.updated_at, response_bytes = EXCLUDED.response_bytes,
                    total_tokens = EXCLUDED.total_tokens, entry = EXCLUDED.entry
                """, logger: logger)
        }
        guard !ended.isEmpty else { return }
        try await connection.query("DELETE FROM streams_in_flight WHERE request_id = ANY(\(Array(ended)))", logger: logger)
    }

    /// The streams this instance's id left running when it last stopped become `interrupted`
    /// rows, at start. Those of other ids no live instance holds are left to the heartbeat's
    /// look (``recoverOrphanedStreams()``), which waits until the heartbeats have gone through for
    /// a while: an instance that starts just after an outage of the database sees every other
    /// instance's heartbeat old, also of those still serving their streams.
    public func recoverInterruptedStreams() async throws -> [RequestLogEntry] {
        try await recoverStreams(own: true)
    }

    /// The streams of ids no live instance holds (its last heartbeat older than
    /// ``staleInstance``), while serving (from the heartbeat, every ``orphanCheckInterval``): those
    /// of an instance that died, also of one that came back at once under another id. Another
    /// live instance's streams may still be running and are left alone.
    func recoverOrphanedStreams() async throws -> [RequestLogEntry] {
        try await recoverStreams(own: false)
    }

    private func recoverStreams(own: Bool) async throws -> [RequestLogEntry] {
        let prefix = String(format: "%04x", instanceID)
        return try await transaction { connection in
            var entries: [RequestLogEntry] = []
            let decoder = JSONDecoder()
            // Rows another instance recovers at the same time are locked, then gone: skipped.
            for try await (requestID, entry) in try await connection.query("""
                SELECT request_id, entry FROM streams_in_flight
                WHERE (\(own) AND substr(request_id, 12, 4) = \(prefix))
                   OR (NOT \(own) AND substr(request_id, 12, 4) <> \(prefix) AND substr(request_id, 12, 4) NOT IN (
                        SELECT lpad(to_hex(id), 4, '0') FROM gateway_instances
                        WHERE heartbeat_at > now() - make_interval(secs => \(Self.staleInstance))))
                ORDER BY started_at, request_id FOR UPDATE
                """, logger: self.logger).decode((String, String).self) {
                var recovered = (try? decoder.decode(RequestLogEntry.self, from: Data(entry.utf8)))
                    ?? RequestLogEntry(requestId: requestID, startedAt: Date(timeIntervalSince1970: 0), method: "POST", endpoint: "unknown")
                recovered.outcome = .interrupted
                recovered.errorReason = "GATEWAY_STOPPED"
                entries.append(recovered)
            }
            guard !entries.isEmpty else { return [] }
            try await self.insertRows(entries, connection)
            try await connection.query(
                "DELETE FROM streams_in_flight WHERE request_id = ANY(\(entries.map(\.requestId)))", logger: self.logger)
            return entries
        }
    }

    // MARK: Retention

    /// As SQLite's, but only one instance prunes at a time (a transaction-scoped advisory lock;
    /// the others find it taken and prune nothing). No fold is needed first: every row was added
    /// to the daily tables in the transaction that inserted it.
    public func pruneBatch(before cutoff: Date, limit: Int, now: Date) async throws -> PruneBatch {
        try await transaction { connection in
            var locked = false
            for try await taken in try await connection.query(
                "SELECT pg_try_advisory_xact_lock(\(Self.retentionLock))", logger: self.logger
            ).decode(Bool.self) { locked = taken }
            guard locked else { return PruneBatch() }
            try await connection.query("""
                UPDATE log_state SET pruned_before = \(cutoff), last_pruned_at = \(now)
                WHERE pruned_before IS NULL OR pruned_before < \(cutoff)
                """, logger: self.logger)
            let attempts = try await Self.count(connection.query("""
                WITH gone AS (DELETE FROM attempts WHERE id IN (
                    SELECT id FROM attempts WHERE started_at < \(cutoff) ORDER BY started_at LIMIT \(limit)) RETURNING 1)
                SELECT COUNT(*) FROM gone
                """, logger: self.logger))
            let requests = try await Self.count(connection.query("""
                WITH gone AS (DELETE FROM requests WHERE id IN (
                    SELECT id FROM requests WHERE started_at < \(cutoff) ORDER BY started_at LIMIT \(limit)) RETURNING 1)
                SELECT COUNT(*) FROM gone
                """, logger: self.logger))
            if requests + attempts > 0 {
                try await connection.query("""
                    UPDATE log_state SET requests_pruned = requests_pruned + \(requests), attempts_pruned = attempts_pruned + \(attempts),
                        last_pruned_at = \(now)
                    """, logger: self.logger)
            }
            // Events older than any poll's look-back are read by nobody.
            try await connection.query("DELETE FROM pool_events WHERE at < now() - interval '1 hour'", logger: self.logger)
            try await connection.query("DELETE FROM client_usage_events WHERE at < now() - interval '1 hour'", logger: self.logger)
            return PruneBatch(requests: requests, attempts: attempts)
        }
    }

    static func count(_ rows: PostgresRowSequence) async throws -> Int {
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }

    // MARK: Owners of project-bound resources

    public func resourceOwners(now: Date) async throws -> [String: ResourceOwner] {
        var owners: [String: ResourceOwner] = [:]
        for row in try await rows("SELECT name, key_id, upstream_id, client_id, created_at FROM resource_owners") {
            let name = try row["name"].decode(String.self)
            if AppDatabase.resourceOwnerExpired(name: name, createdAt: try row["created_at"].decode(Date.self), now: now) { continue }
            owners[name] = ResourceOwner(
                keyID: try row["key_id"].decode(Int64.self), upstreamID: try row["upstream_id"].decode(Int64?.self),
                clientID: try row["client_id"].decode(Int64?.self))
        }
        return owners
    }

    public func resourceOwner(named name: String, now: Date) async throws -> ResourceOwner? {
        guard let row = try await rows(
            "SELECT key_id, upstream_id, client_id, created_at FROM resource_owners WHERE name = \(name)"
        ).first else { return nil }
        if AppDatabase.resourceOwnerExpired(name: name, createdAt: try row["created_at"].decode(Date.self), now: now) { return nil }
        return ResourceOwner(
            keyID: try row["key_id"].decode(Int64.self), upstreamID: try row["upstream_id"].decode(Int64?.self),
            clientID: try row["client_id"].decode(Int64?.self))
    }

    public func saveResourceOwners(_ names: [String], owner: ResourceOwner, now: Date) async throws {
        try await transaction { connection in
            for name in names {
                try await connection.query("""
                    INSERT INTO resource_owners (name, key_id, upstream_id, client_id, created_at)
                    VALUES (\(name), \(owner.keyID), \(owner.upstreamID), \(owner.clientID), \(now))
                    ON CONFLICT (name) DO UPDATE SET key_id = EXCLUDED.key_id, upstream_id = EXCLUDED.upstream_id,
                        client_id = EXCLUDED.client_id, created_at = EXCLUDED.created_at
                    """, logger: self.logger)
            }
        }
    }

    public func deleteResourceOwner(_ name: String) async throws {
        _ = try await rows("DELETE FROM resource_owners WHERE name = \(name)")
    }

    public func pruneResourceOwners(now: Date) async throws -> Int {
        try await transaction { connection in
            var deleted = 0
            for (prefix, days) in AppDatabase.resourceOwnerLifetimes {
                deleted += try await Self.count(connection.query("""
                    WITH gone AS (DELETE FROM resource_owners WHERE starts_with(name, \(prefix))
                        AND created_at < \(now.addingTimeInterval(-Double(days) * 86_400)) RETURNING 1)
                    SELECT COUNT(*) FROM gone
                    """, logger: self.logger))
            }
            return deleted
        }
    }
}

// MARK: - Rows as a JSON parameter

/// Rows as one JSON array of objects (column name to value), for
/// `json_populate_recordset(NULL::table, $1::json)`: the request log's batches and `store copy`
/// go this way rather than by `COPY`. postgres-nio 1.33 stops the process (a
/// `preconditionFailure("Copy mode is only supported for extended queries")` in `sendCopyDone`)
/// when the connection drops during a `COPY`; a PostgreSQL crash under load did that to a
/// serving gateway. Times go as `YYYY-MM-DD HH:MM:SS.mmm+00` strings, a non-finite double as null
/// (as SQLite stores a NaN), and NUL is dropped from text (PostgreSQL's text cannot hold it;
/// SQLite's store keeps a text up to its first NUL: both lose it).
struct StoreRecords {
    enum Value {
        case text(String?)
        case int(Int64?)
        case double(Double?)
        case bool(Bool)
        case date(Date)
    }

    /// Each column's name as a JSON key with its colon: `"name":`.
    private let keys: [[UInt8]]
    private var bytes: [UInt8] = [UInt8(ascii: "[")]
    private(set) var isEmpty = true
    private static let hex = Array("0123456789abcdef".utf8)

    init(columns: [String]) {
        keys = columns.map { Array("\"\($0)\":".utf8) }
    }

    /// The rows written, as one JSON array.
    var json: String { String(decoding: bytes + [UInt8(ascii: "]")], as: UTF8.self) }

    mutating func row(_ values: Value...) {
        row(values)
    }

    mutating func row(_ values: [Value]) {
        precondition(values.count == keys.count, "a row of \(values.count) values for \(keys.count) columns")
        if !isEmpty { bytes.append(UInt8(ascii: ",")) }
        isEmpty = false
        bytes.append(UInt8(ascii: "{"))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes.append(contentsOf: keys[index])
            write(value)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    private mutating func write(_ value: Value) {
        switch value {
        case .text(nil), .int(nil), .double(nil): bytes.append(contentsOf: "null".utf8)
        case .text(let text?): writeString(text)
        case .int(let value?): bytes.append(contentsOf: String(value).utf8)
        case .double(let value?): bytes.append(contentsOf: (value.isFinite ? "\(value)" : "null").utf8)
        case .bool(let value): bytes.append(contentsOf: (value ? "true" : "false").utf8)
        case .date(let date): writeString(Self.timestamp(date))
        }
    }

    private mutating func writeString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case 0: continue  // PostgreSQL's text cannot hold NUL
            case UInt8(ascii: "\""): bytes.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: "\\\\".utf8)
            case 0x01..<0x20:
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(Self.hex[Int(byte >> 4)])
                bytes.append(Self.hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `YYYY-MM-DD HH:MM:SS.mmm+00`, to the millisecond as SQLite's store keeps times.
    static func timestamp(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let seconds = milliseconds.floorDiv(1000)
        let days = seconds.floorDiv(86_400)
        let (year, month, day) = UTCCalendar.civil(days)
        let second = seconds - days * 86_400
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", Int(year), Int(month), Int(day), Int(second / 3600),
            Int(second / 60 % 60), Int(second % 60), Int(milliseconds - seconds * 1000))
    }
}
