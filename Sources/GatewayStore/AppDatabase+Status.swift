import Foundation
import GRDB

// MARK: - Status: what can serve right now

/// Counts for `gemini-gateway status` and readiness.
public struct StoreStatus: Codable, Sendable, Equatable {
    /// Active keys with no cooldown in force for any model.
    public var usableKeys: Int
    /// Active keys with at least one cooldown in force (they may still serve other models).
    public var coolingKeys: Int
    public var disabledKeys: Int
    public var deletedKeys: Int
    public var activeUpstreams: Int
    public var coolingUpstreams: Int
    public var disabledUpstreams: Int
    public var activeClients: Int
    public var requestsLogged: Int
}

extension AppDatabase {
    public func status(now: Date = Date()) throws -> StoreStatus {
        try read { db in StoreLists.status(try db.table(StoreLists.statusQuery(.sqlite, now: now))) }
    }
}
