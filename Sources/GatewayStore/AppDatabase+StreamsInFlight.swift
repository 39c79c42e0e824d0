import Foundation
import GRDB

/// The streams still running, in `streams_in_flight` (migration 0005): a stream is in the
/// accounts from its first byte, and one the gateway never finished (a crash, `kill -9`) becomes
/// a `requests` row with outcome `interrupted` at the next start.
extension AppDatabase {
    /// Writes a batch of finished rows (as ``insert(_:)``) and snapshots of streams still running,
    /// in ONE transaction. A snapshot replaces the stream's earlier one; a finished row of a
    /// stream deletes its snapshot. A snapshot of a stream whose finished row is in this batch is
    /// not written (the writer never takes a snapshot after its stream's finished row).
    public func insert(_ entries: [RequestLogEntry], streams: [RequestLogEntry]) async throws {
        try await writer.write { db in
            if !entries.isEmpty { try Self.insert(entries, db) }
            try Self.updateStreamsInFlight(finished: entries, snapshots: streams, db)
        }
    }

    static func updateStreamsInFlight(finished: [RequestLogEntry], snapshots: [RequestLogEntry], _ db: Database) throws {
        var ended = Set<String>()
        for entry in finished where entry.isStream { ended.insert(entry.requestId) }
        if !snapshots.isEmpty {
            let encoder = JSONEncoder()
            let upsert = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO streams_in_flight
                    (request_id, started_at, updated_at, client_name, model, key_fingerprint, upstream_url,
                     response_bytes, total_tokens, entry)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            var written = Set<String>()
            // The newest snapshot of each stream: the last in the batch.
            for snapshot in snapshots.reversed() where !ended.contains(snapshot.requestId) {
                guard written.insert(snapshot.requestId).inserted else { continue }
                let updated = snapshot.startedAt.addingTimeInterval((snapshot.latencyMs ?? 0) / 1000)
                let json = String(decoding: try encoder.encode(snapshot), as: UTF8.self)
                try upsert.execute(arguments: [
                    snapshot.requestId, snapshot.startedAt, updated, snapshot.clientName, snapshot.model,
                    snapshot.keyFingerprint, snapshot.upstreamUrl, snapshot.responseBytes, snapshot.totalTokens, json,
                ])
            }
        }
        guard !ended.isEmpty else { return }
        let delete = try db.cachedStatement(sql: "DELETE FROM streams_in_flight WHERE request_id = ?")
        for requestID in ended { try delete.execute(arguments: [requestID]) }
    }

    /// Turns the streams a gateway left running when it stopped without ending them into
    /// `requests` rows with outcome `interrupted` (error reason `GATEWAY_STOPPED`), with what
    /// their last snapshot knew: key, upstream, model, client, attempts, bytes, the last token
    /// total, and as latency the time to that snapshot. Inserted and folded into the daily totals
    /// as any row, in one transaction with deleting them. Call at start, before serving: a stream
    /// of this process is never there yet. Returns the rows made.
    public func recoverInterruptedStreams() async throws -> [RequestLogEntry] {
        try await writer.write { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT request_id, started_at, client_name, model, key_fingerprint, upstream_url, response_bytes, entry
                FROM streams_in_flight ORDER BY started_at, request_id
                """)
            guard !rows.isEmpty else { return [] }
            let decoder = JSONDecoder()
            let entries = rows.map { row -> RequestLogEntry in
                let text: String = row["entry"]
                var entry: RequestLogEntry
                if let decoded = try? decoder.decode(RequestLogEntry.self, from: Data(text.utf8)) {
                    entry = decoded
                } else {
                    // A row written by hand or damaged: what its columns say.
                    let started: Date = row["started_at"] ?? Date(timeIntervalSince1970: 0)
                    entry = RequestLogEntry(requestId: row["request_id"], startedAt: started, method: "POST", endpoint: "unknown")
                    entry.isStream = true
                    entry.status = 200
                    entry.clientName = row["client_name"]
                    entry.model = row["model"]
                    entry.keyFingerprint = row["key_fingerprint"]
                    entry.upstreamUrl = row["upstream_url"]
                    entry.responseBytes = row["response_bytes"] ?? 0
                }
                entry.outcome = .interrupted
                entry.errorReason = "GATEWAY_STOPPED"
                return entry
            }
            try Self.insert(entries, db)
            try db.execute(sql: "DELETE FROM streams_in_flight")
            return entries
        }
    }
}
