import NIOCore
import NIOPosix

/// A task executor that runs each job on the SwiftNIO event loop of the thread that enqueued it,
/// and jobs enqueued from any other thread on the next loop of the group.
///
/// Each request is answered in a task, and the sockets live on event loops: on Swift's global
/// executor every `await` on socket I/O crosses threads twice (loop -> pool -> loop), and
/// those hand-offs, not the gateway's own code, dominated its profile. A task woken by its
/// socket's loop (the request arrived, the upstream answered) continues on that loop here, where
/// the upstream transport also keeps its pooled connections (`currentEventLoop`), so one request
/// stays on one thread from the client's bytes to the upstream and back.
///
/// Everything the gateway runs is preferred onto it (``Gateway/run(_:)``); nothing in it blocks a
/// thread (SQLite work runs on GRDB's own queues). The request log's writer and the pool's sync
/// opt out (`globalConcurrentExecutor`): their batches are work no request should wait behind.
///
/// Pinned to one loop (``init(pinnedTo:)``), it runs every job there: a proxied request's task
/// runs on its connection's loop, even after an await that another thread resumes (GRDB's
/// queues), so it can write to its channel directly.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    private let group: any EventLoopGroup
    private let pinned: (any EventLoop)?

    public init(group: MultiThreadedEventLoopGroup = .singleton) {
        self.group = group
        self.pinned = nil
    }

    init(pinnedTo loop: any EventLoop) {
        self.group = loop
        self.pinned = loop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let loop = pinned ?? MultiThreadedEventLoopGroup.currentEventLoop ?? group.next()
        loop.execute { job.runSynchronously(on: executor) }
    }
}
