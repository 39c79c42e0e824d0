import Foundation
import GatewayCore
import GatewayStore
import PostgresNIO

// MARK: - The pool: loaded on start and on change, written behind, shared with the others

extension PostgresStore {
    /// `pool_version.v`: every operator change and every soft delete moves it.
    public func poolMarker() async throws -> String {
        let rows = try await rows("SELECT v FROM pool_version")
        return try rows.first.map { String(try $0["v"].decode(Int64.self)) } ?? "0"
    }

    public func loadPoolState(now: Date, changedSince previous: PoolLoad?) async throws -> PoolState {
        try await transaction { connection in
            // One snapshot of everything, as SQLite's read transaction gives.
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: self.logger)
            var invalidKeys: [String] = []
            var keys: [PoolKey] = []
            for try await row in try await connection.query("""
                SELECT id, secret, fingerprint, project, last_used_at, last_throttled_at, throttle_streak, free_tier
                FROM keys WHERE state = 'active' ORDER BY id
                """, logger: self.logger) {
                let (id, secret, fingerprint, project, used, throttled, streak, freeTier) = try row.decode(
                    (Int64, String, String, String?, Date?, Date?, Int, Bool).self)
                guard case .success = ListFile.validateKey(secret) else {
                    invalidKeys.append(fingerprint)
                    continue
                }
                keys.append(PoolKey(
                    id: id, secret: secret, fingerprint: fingerprint, project: project, lastUsedAt: used,
                    lastThrottledAt: throttled, throttleStreak: streak, freeTier: freeTier))
            }
            var invalidUpstreams: [Int64] = []
            var upstreams: [PoolUpstream] = []
            for try await row in try await connection.query("""
                SELECT id, base_url, cooldown_until, failure_streak, last_failure_at, last_used_at
                FROM upstreams WHERE state = 'active' ORDER BY id
                """, logger: self.logger) {
                let (id, url, cooldown, streak, failed, used) = try row.decode((Int64, String, Date?, Int, Date?, Date?).self)
                guard !url.unicodeScalars.contains(where: ListFile.isInvisible), case .success = ListFile.normalizeUpstreamURL(url) else {
                    invalidUpstreams.append(id)
                    continue
                }
                upstreams.append(PoolUpstream(
                    id: id, baseURL: url, cooldownUntil: cooldown, failureStreak: streak, lastFailureAt: failed, lastUsedAt: used))
            }
            var cooldowns: [KeyCooldown] = []
            for try await (id, model, until, reason, quota) in try await connection.query(
                "SELECT key_id, model, until, reason, quota_id FROM key_cooldowns WHERE until > \(now)", logger: self.logger
            ).decode((Int64, String, Date, String, String?).self) {
                cooldowns.append(KeyCooldown(keyID: id, model: model, until: until, reason: reason, quotaID: quota))
            }
            var projectCooldowns: [ProjectCooldown] = []
            for try await (project, model, until, reason, quota) in try await connection.query(
                "SELECT project, model, until, reason, quota_id FROM project_cooldowns WHERE until > \(now)", logger: self.logger
            ).decode((String, String, Date, String, String?).self) {
                projectCooldowns.append(ProjectCooldown(project: project, model: model, until: until, reason: reason, quotaID: quota))
            }
            var clients: [ClientRecord] = []
            for try await row in try await connection.query(
                "SELECT \(unescaped: Self.clientColumns) FROM clients WHERE revoked_at IS NULL ORDER BY id", logger: self.logger
            ) {
                clients.append(try Self.client(row))
            }
            var changed = Set<Int64>()
            if let previous, let version = Int64(previous.marker) {
                for try await id in try await connection.query("SELECT id FROM keys WHERE version > \(version)", logger: self.logger)
                    .decode(Int64.self) {
                    changed.insert(id)
                }
            }
            let prices = try await Self.prices(connection, logger: self.logger)
            return PoolState(
                keys: keys, upstreams: upstreams, cooldowns: cooldowns, projectCooldowns: projectCooldowns,
                clients: clients, keysChangedByOperator: changed, invalidKeys: invalidKeys,
                invalidUpstreams: invalidUpstreams, prices: prices)
        }
    }

    static let clientColumns = """
        id, name, token_hash, token_tail, created_at, revoked_at, rpm, rpd, tpm, tpd, daily_budget_micros,
        monthly_budget_micros, max_concurrent, models, expires_at, updated_at
        """

    static func client(_ row: PostgresRow) throws -> ClientRecord {
        let row = row.makeRandomAccess()
        var client = ClientRecord(
            id: try row["id"].decode(Int64.self), name: try row["name"].decode(String.self),
            tokenHash: try row["token_hash"].decode(String.self), tokenTail: try row["token_tail"].decode(String.self),
            createdAt: try row["created_at"].decode(Date.self), revokedAt: try row["revoked_at"].decode(Date?.self))
        client.rpm = try row["rpm"].decode(Int?.self)
        client.rpd = try row["rpd"].decode(Int?.self)
        client.tpm = try row["tpm"].decode(Int?.self)
        client.tpd = try row["tpd"].decode(Int?.self)
        client.dailyBudgetMicros = try row["daily_budget_micros"].decode(Int64?.self)
        client.monthlyBudgetMicros = try row["monthly_budget_micros"].decode(Int64?.self)
        client.maxConcurrent = try row["max_concurrent"].decode(Int?.self)
        client.models = try row["models"].decode(String?.self)
        client.expiresAt = try row["expires_at"].decode(Date?.self)
        client.updatedAt = try row["updated_at"].decode(Date?.self)
        return client
    }

    static func prices(_ connection: PostgresConnection, logger: Logger) async throws -> [ModelPrice] {
        var prices: [ModelPrice] = []
        for try await row in try await connection.query("SELECT * FROM prices ORDER BY model", logger: logger) {
            let row = row.makeRandomAccess()
            prices.append(ModelPrice(
                model: try row["model"].decode(String.self), input: try row["input"].decode(Int64.self),
                cachedInput: try row["cached_input"].decode(Int64.self), output: try row["output"].decode(Int64.self),
                thinking: try row["thinking"].decode(Int64.self),
                longContextThreshold: try row["long_context_threshold"].decode(Int?.self),
                inputLong: try row["input_long"].decode(Int64?.self), cachedInputLong: try row["cached_input_long"].decode(Int64?.self),
                outputLong: try row["output_long"].decode(Int64?.self), thinkingLong: try row["thinking_long"].decode(Int64?.self),
                audioInput: try row["audio_input"].decode(Int64?.self), source: try row["source"].decode(String?.self),
                takenOn: try row["taken_on"].decode(String?.self)))
        }
        return prices
    }

    /// Writes the pool's changes and last-use times in one transaction, as SQLite's store does,
    /// and publishes the shared ones (``StateChange/isShared``) to the other instances: a row of
    /// `pool_events` each, and one `NOTIFY`, delivered when (and only if) the transaction
    /// commits. A soft delete also moves `pool_version`, so that every reload sees the key gone.
    /// Rows are locked in one order (cooldowns, then keys and upstreams by id) so that two
    /// instances writing at once cannot deadlock.
    public func apply(_ changes: [StateChange], lastUsed: LastUsedBatch, now: Date) async throws {
        let origin = instanceID
        try await transaction { connection in
            var published = false
            for change in changes {
                try await self.write(change, origin: origin, now: now, connection)
                if change.isShared {
                    try await Self.publish(change, origin: origin, connection, logger: self.logger)
                    published = true
                }
            }
            try await self.writeLastUsed(lastUsed.keys, table: "keys", connection)
            try await self.writeLastUsed(lastUsed.upstreams, table: "upstreams", connection)
            if published {
                try await connection.query("SELECT pg_notify(\(Self.channel), \(String(origin)))", logger: self.logger)
            }
        }
    }

    /// `last_used_at` of each row (ids in order: two instances lock rows alike), never moved back.
    private func writeLastUsed(_ times: [Int64: Date], table: String, _ connection: PostgresConnection) async throws {
        guard !times.isEmpty else { return }
        let ids = times.keys.sorted()
        let dates = ids.map { times[$0]! }
        try await connection.query("""
            UPDATE \(unescaped: table) t SET last_used_at = GREATEST(t.last_used_at, u.at)
            FROM unnest(\(ids)::bigint[], \(dates)::timestamptz[]) AS u(id, at) WHERE t.id = u.id
            """, logger: logger)
    }

    private func write(_ change: StateChange, origin: Int32, now: Date, _ connection: PostgresConnection) async throws {
        switch change {
        case .keyCooldown(let c):
            try await connection.query("""
                INSERT INTO key_cooldowns (key_id, model, until, reason, quota_id, created_at)
                VALUES (\(c.keyID), \(c.model), \(c.until), \(c.reason), \(c.quotaID), \(now))
                ON CONFLICT (key_id, model) DO UPDATE SET until = GREATEST(key_cooldowns.until, EXCLUDED.until),
                    reason = EXCLUDED.reason, quota_id = EXCLUDED.quota_id, created_at = EXCLUDED.created_at
                """, logger: logger)
        case .projectCooldown(let c):
            try await connection.query("""
                INSERT INTO project_cooldowns (project, model, until, reason, quota_id, created_at)
                VALUES (\(c.project), \(c.model), \(c.until), \(c.reason), \(c.quotaID), \(now))
                ON CONFLICT (project, model) DO UPDATE SET until = GREATEST(project_cooldowns.until, EXCLUDED.until),
                    reason = EXCLUDED.reason, quota_id = EXCLUDED.quota_id, created_at = EXCLUDED.created_at
                """, logger: logger)
        case .keyCooldownLifted(let id, let model, let until):
            try await connection.query(
                "DELETE FROM key_cooldowns WHERE key_id = \(id) AND model = \(model) AND until <= \(until)", logger: logger)
        case .projectCooldownLifted(let project, let model, let until):
            try await connection.query(
                "DELETE FROM project_cooldowns WHERE project = \(project) AND model = \(model) AND until <= \(until)", logger: logger)
        case .keyThrottled(let id, let at, let streak):
            // The later throttle and the longer streak win: another instance may have written
            // its own a moment before.
            try await connection.query("""
                UPDATE keys SET last_throttled_at = GREATEST(last_throttled_at, \(at)), throttle_streak = GREATEST(throttle_streak, \(streak))
                WHERE id = \(id)
                """, logger: logger)
        case .keyRecovered(let id):
            try await connection.query("UPDATE keys SET throttle_streak = 0 WHERE id = \(id)", logger: logger)
        case .keyDeleted(let id, let reason, let at):
            try await connection.query("""
                WITH bumped AS (UPDATE pool_version SET v = v + 1 RETURNING v)
                UPDATE keys SET state = 'deleted', deleted_at = \(at), deleted_reason = \(reason), updated_at = \(at),
                    version = (SELECT v FROM bumped)
                WHERE id = \(id) AND state = 'active'
                """, logger: logger)
        case .upstreamFailed(let id, let until, let streak, let reason, let at):
            try await connection.query("""
                UPDATE upstreams SET cooldown_until = COALESCE(\(until), cooldown_until), failure_streak = \(streak),
                    last_failure_at = \(at), last_failure_reason = \(reason) WHERE id = \(id)
                """, logger: logger)
        case .upstreamRecovered(let id):
            try await connection.query("UPDATE upstreams SET cooldown_until = NULL, failure_streak = 0 WHERE id = \(id)", logger: logger)
        }
    }

    /// A row of `pool_events` for a shared change.
    private static func publish(_ change: StateChange, origin: Int32, _ connection: PostgresConnection, logger: Logger) async throws {
        var kind = "", keyID: Int64?, project: String?, model: String?, until: Date?, reason: String?, quota: String?
        var streak: Int?, throttledAt: Date?
        switch change {
        case .keyCooldown(let c):
            (kind, keyID, model, until, reason, quota) = ("key_cooldown", c.keyID, c.model, c.until, c.reason, c.quotaID)
        case .projectCooldown(let c):
            (kind, project, model, until, reason, quota) = ("project_cooldown", c.project, c.model, c.until, c.reason, c.quotaID)
        case .keyCooldownLifted(let id, let m, let u):
            (kind, keyID, model, until) = ("key_cooldown_lifted", id, m, u)
        case .projectCooldownLifted(let p, let m, let u):
            (kind, project, model, until) = ("project_cooldown_lifted", p, m, u)
        case .keyThrottled(let id, let at, let s):
            (kind, keyID, throttledAt, streak) = ("key_throttled", id, at, s)
        case .keyDeleted(let id, let r, let at):
            (kind, keyID, reason, until) = ("key_deleted", id, r, at)
        case .keyRecovered, .upstreamFailed, .upstreamRecovered:
            return
        }
        try await connection.query("""
            INSERT INTO pool_events (origin, kind, key_id, project, model, until, reason, quota_id, streak, throttled_at)
            VALUES (\(origin), \(kind), \(keyID), \(project), \(model), \(until), \(reason), \(quota), \(streak), \(throttledAt))
            """, logger: logger)
    }

    /// A `pool_events` row back as the change it records; nil for a kind this binary does not know.
    static func change(kind: String, keyID: Int64?, project: String?, model: String?, until: Date?, reason: String?,
                       quota: String?, streak: Int?, throttledAt: Date?) -> StateChange? {
        switch kind {
        case "key_cooldown":
            guard let keyID, let model, let until, let reason else { return nil }
            return .keyCooldown(KeyCooldown(keyID: keyID, model: model, until: until, reason: reason, quotaID: quota))
        case "project_cooldown":
            guard let project, let model, let until, let reason else { return nil }
            return .projectCooldown(ProjectCooldown(project: project, model: model, until: until, reason: reason, quotaID: quota))
        case "key_cooldown_lifted":
            guard let keyID, let model, let until else { return nil }
            return .keyCooldownLifted(keyID: keyID, model: model, until: until)
        case "project_cooldown_lifted":
            guard let project, let model, let until else { return nil }
            return .projectCooldownLifted(project: project, model: model, until: until)
        case "key_throttled":
            guard let keyID, let throttledAt, let streak else { return nil }
            return .keyThrottled(id: keyID, at: throttledAt, streak: streak)
        case "key_deleted":
            guard let keyID else { return nil }
            return .keyDeleted(id: keyID, reason: reason ?? "", at: until ?? Date())
        default:
            return nil
        }
    }
}

