import Foundation
import GatewayCore
import GRDB
import Logging
import Testing
import TestSupport
@testable import GatewayStore

/// A stream is in the accounts from its first byte (`streams_in_flight`, migration 0005), and one
/// the gateway never finished becomes an `interrupted` row at the next start.
struct StreamsInFlightTests {
    /// A stream's row as its relay snapshots it: `bytes` sent so far, the running token total.
    static func stream(_ id: String, keys: [Int64], upstream: Int64, bytes: Int, tokens: Int) -> RequestLogEntry {
        var entry = RetentionTests.entry(id, at: Date(), keys: keys, upstream: upstream, tokens: tokens)
        entry.endpoint = "streamGenerateContent"
        entry.isStream = true
        entry.keyFingerprint = "AIza…0001"
        entry.responseBytes = bytes
        entry.usageStatus = .truncated
        entry.latencyMs = 2_500
        return entry
    }

    static func inFlight(_ store: AppDatabase) throws -> [Row] {
        try store.read { db in try Row.fetchAll(db, sql: "SELECT * FROM streams_in_flight ORDER BY request_id") }
    }

    @Test func aSnapshotIsReplacedByTheNextAndDeletedByTheStreamsRow() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        try await store.insert([], streams: [Self.stream("s1", keys: keys, upstream: upstream, bytes: 100, tokens: 10)])
        try await store.insert([], streams: [
            Self.stream("s1", keys: keys, upstream: upstream, bytes: 300, tokens: 20),
            Self.stream("s2", keys: keys, upstream: upstream, bytes: 50, tokens: 4),
        ])
        var rows = try Self.inFlight(store)
        #expect(rows.map { $0["request_id"] as String } == ["s1", "s2"])
        #expect(rows[0]["response_bytes"] as Int == 300, "the newer snapshot")
        #expect(rows[0]["total_tokens"] as Int == 20)
        #expect(rows[0]["model"] as String? == "gemini-2.5-flash")
        #expect(rows[0]["key_fingerprint"] as String? == "AIza…0001")
        let started: Date = try #require(rows[0]["started_at"])
        let updated: Date = try #require(rows[0]["updated_at"])
        #expect(abs(updated.timeIntervalSince(started) - 2.5) < 0.01, "refreshed at its latency so far")

        // s1 ends: its row goes to requests and its snapshot away, in one transaction.
        var finished = Self.stream("s1", keys: keys, upstream: upstream, bytes: 400, tokens: 30)
        finished.usageStatus = .complete
        try await store.insert([finished], streams: [])
        rows = try Self.inFlight(store)
        #expect(rows.map { $0["request_id"] as String } == ["s2"])
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 1)

        // A snapshot in the batch of its own stream's row is not written.
        let s3 = Self.stream("s3", keys: keys, upstream: upstream, bytes: 10, tokens: 1)
        try await store.insert([s3], streams: [s3, Self.stream("s4", keys: keys, upstream: upstream, bytes: 1, tokens: 1)])
        #expect(try Self.inFlight(store).map { $0["request_id"] as String } == ["s2", "s4"])
    }

    @Test func streamsLeftRunningBecomeInterruptedRowsWithWhatWasKnown() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        try await store.insert([], streams: [
            Self.stream("cut-1", keys: keys, upstream: upstream, bytes: 1_234, tokens: 57),
            Self.stream("cut-2", keys: keys, upstream: upstream, bytes: 99, tokens: 0),
        ])
        // The process dies here; the next start recovers them.
        let reopened = try AppDatabase.open(path: directory.file("gateway.db"))
        let recovered = try await reopened.recoverInterruptedStreams()
        #expect(recovered.map(\.requestId) == ["cut-1", "cut-2"])
        #expect(try Self.inFlight(reopened).isEmpty)

        let row = try #require(try reopened.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM requests WHERE request_id = 'cut-1'")
        })
        #expect(row["outcome"] as String == "interrupted")
        #expect(row["error_reason"] as String? == "GATEWAY_STOPPED")
        #expect(row["is_stream"] as Bool == true)
        #expect(row["status"] as Int == 200)
        #expect(row["response_bytes"] as Int == 1_234)
        #expect(row["total_tokens"] as Int == 57)
        #expect(row["usage_status"] as String == "truncated")
        #expect(row["key_id"] as Int64? == keys[0])
        #expect(row["upstream_id"] as Int64? == upstream)
        #expect(row["model"] as String? == "gemini-2.5-flash")
        #expect(row["latency_ms"] as Double? == 2_500)
        #expect(try RetentionTests.count(reopened, "SELECT COUNT(*) FROM attempts WHERE request_id = 'cut-1'") == 1)

        // Counted as a truncated answer (it broke off after its first byte), not an upstream error,
        // in the raw view and in the daily totals alike, and its tokens are in the usage.
        let facts = try #require(try reopened.read { db in
            try Row.fetchOne(db, sql: "SELECT truncated, upstream_errors, errors FROM request_facts WHERE request_id = 'cut-1'")
        })
        #expect(facts["truncated"] as Int == 1 && facts["upstream_errors"] as Int == 0 && facts["errors"] as Int == 1)
        let day = try #require(try reopened.read { db in
            try Row.fetchOne(db, sql: "SELECT SUM(requests) AS requests, SUM(truncated) AS truncated, SUM(upstream_errors) AS upstream_errors, SUM(total_tokens) AS tokens FROM usage_by_model_day")
        })
        #expect(day["requests"] as Int == 2)
        #expect(day["truncated"] as Int == 2)
        #expect(day["upstream_errors"] as Int == 0)
        #expect(day["tokens"] as Int == 57)

        // A second start finds nothing more.
        #expect(try await reopened.recoverInterruptedStreams().isEmpty)
        #expect(try RetentionTests.count(reopened, "SELECT COUNT(*) FROM requests") == 2)
    }

    @Test func theWriterWritesASnapshotWithNoFinishedRowToCarryIt() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        let writer = RequestLogWriter(database: store, logger: Logger(label: "test"))
        let running = Task { try await writer.run() }
        defer { running.cancel() }
        // Only streams running, nothing finishing: the snapshot alone wakes the writer.
        writer.enqueueStreamSnapshot(Self.stream("alone", keys: keys, upstream: upstream, bytes: 5, tokens: 1))
        try await waitUntil("the snapshot written") { try Self.inFlight(store).count == 1 }
        // Its row, enqueued after it, replaces it.
        writer.enqueue(Self.stream("alone", keys: keys, upstream: upstream, bytes: 9, tokens: 2))
        try await waitUntil("the stream's row written and its snapshot deleted") {
            try Self.inFlight(store).isEmpty && RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 1
        }
    }
}
