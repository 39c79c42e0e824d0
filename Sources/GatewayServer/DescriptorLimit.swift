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

    #if canImport(Glibc)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resource = RLIMIT_NOFILE
    #endif
}