// MARK: - What the others record

extension PostgresStore: SharedChangeFeed {
    /// How far back each poll reads before the previous one: a transaction that took its event's
    /// time early and committed late (up to this long) is still seen. Events read before are
    /// skipped by their `seq`.
    static let lookBack: TimeInterval = 5

    public var sharedChanges: (any SharedChangeFeed)? { self }

    public func changesByOthers() async throws -> [StateChange] {
        await heartbeatIfDue()
        return try await readByOthers(\.poolEvents) { from in
            try await self.rows("""
                SELECT seq, at, kind, key_id, project, model, until, reason, quota_id, streak, throttled_at, clock_timestamp() AS now
                FROM pool_events WHERE at > \(from) AND origin <> \(self.instanceID) ORDER BY seq
                """)
        } event: { row in
            Self.change(
                kind: try row["kind"].decode(String.self), keyID: try row["key_id"].decode(Int64?.self),
                project: try row["project"].decode(String?.self), model: try row["model"].decode(String?.self),
                until: try row["until"].decode(Date?.self), reason: try row["reason"].decode(String?.self),
                quota: try row["quota_id"].decode(String?.self), streak: try row["streak"].decode(Int?.self),
                throttledAt: try row["throttled_at"].decode(Date?.self))
        }
    }

    public func publish(_ usage: [ClientUsageDelta]) async throws {
        let ordered = usage.sorted { ($0.clientID, $0.second) < ($1.clientID, $1.second) }
        let origin = instanceID
        try await transaction { connection in
            try await connection.query("""
                INSERT INTO client_usage_events (origin, client_id, second, requests, tokens, cost_micros)
                SELECT \(origin), * FROM unnest(\(ordered.map(\.clientID))::bigint[], \(ordered.map(\.second))::bigint[],
                    \(ordered.map(\.requests))::int[], \(ordered.map(\.tokens))::bigint[], \(ordered.map(\.costMicros))::bigint[])
                """, logger: self.logger)
            try await connection.query("SELECT pg_notify(\(Self.channel), \(String(origin)))", logger: self.logger)
        }
    }

