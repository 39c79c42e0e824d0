#if canImport(Glibc)
import Glibc
#endif
import GatewayHTTP
import Logging
import ServiceLifecycle
import Synchronization

/// Gives the memory a burst left free back to the system once the gateway is quiet again.
///
/// The allocator keeps what it freed for the next allocation: after a burst of a thousand
/// streams the process holds some 20 MiB more than it uses, until the next burst reuses it (the
/// benchmark's "memory after each round" followed the size of that round's burst). After an
/// interval in which no proxied request started and none is running, if any ran since the last
/// time, ``returnFreeMemory()`` returns the free pages; under steady traffic it never runs. It trims once
/// more when the quiet has lasted `againAfter` since that trim: by then the upstream pools have
/// closed the connections the burst left idle (`upstreamPoolIdleTimeout`, 60 s after the last
/// was put back, at the latest at the first trim), whose buffers the first trim could not return
/// (about 20 KB each, a thousand after a burst of streams).
final class MemoryTrimmer: Service, Sendable {
    private let tasks: ProxyTasks
    /// Requests started when the trimmer was made: those that start later are activity.
    private let initialCount: Int
    private let interval: Duration
    private let againAfter: Duration
    private let trim: @Sendable () -> Void
    private let logger: Logger
    private let observed = Atomic<Int>(0)

    /// The intervals looked at so far (tests wait on it instead of on the clock).
    var intervalsObserved: Int { observed.load(ordering: .acquiring) }

    init(
        tasks: ProxyTasks, interval: Duration = .seconds(5), againAfter: Duration = upstreamPoolIdleTimeout + .seconds(5), logger: Logger,
        trim: @escaping @Sendable () -> Void = MemoryTrimmer.returnFreeMemory
    ) {
        self.tasks = tasks
        self.initialCount = tasks.startedTotal
        self.interval = interval
        self.againAfter = againAfter
        self.trim = trim
        self.logger = logger
    }

    func run() async throws {
        // Whole intervals, rounded up: the second trim never comes before `againAfter`.
        let again = Int((againAfter / interval).rounded(.up))
        var quiet = QuietAfterActivity(started: initialCount, againAfter: max(again, 1))
        while (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: self.interval) })) != nil {
            if quiet.observe(started: tasks.startedTotal, running: tasks.running) {
                trim()
                logger.debug("returned free memory to the system after a quiet interval")
            }
            observed.add(1, ordering: .releasing)
        }
    }

    /// Free pages of every arena back to the system: jemalloc's `arena.<all>.purge` when the
    /// process runs on jemalloc (the gateway links it; it purges on its own only while it is
    /// called), else glibc's `malloc_trim(0)`. Looked up at run time (Swift's Glibc module
    /// leaves out `malloc.h`); elsewhere nothing.
    static func returnFreeMemory() {
        switch trimmer {
        case .jemalloc(let mallctl):
            _ = mallctl(jemallocPurgeAll, nil, nil, nil, 0)
        case .glibc(let mallocTrim):
            _ = mallocTrim(0)
        case nil:
            break
        }
    }

    /// Whether this system's allocator can be trimmed (jemalloc or glibc).
    static var canTrim: Bool { trimmer != nil }

    /// The allocator whose free pages ``returnFreeMemory()`` returns, for the start's log line.
    static var allocator: String {
        switch trimmer {
        case .jemalloc: "jemalloc"
        case .glibc: "glibc"
        case nil: "unknown"
        }
    }

    private enum Trimmer {
        case jemalloc(@convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?, UnsafeMutableRawPointer?, Int) -> Int32)
        case glibc(@convention(c) (Int) -> Int32)
    }

    /// `MALLCTL_ARENAS_ALL` is 4096.
    private static let jemallocPurgeAll = "arena.4096.purge"

    private static let trimmer: Trimmer? = {
        #if canImport(Glibc)
        let process = dlopen(nil, RTLD_NOW)
        if let symbol = dlsym(process, "mallctl") {
            return .jemalloc(unsafeBitCast(symbol, to: (@convention(c) (
                UnsafePointer<CChar>?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?, UnsafeMutableRawPointer?, Int
            ) -> Int32).self))
        }
        guard let symbol = dlsym(process, "malloc_trim") else { return nil }
        return .glibc(unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self))
        #else
        return nil
        #endif
    }()
}

/// Decides, one observation an interval, when the gateway has become quiet after some activity:
/// no request started during the last interval, none running, and some started since the last
/// time it said so; and once more when the quiet has lasted `againAfter` more intervals.
struct QuietAfterActivity: Sendable {
    private var lastStarted: Int
    private var activeSinceTrim = false
    private let againAfter: Int
    /// Quiet observations after the first trim of this quiet spell; nil once it trimmed again
    /// (or before any activity).
    private var quietSinceTrim: Int?

    init(started: Int, againAfter: Int = .max) {
        lastStarted = started
        self.againAfter = againAfter
    }

    mutating func observe(started: Int, running: Int) -> Bool {
        let startedSince = started != lastStarted
        lastStarted = started
        if startedSince || running > 0 {
            activeSinceTrim = true
            quietSinceTrim = nil
            return false
        }
        if activeSinceTrim {
            activeSinceTrim = false
            quietSinceTrim = 0
            return true
        }
        guard let quiet = quietSinceTrim.map({ $0 + 1 }) else { return false }
        quietSinceTrim = quiet < againAfter ? quiet : nil
        return quiet == againAfter
    }
}
