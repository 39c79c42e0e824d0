import Foundation
import GatewayCore
import GatewayStore
import PostgresNIO

// MARK: - The operator's changes: each moves `pool_version` and rings every instance

extension PostgresStore: AdminStore {
    /// Moves `pool_version` (the marker every instance polls) and returns the new value, which
    /// the changed rows carry in their `version`; the `NOTIFY` goes out at commit.
    static func bump(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        var version: Int64 = 0
        for try await v in try await connection.query("UPDATE pool_version SET v = v + 1 RETURNING v", logger: logger).decode(Int64.self) {
            version = v
        }
        try await connection.query("SELECT pg_notify(\(channel), 'operator')", logger: logger)
        return version
    }

    public func importLists(
        keys: ListFile.Parsed<ListFile.KeyEntry>?, upstreams: ListFile.Parsed<ListFile.UpstreamEntry>?, now: Date
    ) async throws -> (keys: KeyImportSummary?, upstreams: UpstreamImportSummary?) {
        try await transaction { connection in
            let version = try await Self.bump(connection, logger: self.logger)
            var keySummary: KeyImportSummary?
            if let keys {
                var summary = KeyImportSummary(duplicatesInFile: keys.duplicatesInFile, invalid: keys.rejected)
                for entry in keys.entries {
                    // Two imports at once (instances re-reading their files on SIGHUP): the
                    // second finds the key there, not a failed unique constraint.
                    var inserted = false
                    for try await _ in try await connection.query("""
                        INSERT INTO keys (secret, fingerprint, tail, project, state, created_at, updated_at, version)
                        VALUES (\(entry.secret), \(Secret.fingerprint(entry.secret)), \(Secret.tail(entry.secret)), \(entry.project),
                                'active', \(now), \(now), \(version))
                        ON CONFLICT DO NOTHING RETURNING id
                        """, logger: self.logger) { inserted = true }
                    if inserted {
                        summary.added += 1
                        continue
                    }
                    for try await (id, state, project, fingerprint) in try await connection.query(
                        "SELECT id, state, project, fingerprint FROM keys WHERE secret = \(entry.secret)", logger: self.logger
                    ).decode((Int64, String, String?, String).self) {
                        if state == KeyRecord.State.deleted.rawValue {
                            summary.softDeleted.append(fingerprint)
                            continue
                        }
                        summary.alreadyPresent += 1
                        if let label = entry.project, label != project {
                            try await connection.query(
                                "UPDATE keys SET project = \(label), updated_at = \(now), version = \(version) WHERE id = \(id)",
                                logger: self.logger)
                            summary.labelsUpdated += 1
                        }
                    }
                }
                keySummary = summary
            }
            var upstreamSummary: UpstreamImportSummary?
            if let upstreams {
                upstreamSummary = try await Self.importUpstreams(upstreams, version: version, now: now, connection, logger: self.logger)
            }
            return (keySummary, upstreamSummary)
        }
    }

    static func importUpstreams(
        _ parsed: ListFile.Parsed<ListFile.UpstreamEntry>, version: Int64, now: Date, _ connection: PostgresConnection, logger: Logger
    ) async throws -> UpstreamImportSummary {
        var summary = UpstreamImportSummary(duplicatesInFile: parsed.duplicatesInFile, invalid: parsed.rejected)
        for entry in parsed.entries {
            var inserted = false
            for try await _ in try await connection.query("""
                INSERT INTO upstreams (base_url, state, created_at, updated_at, version)
                VALUES (\(entry.baseURL), 'active', \(now), \(now), \(version))
                ON CONFLICT (base_url) DO NOTHING RETURNING id
                """, logger: logger) { inserted = true }
            if inserted {
                summary.added += 1
                continue
            }
            for try await state in try await connection.query(
                "SELECT state FROM upstreams WHERE base_url = \(entry.baseURL)", logger: logger
            ).decode(String.self) {
                if state == UpstreamRecord.State.disabled.rawValue { summary.disabled.append(entry.baseURL) } else { summary.alreadyPresent += 1 }
            }
        }
        return summary
    }

