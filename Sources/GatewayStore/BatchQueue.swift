import Synchronization

/// A bounded buffer between many producers on the request path and one consumer that writes
/// batches: `enqueue` never waits (it takes a lock for a few instructions), and a full buffer
/// drops the element and counts it instead of stalling anyone.
public final class BatchQueue<Element: Sendable>: Sendable {
    private struct Buffer {
        var elements: [Element] = []
        var dropped = 0
        /// No more elements are accepted (``close()``).
        var closed = false
        /// `consume` returns once it has handed out what is buffered (``endConsuming()``).
        var ending = false
    }

    private let buffer = Mutex(Buffer())
    private let wakeUps: AsyncStream<Void>
    private let wakeUp: AsyncStream<Void>.Continuation
    /// The most elements held at once.
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = capacity
        (wakeUps, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Adds an element; returns false (and counts it as dropped) when the buffer is full or closed.
    @discardableResult
    public func enqueue(_ element: consuming Element) -> Bool {
        var element = Optional(element)
        let (accepted, first) = buffer.withLock { buffer in
            guard !buffer.closed, buffer.elements.count < capacity else {
                buffer.dropped += 1
                return (false, false)
            }
            // Moved in, not copied.
            buffer.elements.append(element.take()!)
            return (true, buffer.elements.count == 1)
        }
        // The consumer is woken by the first element after it took a batch: it takes all that
        // came since when it wakes (the wake-up stream has its own lock, not taken per element).
        if first { wakeUp.yield() }
        return accepted
    }

    /// Wakes the consumer as an element would, without one: it calls its body even with nothing
    /// buffered (``consume(coalescing:_:)``), for work kept beside this queue.
    public func wake() {
        wakeUp.yield()
    }

    /// Puts a batch that could not be written back at the front, as far as capacity allows.
    public func requeue(_ batch: [Element]) {
        guard !batch.isEmpty else { return }
        buffer.withLock { buffer in
            let room = max(0, capacity - buffer.elements.count)
            buffer.elements.insert(contentsOf: batch.prefix(room), at: 0)
            buffer.dropped += max(0, batch.count - room)
        }
        // The buffer may have been empty: the consumer must hear of it (``enqueue`` wakes it only
        // for a first element).
        wakeUp.yield()
    }

    /// Elements waiting to be written.
    public var depth: Int { buffer.withLock { $0.elements.count } }

    /// Elements dropped because the buffer was full, since the start.
    public var dropped: Int { buffer.withLock { $0.dropped } }

    /// Takes everything buffered now. The buffer that takes its place is made before the lock
    /// is taken, as large as the one taken (as `removeAll(keepingCapacity:)` would make it):
    /// under the lock, only a swap. Producers then append without growing the array: a buffer
    /// grown by a producer is made in that thread's malloc arena and freed by the writer's, which
    /// held 12-18 MiB more after the benchmark's loads than buffers made by the writer.
    public func drain() -> [Element] {
        let room = buffer.withLock { $0.elements.isEmpty ? 0 : $0.elements.capacity }
        guard room > 0 else { return [] }  // nothing to take: no buffer made
        var batch = [Element]()
        batch.reserveCapacity(room)
        buffer.withLock { swap(&$0.elements, &batch) }
        return batch
    }

    /// Whether ``close()`` was called.
    public var isClosed: Bool { buffer.withLock { $0.closed } }

    /// `consume` hands out what is buffered now, without waiting, and returns. Elements are still
    /// accepted (for ``drain()``) until ``close()``.
    public func endConsuming() {
        buffer.withLock { $0.ending = true }
        wakeUp.finish()
    }

    /// No more elements are accepted: each is counted as dropped.
    public func close() {
        buffer.withLock { $0.closed = true }
    }

    /// Calls `body` with each batch as elements arrive, until ``endConsuming()`` (or the task's
    /// cancellation); the last call gets whatever was still buffered then. After a wake-up it
    /// waits `coalescing` before taking the batch, so that under load one write carries many
    /// elements (one SQLite transaction per batch is what costs, not the rows in it). The batch
    /// is empty only after a ``wake()`` with nothing buffered, and at the end.
    public func consume(coalescing: Duration = .zero, _ body: ([Element]) async -> Void) async {
        for await _ in wakeUps {
            if coalescing > .zero, !buffer.withLock({ $0.ending }) {
                try? await Task.sleep(for: coalescing)
            }
            await body(drain())
        }
        await body(drain())
    }
}
