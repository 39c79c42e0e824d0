import Foundation

// MARK: - KeyCooldown

/// A key must not be used for `model` until `until`.
public struct KeyCooldown: Sendable, Hashable {
    /// The key's database id.
    public var keyID: Int64
    /// The model the cooldown applies to, or ``ModelName/all`` (`"*"`) for every model.
    public var model: String
    /// The first instant the key may be used again for the model.
    public var until: Date
    /// Why (a ``Verdict/reason``: `RATE_LIMIT_PER_MINUTE`, `QUOTA_PER_DAY`, `SERVICE_DISABLED`, ...).
    public var reason: String
    /// The `quotaId` Google named, if any.
    public var quotaID: String?

    /// A key cooldown.
    public init(keyID: Int64, model: String, until: Date, reason: String, quotaID: String? = nil) {
        self.keyID = keyID
        self.model = model
        self.until = until
        self.reason = reason
        self.quotaID = quotaID
    }
}

// MARK: - ProjectCooldown

/// Every key labelled with `project` must not be used for `model` until `until`: quotas are per
/// Google project, so a quota 429 on one key of a project holds for all of them.
public struct ProjectCooldown: Sendable, Hashable {
    /// The project label given to keys at import.
    public var project: String
    /// The model the cooldown applies to, or ``ModelName/all`` (`"*"`).
    public var model: String
    /// The first instant the project's keys may be used again for the model.
    public var until: Date
    /// Why (a ``Verdict/reason``).
    public var reason: String
    /// The `quotaId` Google named, if any.
    public var quotaID: String?

    /// A project-wide cooldown.
    public init(project: String, model: String, until: Date, reason: String, quotaID: String? = nil) {
        self.project = project
        self.model = model
        self.until = until
        self.reason = reason
        self.quotaID = quotaID
    }
}
