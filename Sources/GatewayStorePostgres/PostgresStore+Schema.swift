import Foundation
import GatewayStore
import PostgresNIO

// MARK: - Migrations (migrations/postgres/*.sql, embedded at build time)

extension PostgresStore {
    /// The identifiers of the migrations embedded in this binary, in order.
    public static var migrationIdentifiers: [String] { embeddedMigrations.map(\.identifier) }

    /// Applies the migrations this database lacks, each in its own transaction, under an advisory
    /// lock: instances starting together migrate once, the others wait and find it done. A
    /// database migrated by a newer binary (an identifier this one does not know) is refused, as
    /// SQLite's store does.
    func migrate() async throws {
        try await transaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrateLock))", logger: self.logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    identifier text PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: self.logger)
            var applied = Set<String>()
            for try await identifier in try await connection.query("SELECT identifier FROM schema_migrations", logger: self.logger)
                .decode(String.self) {
                applied.insert(identifier)
            }
            let known = Set(Self.migrationIdentifiers)
            let unknown = applied.subtracting(known).sorted()
            if !unknown.isEmpty { throw StoreError.newerSchema(unknownMigrations: unknown) }
            for migration in embeddedMigrations where !applied.contains(migration.identifier) {
                // postgres-nio speaks only the extended protocol: one statement at a time.
                for statement in SQLScript.statements(in: migration.sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                }
                try await connection.query("INSERT INTO schema_migrations (identifier) VALUES (\(migration.identifier))", logger: self.logger)
                self.events.notice("applied PostgreSQL migration", metadata: ["migration": "\(migration.identifier)"])
            }
        }
    }
}

/// Splits a SQL script into its statements: at each `;` outside a string, a quoted identifier, a
/// comment and a dollar-quoted body. Statements that are only comments or space are dropped.
enum SQLScript {
    static func statements(in script: String) -> [String] {
        let text = Array(script.utf8)
        var statements: [String] = []
        var start = 0, index = 0
        var hasCode = false
        func emit(upTo end: Int) {
            if hasCode {
                let statement = String(decoding: text[start..<end], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if !statement.isEmpty { statements.append(statement) }
            }
            hasCode = false
        }
        while index < text.count {
            let byte = text[index]
            switch byte {
            case UInt8(ascii: "-") where index + 1 < text.count && text[index + 1] == UInt8(ascii: "-"):
                while index < text.count && text[index] != UInt8(ascii: "\n") { index += 1 }
                continue
            case UInt8(ascii: "/") where index + 1 < text.count && text[index + 1] == UInt8(ascii: "*"):
                index += 2
                while index + 1 < text.count && !(text[index] == UInt8(ascii: "*") && text[index + 1] == UInt8(ascii: "/")) { index += 1 }
                index += 2
                continue
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                hasCode = true
                index += 1
                // A doubled quote inside is an escaped one: the loop just goes on past it.
                while index < text.count && text[index] != byte { index += 1 }
            case UInt8(ascii: "$"):
                hasCode = true
                var end = index + 1
                while end < text.count, text[end] == UInt8(ascii: "_") || (text[end] >= 0x30 && text[end] <= 0x39 && end > index + 1)
                    || (text[end] | 0x20 >= UInt8(ascii: "a") && text[end] | 0x20 <= UInt8(ascii: "z")) { end += 1 }
                if end < text.count, text[end] == UInt8(ascii: "$") {
                    let tag = Array(text[index...end])
                    index = end + 1
                    while index + tag.count <= text.count && Array(text[index..<(index + tag.count)]) != tag { index += 1 }
                    index += tag.count
                    continue
                }
            case UInt8(ascii: ";"):
                emit(upTo: index)
                start = index + 1
            default:
                if byte > 0x20 { hasCode = true }
            }
            index += 1
        }
        emit(upTo: text.count)
        return statements
    }
}
