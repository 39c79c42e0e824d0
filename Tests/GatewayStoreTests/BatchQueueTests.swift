import Synchronization
import Testing
import TestSupport
@testable import GatewayStore

/// The queue between the request path and the log writer: the consumer is woken for the first
/// element after each batch it took, and hears of everything put back.
struct BatchQueueTests {
    @Test func everyElementReachesTheConsumerAcrossBatches() async throws {
        let queue = BatchQueue<Int>(capacity: 1_000)
        let consumer = Consumer(queue)
        var sent: [Int] = []
        for round in 0..<20 {
            for index in 0..<(round % 4 + 1) {
                let element = round * 10 + index
                #expect(queue.enqueue(element))
                sent.append(element)
            }
            // Between rounds the consumer takes what came: the next round starts a new batch.
            _ = try await consumer.wait(for: sent.count)
        }
        #expect(try await consumer.wait(for: sent.count) == sent)
        queue.endConsuming()
        await consumer.finished()
        #expect(consumer.batchCount > 1)
    }

    @Test func aBatchPutBackIntoAnEmptyQueueWakesTheConsumer() async throws {
        let queue = BatchQueue<Int>(capacity: 1_000)
        let consumer = Consumer(queue)
        queue.enqueue(1)
        #expect(try await consumer.wait(for: 1) == [1])
        queue.requeue([2, 3])
        #expect(try await consumer.wait(for: 3) == [1, 2, 3], "without waiting for another element")
        queue.endConsuming()
        await consumer.finished()
    }

    @Test func aFullQueueDropsAndCountsWhatDoesNotFit() {
        let queue = BatchQueue<Int>(capacity: 3)
        #expect((0..<5).map { queue.enqueue($0) } == [true, true, true, false, false])
        #expect(queue.dropped == 2)
        #expect(queue.drain() == [0, 1, 2])
        queue.requeue([7, 8, 9, 10])
        #expect(queue.dropped == 3, "room for three of the four put back")
        #expect(queue.drain() == [7, 8, 9])
    }
}

/// Batches handed to a consumer running in a task of its own.
private final class Consumer: Sendable {
    private let batches = Mutex<[[Int]]>([])
    private(set) nonisolated(unsafe) var task: Task<Void, Never>?

    init(_ queue: BatchQueue<Int>) {
        task = Task { [self] in await queue.consume { batch in self.batches.withLock { $0.append(batch) } } }
    }

    var received: [Int] { batches.withLock { $0.flatMap { $0 } } }
    var batchCount: Int { batches.withLock { $0.count } }

    /// Waits until `count` elements have come.
    func wait(for count: Int) async throws -> [Int] {
        try await waitUntil("\(count) elements consumed") { received.count >= count }
        return received
    }

    func finished() async { await task?.value }
}
