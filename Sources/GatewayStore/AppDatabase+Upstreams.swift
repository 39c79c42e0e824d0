import Foundation
import GatewayCore
import GRDB

// MARK: - Upstreams as an operator sees them

/// One upstream in `upstreams list`.
public struct UpstreamListing: Codable, Sendable, Equatable {
    public var id: Int64
    public var baseUrl: String
    public var state: UpstreamRecord.State
    /// Set while the upstream cools down after failures.
    public var cooldownUntil: Date?
    public var failureStreak: Int
    public var lastFailureAt: Date?
    public var lastFailureReason: String?
    public var lastUsedAt: Date?
    public var requests: Int
    public var failedAttempts: Int
    /// The stored base URL is not one `upstreams add` accepts (edited by hand): the gateway does
    /// not use it.
    public var invalidURL: Bool
}

extension AppDatabase {
    public func listUpstreams(now: Date = Date()) throws -> [UpstreamListing] {
        try read { db in StoreLists.upstreams(try db.table(StoreQuery(.sqlite, sql: StoreLists.upstreamsSQL(.sqlite))), now: now) }
    }

    /// Adds one upstream (already there: counted as present, or as disabled).
    public func addUpstream(_ url: String, now: Date = Date()) throws -> UpstreamImportSummary {
        try importUpstreams(ListFile.oneUpstream(url), now: now)
    }

    /// Finds an upstream by id or base URL.
    static func resolveUpstream(_ selector: String, in db: Database) throws -> UpstreamRecord {
        if let id = Int64(selector), let upstream = try UpstreamRecord.fetchOne(db, key: id) { return upstream }
        let normalized = (try? ListFile.normalizeUpstreamURL(selector).get()) ?? selector
        if let upstream = try UpstreamRecord.filter(UpstreamRecord.Columns.baseUrl == normalized).fetchOne(db) {
            return upstream
        }
        throw StoreError.notFound("no upstream matches '\(selector)' (give an id or a base URL; see 'gemini-gateway upstreams list')")
    }

    /// Disables or restores an upstream. Restoring clears its cooldown and failure streak.
    @discardableResult
    public func setUpstreamState(_ selector: String, to state: UpstreamRecord.State, now: Date = Date()) throws -> UpstreamRecord {
        try write { db in
            var upstream = try Self.resolveUpstream(selector, in: db)
            upstream.state = state
            upstream.updatedAt = now
            if state == .active {
                upstream.cooldownUntil = nil
                upstream.failureStreak = 0
            }
            try upstream.update(db)
            return upstream
        }
    }
}