    public func setKeyState(_ selector: String, to state: KeyRecord.State, reason: String?, now: Date) async throws -> KeyRecord {
        try await transaction { connection in
            let key = try await self.resolveKey(selector, connection)
            let version = try await Self.bump(connection, logger: self.logger)
            let id = key.id ?? 0
            switch state {
            case .active:
                try await connection.query("""
                    UPDATE keys SET state = 'active', disabled_at = NULL, deleted_at = NULL, deleted_reason = NULL,
                        throttle_streak = 0, updated_at = \(now), version = \(version) WHERE id = \(id)
                    """, logger: self.logger)
                try await connection.query("DELETE FROM key_cooldowns WHERE key_id = \(id)", logger: self.logger)
            case .disabled:
                try await connection.query(
                    "UPDATE keys SET state = 'disabled', disabled_at = \(now), updated_at = \(now), version = \(version) WHERE id = \(id)",
                    logger: self.logger)
            case .deleted:
                try await connection.query("""
                    UPDATE keys SET state = 'deleted', deleted_at = \(now), deleted_reason = \(reason ?? "deleted by operator"),
                        updated_at = \(now), version = \(version) WHERE id = \(id)
                    """, logger: self.logger)
            }
            return try await self.resolveKey(String(id), connection)
        }
    }

    /// One key by id, fingerprint (or a unique prefix of at least 4 hex digits), tail or whole
    /// secret, as SQLite's store finds it; unknown or ambiguous is an error that says so.
    func resolveKey(_ selector: String, _ connection: PostgresConnection) async throws -> KeyRecord {
        let trimmed = selector.hasPrefix("…") ? String(selector.dropFirst()) : selector
        let id = Int64(trimmed) ?? -1
        let prefix = trimmed.count >= 4 && trimmed.allSatisfy(\.isHexDigit) ? trimmed.lowercased() : nil
        let tail = trimmed.count == 4 ? trimmed : nil
        var matches: [KeyRecord] = []
        for try await row in try await connection.query("""
            SELECT id, secret, fingerprint, tail, project, state, disabled_at, deleted_at, deleted_reason, last_used_at,
                   last_throttled_at, throttle_streak, created_at, updated_at, free_tier,
                   CASE WHEN id = \(id) OR secret = \(trimmed) THEN 0 WHEN starts_with(fingerprint, \(prefix ?? "\u{1}")) THEN 1 ELSE 2 END AS rank
            FROM keys
            WHERE id = \(id) OR secret = \(trimmed) OR starts_with(fingerprint, \(prefix ?? "\u{1}")) OR tail = \(tail ?? "\u{1}")
            ORDER BY rank, id LIMIT 10
            """, logger: logger) {
            let r = row.makeRandomAccess()
            let rank = try r["rank"].decode(Int.self)
            let key = KeyRecord(
                id: try r["id"].decode(Int64.self), secret: try r["secret"].decode(String.self),
                fingerprint: try r["fingerprint"].decode(String.self), tail: try r["tail"].decode(String.self),
                project: try r["project"].decode(String?.self),
                state: KeyRecord.State(rawValue: try r["state"].decode(String.self)) ?? .disabled,
                disabledAt: try r["disabled_at"].decode(Date?.self), deletedAt: try r["deleted_at"].decode(Date?.self),
                deletedReason: try r["deleted_reason"].decode(String?.self), lastUsedAt: try r["last_used_at"].decode(Date?.self),
                lastThrottledAt: try r["last_throttled_at"].decode(Date?.self), throttleStreak: try r["throttle_streak"].decode(Int.self),
                createdAt: try r["created_at"].decode(Date.self), updatedAt: try r["updated_at"].decode(Date.self),
                freeTier: try r["free_tier"].decode(Bool.self))
            if rank == 0 { return key }
            // Tails count only when no fingerprint matched, as in SQLite's store.
            if rank == 2, matches.contains(where: { $0.fingerprint.hasPrefix(prefix ?? "\u{1}") }) { continue }
            matches.append(key)
        }
        let shown = trimmed.count > 16 ? Secret.redacted(trimmed) : trimmed
        switch matches.count {
        case 1: return matches[0]
        case 0: throw StoreError.notFound("no key matches '\(shown)' (give an id, a fingerprint or the last 4 characters; see 'gemini-gateway keys list')")
        default:
            let names = matches.map { "\($0.fingerprint) (…\($0.tail))" }.joined(separator: ", ")
            throw StoreError.ambiguous("'\(shown)' matches several keys: \(names); give more of the fingerprint")
        }
    }

