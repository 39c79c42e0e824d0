import Foundation
import GatewayCore
import GRDB

// MARK: - One record type per table (columns in snake_case, properties in camelCase)

/// A row of `keys`.
public struct KeyRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "keys"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public enum State: String, Codable, Sendable, CaseIterable { case active, disabled, deleted }

    public var id: Int64?
    public var secret: String
    public var fingerprint: String
    public var tail: String
    public var project: String?
    public var state: State
    public var disabledAt: Date?
    public var deletedAt: Date?
    public var deletedReason: String?
    public var lastUsedAt: Date?
    public var lastThrottledAt: Date?
    public var throttleStreak: Int
    public var createdAt: Date
    public var updatedAt: Date
    /// Its requests cost 0 (their list price is still recorded): `keys set --free-tier`.
    public var freeTier: Bool = false

    public init(
        id: Int64?, secret: String, fingerprint: String, tail: String, project: String?, state: State,
        disabledAt: Date? = nil, deletedAt: Date? = nil, deletedReason: String? = nil, lastUsedAt: Date? = nil,
        lastThrottledAt: Date? = nil, throttleStreak: Int = 0, createdAt: Date, updatedAt: Date, freeTier: Bool = false
    ) {
        self.id = id
        self.secret = secret
        self.fingerprint = fingerprint
        self.tail = tail
        self.project = project
        self.state = state
        self.disabledAt = disabledAt
        self.deletedAt = deletedAt
        self.deletedReason = deletedReason
        self.lastUsedAt = lastUsedAt
        self.lastThrottledAt = lastThrottledAt
        self.throttleStreak = throttleStreak
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.freeTier = freeTier
    }

    public enum Columns {
        public static let id = Column("id")
        public static let secret = Column("secret")
        public static let fingerprint = Column("fingerprint")
        public static let project = Column("project")
        public static let state = Column("state")
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A row of `upstreams`.
public struct UpstreamRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "upstreams"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public enum State: String, Codable, Sendable, CaseIterable { case active, disabled }

    public var id: Int64?
    public var baseUrl: String
    public var state: State
    public var cooldownUntil: Date?
    public var failureStreak: Int
    public var lastFailureAt: Date?
    public var lastFailureReason: String?
    public var lastUsedAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public enum Columns {
        public static let id = Column("id")
        public static let baseUrl = Column("base_url")
        public static let state = Column("state")
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// A row of `key_cooldowns`: the key is not used for `model` ('*' = all) until `until`.
public struct KeyCooldownRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "key_cooldowns"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var keyId: Int64
    public var model: String
    public var until: Date
    public var reason: String
    public var quotaId: String?
    public var createdAt: Date

    public init(keyId: Int64, model: String, until: Date, reason: String, quotaId: String?, createdAt: Date) {
        self.keyId = keyId
        self.model = model
        self.until = until
        self.reason = reason
        self.quotaId = quotaId
        self.createdAt = createdAt
    }
}

/// A row of `project_cooldowns`: every key labelled `project` is not used for `model` until `until`.
public struct ProjectCooldownRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "project_cooldowns"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var project: String
    public var model: String
    public var until: Date
    public var reason: String
    public var quotaId: String?
    public var createdAt: Date

    public init(project: String, model: String, until: Date, reason: String, quotaId: String?, createdAt: Date) {
        self.project = project
        self.model = model
        self.until = until
        self.reason = reason
        self.quotaId = quotaId
        self.createdAt = createdAt
    }
}

/// A row of `clients`: a gateway token, stored as its SHA-256.
public struct ClientRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "clients"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    public var id: Int64?
    public var name: String
    public var tokenHash: String
    public var tokenTail: String
    public var createdAt: Date
    public var revokedAt: Date?
    // The client's limits (migration 0007); nil: none.
    public var rpm: Int?
    public var rpd: Int?
    public var tpm: Int?
    public var tpd: Int?
    public var dailyBudgetMicros: Int64?
    public var monthlyBudgetMicros: Int64?
    public var maxConcurrent: Int?
    /// Allowed model names or globs, one a line.
    public var models: String?
    public var expiresAt: Date?
    /// The last change by `clients add` or `clients set`.
    public var updatedAt: Date?

    public init(id: Int64?, name: String, tokenHash: String, tokenTail: String, createdAt: Date, revokedAt: Date?, limits: ClientLimits = ClientLimits()) {
        self.id = id
        self.name = name
        self.tokenHash = tokenHash
        self.tokenTail = tokenTail
        self.createdAt = createdAt
        self.revokedAt = revokedAt
        self.limits = limits
        self.updatedAt = createdAt
    }

    /// The limits as the request path judges them.
    public var limits: ClientLimits {
        get {
            ClientLimits(
                rpm: rpm, rpd: rpd, tpm: tpm, tpd: tpd, dailyBudgetMicros: dailyBudgetMicros,
                monthlyBudgetMicros: monthlyBudgetMicros, maxConcurrent: maxConcurrent,
                models: models.map { $0.split(separator: "\n").map(String.init) }, expiresAt: expiresAt
            )
        }
        set {
            rpm = newValue.rpm
            rpd = newValue.rpd
            tpm = newValue.tpm
            tpd = newValue.tpd
            dailyBudgetMicros = newValue.dailyBudgetMicros
            monthlyBudgetMicros = newValue.monthlyBudgetMicros
            maxConcurrent = newValue.maxConcurrent
            models = newValue.models.map { $0.joined(separator: "\n") }
            expiresAt = newValue.expiresAt
        }
    }

    public enum Columns {
        public static let id = Column("id")
        public static let name = Column("name")
        public static let tokenHash = Column("token_hash")
        public static let revokedAt = Column("revoked_at")
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}