    public func clientUsageByOthers() async throws -> [ClientUsageDelta] {
        try await readByOthers(\.usageEvents) { from in
            try await self.rows("""
                SELECT seq, at, client_id, second, requests, tokens, cost_micros, clock_timestamp() AS now
                FROM client_usage_events WHERE at > \(from) AND origin <> \(self.instanceID) ORDER BY seq
                """)
        } event: { row in
            ClientUsageDelta(
                clientID: try row["client_id"].decode(Int64.self), second: try row["second"].decode(Int64.self),
                requests: try row["requests"].decode(Int.self), tokens: try row["tokens"].decode(Int.self),
                costMicros: try row["cost_micros"].decode(Int64.self))
        }
    }

    /// The events of other instances in one table not read before: the rows since the previous
    /// read (the first read starts from now) less ``lookBack``, each seq taken once. `query`
    /// gets the time to read from and returns rows with `seq`, `at` and the database's `now`.
    private func readByOthers<Event: Sendable>(
        _ cursor: WritableKeyPath<State, EventCursor>,
        query: (Date) async throws -> [PostgresRandomAccessRow],
        event: (PostgresRandomAccessRow) throws -> Event?
    ) async throws -> [Event] {
        guard let since = state.withLock({ $0[keyPath: cursor].readAt }) else {
            let now = try await rows("SELECT clock_timestamp() AS now").first?["now"].decode(Date.self) ?? Date()
            state.withLock { $0[keyPath: cursor].readAt = now }
            return []
        }
        var fresh: [(seq: Int64, at: Date, event: Event?)] = []
        var readAt: Date?
        for row in try await query(since.addingTimeInterval(-Self.lookBack)) {
            readAt = try row["now"].decode(Date.self)
            fresh.append((try row["seq"].decode(Int64.self), try row["at"].decode(Date.self), try event(row)))
        }
        if readAt == nil {
            readAt = try await rows("SELECT clock_timestamp() AS now").first?["now"].decode(Date.self)
        }
        return state.withLock { state in
            var new: [Event] = []
            for item in fresh where state[keyPath: cursor].seen.updateValue(item.at, forKey: item.seq) == nil {
                if let event = item.event { new.append(event) }
            }
            if let readAt { state[keyPath: cursor].readAt = readAt }
            let horizon = (state[keyPath: cursor].readAt ?? Date()).addingTimeInterval(-2 * Self.lookBack)
            if state[keyPath: cursor].seen.count > 1_000 {
                state[keyPath: cursor].seen = state[keyPath: cursor].seen.filter { $0.value > horizon }
            }
            return new
        }
    }

    public func waitForChanges(timeout: Duration) async -> Bool {
        await doorbell.wait(timeout: timeout)
    }

    /// Listens for `NOTIFY gateway_pool` on a connection of its own and rings the doorbell at
    /// each, until cancelled; reconnects after a failure (PostgreSQL restarting), ringing once
    /// when it is back, since notifications sent meanwhile are lost (the poll reads the events).
    public func listen() async {
        var delay: Duration = .milliseconds(100)
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        delay = .milliseconds(100)
                        self.doorbell.ring()
                        for try await _ in notifications { self.doorbell.ring() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                events.debug("listening for pool changes failed; will retry", metadata: ["error": "\(Self.describe(error))"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }
}
