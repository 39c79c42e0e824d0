#if canImport(Glibc)
import Glibc
#endif
import GatewayHTTP
import Logging
import ServiceLifecycle
import Synchronization

/// Gives the memory a burst left free back to the system once the gateway is quiet again.
///
/// glibc's allocator keeps what it freed for the next allocation: after a burst of a thousand
/// streams the process holds some 20 MiB more than it uses, until the next burst reuses it (the
/// benchmark's "memory after each round" followed the size of that round's burst). After an
/// interval in which no proxied request started and none is running, if any ran since the last
/// time, `malloc_trim` returns the free pages; under steady traffic it never runs. It trims once
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

    /// glibc's `malloc_trim(0)`: free pages of every arena back to the system. Looked up at run
    /// time (Swift's Glibc module leaves out `malloc.h`); elsewhere nothing.
    static func returnFreeMemory() {
        _ = mallocTrim?(0)
    }

    /// Whether this system's allocator can be trimmed (glibc).
    static var canTrim: Bool { mallocTrim != nil }

    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
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
