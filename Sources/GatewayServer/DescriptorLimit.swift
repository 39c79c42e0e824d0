#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's limit on open descriptors. Every client connection and every upstream
/// connection holds one, and the usual soft limit (1,024) is met by a few hundred streams; the
/// hard limit is what the system allows the process. Raised at start, as Go's runtime and
/// nginx (`worker_rlimit_nofile`) do.
public enum DescriptorLimit {
    /// The soft limit before and after, and the hard limit.
    public struct Raised: Sendable, Equatable {
        public var before: UInt64
        public var now: UInt64
        public var hard: UInt64
    }

    /// Raises the soft limit to the hard one; nil when the limits cannot be read. A hard limit
    /// the kernel will not grant (unlimited, above `fs.nr_open`) leaves the soft one as it was.
    public static func raise() -> Raised? {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return nil }
        let before = UInt64(limit.rlim_cur)
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            _ = setrlimit(resource, &raised)
        }
        guard getrlimit(resource, &limit) == 0 else { return nil }
        return Raised(before: before, now: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
    }

    /// The soft limit now; nil when it cannot be read.
    public static func current() -> UInt64? {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return nil }
        return UInt64(limit.rlim_cur)
    }

    /// Descriptors kept for everything but client connections: SQLite and its WAL, the
    /// listener, logs, the event loops' own, and `/proc` files that the Swift runtime's thread
    /// pool reads (libdispatch stops the process when it cannot open one: a gateway at its
    /// descriptor limit crashed with SIGILL).
    public static let reserved: UInt64 = 256

    /// The default cap on client connections for a soft limit: every connection may hold a
    /// second descriptor upstream while it is answered, and the reserve stays free, so the
    /// process never reaches its limit through its clients.
    public static func connectionCap(softLimit: UInt64) -> Int {
        let usable = softLimit > reserved ? softLimit - reserved : 0
        return Int(min(max(usable / 2, 16), UInt64(Int32.max)))
    }

    #if canImport(Glibc)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}
