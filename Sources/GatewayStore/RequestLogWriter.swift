import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The batched request-log writer: one Service. The request path only enqueues (never waits on
/// SQLite); this service writes whatever has accumulated in one transaction, and on graceful
/// shutdown writes what is left before it returns. A full buffer drops rows, counts them and
/// logs it (a line a second at most, ``DropReport``); a failed write is retried, not lost.
/// Cancelled (a shutdown that outlasted its grace), it still writes what it holds, in one try,
/// after the requests cancelled with it have handed over their rows
/// (``init(database:capacity:maximumBatch:coalescing:stragglers:logger:)``).
public final class RequestLogWriter: Service, Sendable {
    private let database: any ServingStore
    private let queue: BatchQueue<RequestLogEntry>
    /// The rows of streams still running, as they stand (``enqueueStreamSnapshot(_:)``): written
    /// with the next batch of finished rows, into `streams_in_flight`.
    private let streams: BatchQueue<RequestLogEntry>
    private let logger: Logger
    /// The most rows written in one transaction.
    private let maximumBatch: Int
    /// How long rows gather after the first one arrives before they are written together.
    private let coalescing: Duration
    /// Waits for the requests still running when the writer is cancelled to end; returns how
    /// many did not (their rows will be missing).
    private let stragglers: @Sendable () async -> Int
    /// The dropped rows not yet logged, by why they were dropped.
    /// Rows dropped after the writer has stopped are each logged: there is no later line.
    private let drops: Mutex<[DropReport]>

    /// - Parameter stragglers: called once when the writer is cancelled, before its last write:
    ///   the requests still being answered were cancelled too (the server closed their
    ///   connections), and each ends at once and hands over its row. It should return when none
    ///   is left, or after a bound, with the number still running.
    public init(
        database: any ServingStore, capacity: Int = 100_000, maximumBatch: Int = 5_000,
        coalescing: Duration = .milliseconds(100), stragglers: @escaping @Sendable () async -> Int = { 0 },
        logger: Logger
    ) {
        self.drops = Mutex([DropReport(), DropReport(interval: .zero)])  // by DropReason
        self.database = database
        self.queue = BatchQueue(capacity: capacity)
        self.streams = BatchQueue(capacity: capacity)
        self.maximumBatch = maximumBatch
        self.coalescing = coalescing
        self.stragglers = stragglers
        self.logger = logger
    }

    /// Hands a row to the writer without waiting. Returns false if it had to be dropped.
    @discardableResult
    public func enqueue(_ entry: consuming RequestLogEntry) -> Bool {
        let requestID = entry.requestId
        let accepted = queue.enqueue(entry)
        if !accepted {
            let reason: DropReason = queue.isClosed ? .closed : .bufferFull
            if let count = drops.withLock({ $0[reason.rawValue].drop(at: .now) }) {
                logDropped(count, reason: reason, lastRequestID: requestID)
            }
        }
        return accepted
    }

    /// Hands the writer the row of a stream still running, as it stands now (its bytes and tokens
    /// so far), without waiting: it is written to `streams_in_flight` with the next batch, where
    /// the next start finds it if this gateway never finishes the stream (migration 0005). The
    /// stream's finished row, enqueued after this, deletes it. A snapshot that does not fit is
    /// dropped: the stream then has no such row until its next snapshot.
    public func enqueueStreamSnapshot(_ entry: consuming RequestLogEntry) {
        if streams.enqueue(entry) { queue.wake() }
    }

    private enum DropReason: Int, CaseIterable {
        case bufferFull, closed

        var message: Logger.Message {
            switch self {
            case .bufferFull: "request log buffer full: rows dropped"
            case .closed: "request log closed (the gateway has stopped): rows dropped"
            }
        }
    }

    private func logDropped(_ count: Int, reason: DropReason, lastRequestID: String?) {
        var metadata: Logger.Metadata = ["rows_dropped": "\(count)", "dropped_total": "\(queue.dropped)"]
        if let lastRequestID { metadata["last_request_id"] = "\(lastRequestID)" }
        logger.error(reason.message, metadata: metadata)
    }

    /// Logs the drops not logged yet whose line is due (`all`: every one, the writer stops).
    private func logPendingDrops(all: Bool) {
        let now = ContinuousClock.now
        let due = drops.withLock { reports in DropReason.allCases.map { reports[$0.rawValue].takeUnreported(at: now, all: all) } }
        for reason in DropReason.allCases {
            if let count = due[reason.rawValue] { logDropped(count, reason: reason, lastRequestID: nil) }
        }
    }

    /// Rows waiting to be written.
    public var queueDepth: Int { queue.depth }
    /// Rows dropped because the buffer was full.
    public var droppedRows: Int { queue.dropped }

    public func run() async throws {
        // Off the event loops: the gateway's tasks prefer the loop that wakes them, and this
        // one is woken by the requests. On a loop, each batch (some 3,000 rows under load) was
        // freed there after its write, a stall of that loop, and the other loop's rows among
        // them took the other loop's allocator lock row by row (bench/RESULTS.md).
        try await withTaskExecutorPreference(globalConcurrentExecutor) { try await consume() }
    }

    private func consume() async throws {
        // Rows are taken until the very end: a graceful shutdown only stops the waiting between
        // writes (and a cancelled group signals it to the writer too, while requests cancelled
        // with it are still handing over their rows).
        await withGracefulShutdownHandler {
            await queue.consume(coalescing: coalescing) { batch in
                // The snapshots are taken after the rows: a stream's snapshot is enqueued before
                // its finished row, so a row taken here has its snapshots in this batch or an
                // earlier one, and no snapshot is written after the row that ends its stream.
                let snapshots = self.streams.drain()
                guard !batch.isEmpty || !snapshots.isEmpty else { return }
                // Drops not said yet are said once due, around each batch's write (the rows that
                // come after a burst); whatever is left when the writer stops, then.
                self.logPendingDrops(all: false)
                await self.write(batch, streams: snapshots)
                self.logPendingDrops(all: false)
            }
        } onGracefulShutdown: {
            self.queue.endConsuming()
        }
        var missing = 0
        if Task.isCancelled {
            // The rows of the requests cancelled with this task arrive now: wait for them in a
            // task that is not cancelled.
            let stragglers = self.stragglers
            missing = await Task { await stragglers() }.value
        }
        queue.close()
        streams.close()
        let rest = queue.drain()
        let snapshots = streams.drain()
        if !rest.isEmpty || !snapshots.isEmpty { await write(rest, streams: snapshots) }
        if missing > 0 {
            logger.critical("requests still running at exit: their rows are missing", metadata: ["requests": "\(missing)"])
        }
        // Drops not said yet (a burst that ended within a second of its last line) are said now.
        logPendingDrops(all: true)
        logger.debug("request log writer stopped", metadata: ["dropped": "\(queue.dropped)"])
    }

    /// Writes `batch` (finished rows) and `streams` (snapshots of streams still running), in
    /// transactions of at most ``maximumBatch`` rows; the snapshots go with the first.
    private func write(_ batch: [RequestLogEntry], streams: [RequestLogEntry]) async {
        var start = 0
        var streams = streams
        while start < batch.count || !streams.isEmpty {
            let slice = batch.count <= maximumBatch ? batch : Array(batch[start..<min(start + maximumBatch, batch.count)])
            var delay: Duration = .milliseconds(100)
            while true {
                do {
                    // In a task of its own: GRDB starts no write in a cancelled task, and the
                    // writer's task is cancelled when a shutdown outlasts its grace, with rows
                    // still held. A write that fails then is not tried again (below).
                    let database = self.database
                    let snapshots = streams
                    try await Task { try await database.insert(slice, streams: snapshots) }.value
                    streams = []
                    break
                } catch {
                    if Task.isCancelled {
                        logger.critical("request log writer cancelled with rows unwritten", metadata: ["rows_lost": "\(max(0, batch.count - start))", "error": "\(error)"])
                        return
                    }
                    // The database may be locked for longer than the busy timeout (a long CLI
                    // transaction, a backup): keep the rows and try again, backing off.
                    logger.error("request log write failed; retrying", metadata: ["rows": "\(slice.count)", "error": "\(error)"])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(5))
                }
            }
            start += maximumBatch
        }
    }
}

/// When dropped rows are logged: the first drop at once, then at most one line an interval,
/// saying how many were dropped since the line before. A buffer that stays full under load drops
/// thousands of rows a second; a line for each would flood the log (and take the CPU the writer
/// lacks). The total is also in the metrics and on the status page.
struct DropReport: Sendable {
    let interval: Duration
    private var lastLine: ContinuousClock.Instant?
    private var unreported = 0

    init(interval: Duration = .seconds(1)) {
        self.interval = interval
    }

    /// Counts one drop; returns how many drops to log now (this one included), or nil while the
    /// last line is more recent than `interval`.
    mutating func drop(at now: ContinuousClock.Instant) -> Int? {
        unreported += 1
        return takeUnreported(at: now)
    }

    /// The drops not logged yet, if any, once their line is due (`interval` after the last one),
    /// or at once when `all` (the writer stops).
    mutating func takeUnreported(at now: ContinuousClock.Instant, all: Bool = false) -> Int? {
        guard unreported > 0 else { return nil }
        if !all, let lastLine, now - lastLine < interval { return nil }
        lastLine = now
        defer { unreported = 0 }
        return unreported
    }
}
