import Foundation
import Logging
import Synchronization
import Testing
import TestSupport
@testable import GatewayStore

/// The log writer loses no row it holds: not on a graceful shutdown, and not when its task is
/// cancelled (the service group does that when the shutdown grace runs out).
struct RequestLogWriterTests {
    @Test func rowsHeldWhenTheWriterIsCancelledAreStillWritten() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        // Rows gather for 10 s after the first: the cancellation comes while they wait.
        let writer = RequestLogWriter(database: store, coalescing: .seconds(10), logger: Logger(label: "test"))
        let running = Task { try await writer.run() }
        for index in 0..<5 {
            writer.enqueue(RetentionTests.entry("held-\(index)", at: Date(), keys: keys, upstream: upstream))
        }
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 0, "still gathering")
        running.cancel()
        try await running.value
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 5)
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM attempts") == 5)
        #expect(writer.droppedRows == 0)
    }

    @Test func aCancelledWriterWaitsForTheRowsOfTheRequestsCancelledWithIt() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        // Two requests still running when the writer is cancelled: one ends while the writer
        // waits for them and hands over its row, the other never does (the wait gives up after
        // its bound).
        let late = Mutex<RequestLogWriter?>(nil)
        let lateEntry = RetentionTests.entry("late", at: Date(), keys: keys, upstream: upstream)
        let writer = RequestLogWriter(
            database: store,
            stragglers: {
                late.withLock { _ = $0?.enqueue(lateEntry) }
                return 1
            },
            logger: Logger(label: "test")
        )
        late.withLock { $0 = writer }
        let running = Task { try await writer.run() }
        writer.enqueue(RetentionTests.entry("before", at: Date(), keys: keys, upstream: upstream))
        try await waitUntil("the first row written") { try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 1 }
        running.cancel()
        try await running.value
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 2)
        #expect(writer.droppedRows == 0)
        // Nothing is taken after the last write: a row that comes now is counted as dropped.
        #expect(!writer.enqueue(RetentionTests.entry("after", at: Date(), keys: keys, upstream: upstream)))
        #expect(writer.droppedRows == 1)
    }

    @Test func rowsNamingAKeyDeletedByHandAreStillWritten() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        // An operator deletes a key with sqlite3 (which checks no foreign keys by default) while
        // the gateway still has it in its pool and rows for it in its buffer.
        try store.write { db in
            try db.execute(sql: "DELETE FROM key_cooldowns WHERE key_id = ?", arguments: [keys[0]])
            try db.execute(sql: "DELETE FROM keys WHERE id = ?", arguments: [keys[0]])
        }
        // A check would fail this batch, and every retry of it: the log would stop for good.
        let entries = (0..<3).map { RetentionTests.entry("orphan-\($0)", at: Date(), keys: [keys[0]], upstream: upstream) }
        try await store.insert(entries)
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests WHERE key_id = \(keys[0])") == 3)
        #expect(try RetentionTests.count(store, "SELECT SUM(requests) FROM daily_key_usage WHERE key_id = \(keys[0])") == 3)
    }

    @Test func aFullBufferLogsOneLineASecondNotOneARow() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        let lines = LogCapture()
        // Room for two rows and no write yet: every row after them is dropped.
        let writer = RequestLogWriter(database: store, capacity: 2, coalescing: .seconds(10), logger: lines.logger())
        for index in 0..<1_000 {
            writer.enqueue(RetentionTests.entry("burst-\(index)", at: Date(), keys: keys, upstream: upstream))
        }
        #expect(writer.droppedRows == 998)
        let dropLines = lines.all.filter { $0.contains("rows dropped") }
        #expect(dropLines.count == 1, "\(dropLines.count) lines for 998 drops")
        #expect(dropLines.first?.hasSuffix("rows_dropped=1") == true, "\(dropLines)")
        #expect(dropLines.first?.contains("last_request_id=burst-2 ") == true, "names the first row dropped")
        // When the writer stops, the drops not yet said are said, with why they were dropped.
        let running = Task { try await writer.run() }
        running.cancel()
        try await running.value
        let final = lines.all.filter { $0.contains("rows dropped") }
        #expect(final.count == 2)
        #expect(final.last?.contains("buffer full") == true && final.last?.hasSuffix("rows_dropped=997") == true, "\(final)")
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 2, "the rows it held are written")
        // After the writer has stopped, each row dropped is said: no later line would say it.
        for index in 0..<3 {
            writer.enqueue(RetentionTests.entry("late-\(index)", at: Date(), keys: keys, upstream: upstream))
        }
        #expect(lines.all.filter { $0.contains("request log closed") }.count == 3)
    }

    @Test func theRestOfABurstOfDropsIsSaidWithALaterBatch() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        let lines = LogCapture()
        let writer = RequestLogWriter(database: store, capacity: 2, coalescing: .milliseconds(10), logger: lines.logger())
        let said = { lines.all.filter { $0.contains("rows dropped") } }
        for index in 0..<10 {
            writer.enqueue(RetentionTests.entry("burst-\(index)", at: Date(), keys: keys, upstream: upstream))
        }
        #expect(said().count == 1)
        let running = Task { try await writer.run() }
        try await waitUntil("the burst's two rows written") { try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") >= 2 }
        // Rows come again a second later, and the batch that writes them says the rest (or the
        // write of the burst's two rows did, if it ended a second after the burst's line: a busy
        // machine). Either way it is said while the writer runs, not when it stops.
        try await Task.sleep(for: .milliseconds(1_100))
        writer.enqueue(RetentionTests.entry("after", at: Date(), keys: keys, upstream: upstream))
        try await waitUntil("the rest of the drops said") { said().count >= 2 }
        #expect(said().count == 2)
        #expect(said().last?.hasSuffix("rows_dropped=7") == true, "\(said())")
        running.cancel()
        try await running.value
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 3)
    }

    @Test func dropReportSaysHowManySinceItsLastLine() {
        var report = DropReport(interval: .seconds(1))
        let start = ContinuousClock.now
        #expect(report.drop(at: start) == 1)
        #expect(report.drop(at: start + .milliseconds(10)) == nil)
        #expect(report.drop(at: start + .milliseconds(999)) == nil)
        #expect(report.drop(at: start + .milliseconds(1_000)) == 3)
        #expect(report.drop(at: start + .milliseconds(1_500)) == nil)
        #expect(report.takeUnreported(at: start + .milliseconds(1_600)) == nil, "not due yet")
        #expect(report.takeUnreported(at: start + .milliseconds(2_000)) == 1, "due")
        #expect(report.takeUnreported(at: start + .seconds(9)) == nil, "nothing left")
        #expect(report.drop(at: start + .milliseconds(2_100)) == nil)
        #expect(report.takeUnreported(at: start + .milliseconds(2_200), all: true) == 1, "the writer stops")
        #expect(report.drop(at: start + .seconds(5)) == 1)
    }
}