    public func addClient(name: String, limits: ClientLimits, now: Date) async throws -> (client: ClientRecord, token: String) {
        try await transaction { connection in try await self.addClient(name: name, limits: limits, now: now, connection) }
    }

    private func addClient(
        name: String, limits: ClientLimits, now: Date, _ connection: PostgresConnection
    ) async throws -> (client: ClientRecord, token: String) {
        let name = name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 100, name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f }) else {
            throw StoreError.invalid("a client name is 1 to 100 printable characters")
        }
        let token = Secret.newToken()
        var client = ClientRecord(
            id: nil, name: name, tokenHash: Secret.tokenHash(token), tokenTail: Secret.tail(token), createdAt: now, revokedAt: nil,
            limits: limits)
        let version = try await Self.bump(connection, logger: logger)
        for try await id in try await connection.query("""
            INSERT INTO clients (name, token_hash, token_tail, created_at, rpm, rpd, tpm, tpd, daily_budget_micros,
                monthly_budget_micros, max_concurrent, models, expires_at, updated_at, version)
            VALUES (\(client.name), \(client.tokenHash), \(client.tokenTail), \(now), \(client.rpm), \(client.rpd), \(client.tpm),
                \(client.tpd), \(client.dailyBudgetMicros), \(client.monthlyBudgetMicros), \(client.maxConcurrent), \(client.models),
                \(client.expiresAt), \(now), \(version))
            ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING
            RETURNING id
            """, logger: logger).decode(Int64.self) {
            client.id = id
        }
        guard client.id != nil else {
            throw StoreError.invalid("a client named '\(name)' exists already (revoke it first, or pick another name)")
        }
        return (client, token)
    }

    public func revokeClient(_ selector: String, now: Date) async throws -> ClientRecord {
        try await transaction { connection in
            let version = try await Self.bump(connection, logger: self.logger)
            for try await row in try await connection.query("""
                UPDATE clients SET revoked_at = \(now), version = \(version)
                WHERE id = (SELECT id FROM clients WHERE revoked_at IS NULL AND (id = \(Int64(selector) ?? -1) OR name = \(selector))
                            ORDER BY (id = \(Int64(selector) ?? -1)) DESC LIMIT 1)
                RETURNING \(unescaped: Self.clientColumns)
                """, logger: self.logger) {
                return try Self.client(row)
            }
            throw StoreError.notFound("no active client named '\(selector)' (see 'gemini-gateway clients list')")
        }
    }

    /// Under an advisory lock, so that instances starting together on an empty database make one
    /// upstream and one "default" client, and only one of them shows its token.
    public func bootstrap(defaultUpstream: String, token: Bool, now: Date) async throws -> Bootstrap {
        try await transaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.bootstrapLock))", logger: self.logger)
            var added = false
            if try await Self.count(connection.query("SELECT COUNT(*) FROM upstreams", logger: self.logger)) == 0 {
                let version = try await Self.bump(connection, logger: self.logger)
                _ = try await Self.importUpstreams(
                    ListFile.parseUpstreams(Data(defaultUpstream.utf8)), version: version, now: now, connection, logger: self.logger)
                added = true
            }
            guard token,
                  try await Self.count(connection.query("SELECT COUNT(*) FROM clients WHERE revoked_at IS NULL", logger: self.logger)) == 0
            else { return Bootstrap(addedUpstream: added, client: nil) }
            let client = try await self.addClient(name: "default", limits: ClientLimits(), now: now, connection)
            return Bootstrap(addedUpstream: added, client: (client.client, client.token))
        }
    }
}
