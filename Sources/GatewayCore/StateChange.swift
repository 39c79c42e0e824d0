import Foundation

// MARK: - StateChange

/// A change of pool state that the server writes behind to SQLite (promptly: these are rare).
///
/// Returned by ``Scheduler/record(_:key:upstream:model:now:policy:)``. Usage timestamps are not
/// among them: they change on every request and are collected in batches with
/// ``Scheduler/takeLastUsed()``.
public enum StateChange: Sendable, Hashable {
    /// Store (upsert by key and model) a key cooldown.
    case keyCooldown(KeyCooldown)
    /// Store (upsert by project and model) a project-wide cooldown.
    case projectCooldown(ProjectCooldown)
    /// Delete the key's cooldown for `model` if it ends at `until` or sooner (a 429 blamed on the
    /// upstream after all, ``EgressRule``).
    case keyCooldownLifted(keyID: Int64, model: String, until: Date)
    /// Likewise for a project's cooldown.
    case projectCooldownLifted(project: String, model: String, until: Date)
    /// The key was throttled at `at`; `streak` is its consecutive throttle count.
    case keyThrottled(id: Int64, at: Date, streak: Int)
    /// The key succeeded after throttles: its throttle streak is back to 0.
    case keyRecovered(id: Int64)
    /// Soft-delete the key (never a hard delete) with its reason and time.
    case keyDeleted(id: Int64, reason: String, at: Date)
    /// The upstream failed at `at`: its streak, and the end of its cooldown (nil when the failure
    /// only deprioritises it, as a transient 5xx does).
    case upstreamFailed(id: Int64, until: Date?, streak: Int, reason: String, at: Date)
    /// The upstream succeeded after failures: streak 0, no cooldown.
    case upstreamRecovered(id: Int64)
}

// MARK: - LastUsedBatch

/// Last-use times changed since the previous ``Scheduler/takeLastUsed()``, to be written in one
/// transaction.
public struct LastUsedBatch: Sendable, Hashable {
    /// Key id -> last use.
    public var keys: [Int64: Date]
    /// Upstream id -> last use.
    public var upstreams: [Int64: Date]

    /// A batch of last-use times.
    public init(keys: [Int64: Date] = [:], upstreams: [Int64: Date] = [:]) {
        self.keys = keys
        self.upstreams = upstreams
    }

    /// True when nothing was used.
    public var isEmpty: Bool { keys.isEmpty && upstreams.isEmpty }
}
