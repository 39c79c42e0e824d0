import Foundation
import Logging
import Testing
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
        try await Task.sleep(for: .milliseconds(200))
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 0, "still gathering")
        running.cancel()
        try await running.value
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM requests") == 5)
        #expect(try RetentionTests.count(store, "SELECT COUNT(*) FROM attempts") == 5)
        #expect(writer.droppedRows == 0)
    }
}
