#if canImport(Glibc)
import Glibc
#endif
import Logging
import ServiceLifecycle

/// Gives the memory a burst left free back to the system once the gateway is quiet again.
///
/// glibc's allocator keeps what it freed for the next allocation: after a burst of a thousand
/// streams the process holds some 20 MiB more than it uses, until the next burst reuses it (the
/// benchmark's "memory after each round" followed the size of that round's burst). After an
/// interval in which no proxied request started and none is running, if any ran since the last
/// time, `malloc_trim` returns the free pages; under steady traffic it never runs.
final class MemoryTrimmer: Service, Sendable {
    private let tasks: ProxyTasks
    private let interval: Duration
    private let trim: @Sendable () -> Void
    private let logger: Logger

    init(tasks: ProxyTasks, interval: Duration = .seconds(5), logger: Logger, trim: @escaping @Sendable () -> Void = MemoryTrimmer.returnFreeMemory) {
        self.tasks = tasks
        self.interval = interval
        self.trim = trim
        self.logger = logger
    }

    func run() async throws {
        var quiet = QuietAfterActivity(started: tasks.startedTotal)
        while (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: self.interval) })) != nil {
            if quiet.observe(started: tasks.startedTotal, running: tasks.running) {
                trim()
                logger.debug("returned free memory to the system after a quiet interval")
            }
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
/// time it said so.
struct QuietAfterActivity: Sendable {
    private var lastStarted: Int
    private var activeSinceTrim = false

    init(started: Int) {
        lastStarted = started
    }

    mutating func observe(started: Int, running: Int) -> Bool {
        let startedSince = started != lastStarted
        lastStarted = started
        if startedSince || running > 0 {
            activeSinceTrim = true
            return false
        }
        guard activeSinceTrim else { return false }
        activeSinceTrim = false
        return true
    }
}
