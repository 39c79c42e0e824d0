import Foundation

// MARK: - PoolKey

/// An active Gemini API key as the scheduler sees it.
///
/// `description`, `debugDescription` and reflection (`dump`, `Mirror`) show the fingerprint,
/// never the secret, so a key interpolated into a log line cannot leak.
public struct PoolKey: Sendable, Hashable {
    /// The database id.
    public var id: Int64
    /// The key itself, sent upstream. Never log it.
    public var secret: String
    /// A short, safe identifier for logs and reports.
    public var fingerprint: String
    /// The optional Google project label given at import; quota throttles apply project-wide.
    public var project: String?
    /// When the key was last picked.
    public var lastUsedAt: Date?
    /// When the key was last throttled (or made unusable).
    public var lastThrottledAt: Date?
    /// Consecutive throttles since the last success (drives the bare-429 backoff).
    public var throttleStreak: Int
    /// Its requests cost nothing (`keys set --free-tier`); their list price is still recorded.
    public var freeTier: Bool

    /// A key as loaded from the database.
    public init(
        id: Int64,
        secret: String,
        fingerprint: String,
        project: String? = nil,
        lastUsedAt: Date? = nil,
        lastThrottledAt: Date? = nil,
        throttleStreak: Int = 0,
        freeTier: Bool = false
    ) {
        self.id = id
        self.secret = secret
        self.fingerprint = fingerprint
        self.project = project
        self.lastUsedAt = lastUsedAt
        self.lastThrottledAt = lastThrottledAt
        self.throttleStreak = throttleStreak
        self.freeTier = freeTier
    }
}

// MARK: - Redaction

extension PoolKey: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The id, fingerprint and project; never the secret.
    public var description: String {
        "PoolKey(id: \(id), fingerprint: \(fingerprint), project: \(project ?? "-"))"
    }

    /// Same as ``description``.
    public var debugDescription: String { description }

    /// Every field but the secret.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "id": id,
            "fingerprint": fingerprint,
            "project": project as Any,
            "lastUsedAt": lastUsedAt as Any,
            "lastThrottledAt": lastThrottledAt as Any,
            "throttleStreak": throttleStreak,
            "freeTier": freeTier,
        ])
    }
}
