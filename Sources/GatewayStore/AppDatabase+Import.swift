import Foundation
import GatewayCore
import GRDB

// MARK: - Importing the old proxy's key and upstream files

/// What a key import did.
public struct KeyImportSummary: Codable, Sendable, Equatable {
    /// Keys that were not in the database before.
    public var added = 0
    /// Keys already present (active or disabled); nothing changed for them but a new label.
    public var alreadyPresent = 0
    /// Keys already present whose project label the file changed.
    public var labelsUpdated = 0
    /// Lines that repeated a key earlier in the same file.
    public var duplicatesInFile = 0
    /// Keys present but soft-deleted earlier: left deleted (fingerprints, to restore by hand).
    public var softDeleted: [String] = []
    /// Lines that were rejected, with why.
    public var invalid: [ListFile.Rejected] = []

    public init(duplicatesInFile: Int = 0, invalid: [ListFile.Rejected] = []) {
        self.duplicatesInFile = duplicatesInFile
        self.invalid = invalid
    }
}

/// What an upstream import did.
public struct UpstreamImportSummary: Codable, Sendable, Equatable {
    public var added = 0
    public var alreadyPresent = 0
    public var duplicatesInFile = 0
    /// Upstreams present but disabled: left disabled.
    public var disabled: [String] = []
    public var invalid: [ListFile.Rejected] = []

    public init(duplicatesInFile: Int = 0, invalid: [ListFile.Rejected] = []) {
        self.duplicatesInFile = duplicatesInFile
        self.invalid = invalid
    }
}

extension AppDatabase {
    /// Imports keys and upstreams together in ONE transaction: either everything is added or,
    /// on any error, nothing is.
    public func importLists(
        keys: ListFile.Parsed<ListFile.KeyEntry>?,
        upstreams: ListFile.Parsed<ListFile.UpstreamEntry>?,
        now: Date = Date()
    ) throws -> (keys: KeyImportSummary?, upstreams: UpstreamImportSummary?) {
        try write { db in
            (try keys.map { try Self.importKeys($0, now: now, in: db) },
             try upstreams.map { try Self.importUpstreams($0, now: now, in: db) })
        }
    }

    /// Adds the keys that are new, in one transaction. Idempotent: a second import adds nothing.
    /// A key soft-deleted earlier is never resurrected; it is listed in the summary instead.
    public func importKeys(_ parsed: ListFile.Parsed<ListFile.KeyEntry>, now: Date = Date()) throws -> KeyImportSummary {
        try write { db in try Self.importKeys(parsed, now: now, in: db) }
    }

    /// Adds the upstreams that are new, in one transaction. Idempotent.
    public func importUpstreams(_ parsed: ListFile.Parsed<ListFile.UpstreamEntry>, now: Date = Date()) throws -> UpstreamImportSummary {
        try write { db in try Self.importUpstreams(parsed, now: now, in: db) }
    }

    static func importKeys(_ parsed: ListFile.Parsed<ListFile.KeyEntry>, now: Date, in db: Database) throws -> KeyImportSummary {
        var summary = KeyImportSummary(duplicatesInFile: parsed.duplicatesInFile, invalid: parsed.rejected)
        var existing: [String: (id: Int64, state: String, project: String?, fingerprint: String)] = [:]
        let rows = try Row.fetchCursor(db, sql: "SELECT id, secret, state, project, fingerprint FROM keys")
        while let row = try rows.next() {
            existing[row["secret"]] = (row["id"], row["state"], row["project"], row["fingerprint"])
        }
        let insert = try db.cachedStatement(sql: """
            INSERT INTO keys (secret, fingerprint, tail, project, state, created_at, updated_at)
            VALUES (?, ?, ?, ?, 'active', ?, ?)
            """)
        let relabel = try db.cachedStatement(sql: "UPDATE keys SET project = ?, updated_at = ? WHERE id = ?")
        for entry in parsed.entries {
            if let present = existing[entry.secret] {
                if present.state == KeyRecord.State.deleted.rawValue {
                    summary.softDeleted.append(present.fingerprint)
                    continue
                }
                summary.alreadyPresent += 1
                if let project = entry.project, project != present.project {
                    try relabel.execute(arguments: [project, now, present.id])
                    summary.labelsUpdated += 1
                }
                continue
            }
            try insert.execute(arguments: [
                entry.secret, Secret.fingerprint(entry.secret), Secret.tail(entry.secret),
                entry.project, now, now,
            ])
            summary.added += 1
        }
        return summary
    }

    static func importUpstreams(_ parsed: ListFile.Parsed<ListFile.UpstreamEntry>, now: Date, in db: Database) throws -> UpstreamImportSummary {
        var summary = UpstreamImportSummary(duplicatesInFile: parsed.duplicatesInFile, invalid: parsed.rejected)
        for entry in parsed.entries {
            if let present = try UpstreamRecord.filter(UpstreamRecord.Columns.baseUrl == entry.baseURL).fetchOne(db) {
                if present.state == .disabled {
                    summary.disabled.append(present.baseUrl)
                } else {
                    summary.alreadyPresent += 1
                }
                continue
            }
            var record = UpstreamRecord(
                id: nil, baseUrl: entry.baseURL, state: .active, cooldownUntil: nil, failureStreak: 0,
                lastFailureAt: nil, lastFailureReason: nil, lastUsedAt: nil, createdAt: now, updatedAt: now
            )
            try record.insert(db)
            summary.added += 1
        }
        return summary
    }
}
