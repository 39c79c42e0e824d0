import Foundation
import GatewayCore
import GatewayStore
import PostgresNIO

// MARK: - What a serving instance reads at start and for its pages

extension PostgresStore: ServingStore {
    public func importShippedPricesIfEmpty(now: Date) async throws -> Int {
        guard case .success(let prices) = PriceFile.parse(AppDatabase.shippedPriceFile) else { return 0 }
        return try await transaction { connection in
            // Instances starting together: one imports, the others find the table full.
            try await connection.query("LOCK TABLE prices IN SHARE ROW EXCLUSIVE MODE", logger: self.logger)
            guard try await Self.count(connection.query("SELECT COUNT(*) FROM prices", logger: self.logger)) == 0 else { return 0 }
            try await Self.importPrices(prices, now: now, connection, logger: self.logger)
            return prices.count
        }
    }

    static func importPrices(_ prices: [ModelPrice], now: Date, _ connection: PostgresConnection, logger: Logger) async throws {
        for p in prices {
            try await connection.query("""
                INSERT INTO prices (model, input, cached_input, output, thinking, long_context_threshold, input_long,
                                    cached_input_long, output_long, thinking_long, audio_input, source, taken_on, updated_at)
                VALUES (\(p.model), \(p.input), \(p.cachedInput), \(p.output), \(p.thinking), \(p.longContextThreshold),
                        \(p.inputLong), \(p.cachedInputLong), \(p.outputLong), \(p.thinkingLong), \(p.audioInput), \(p.source),
                        \(p.takenOn), \(now))
                ON CONFLICT (model) DO UPDATE SET
                    input = EXCLUDED.input, cached_input = EXCLUDED.cached_input, output = EXCLUDED.output,
                    thinking = EXCLUDED.thinking, long_context_threshold = EXCLUDED.long_context_threshold,
                    input_long = EXCLUDED.input_long, cached_input_long = EXCLUDED.cached_input_long,
                    output_long = EXCLUDED.output_long, thinking_long = EXCLUDED.thinking_long,
                    audio_input = EXCLUDED.audio_input, source = EXCLUDED.source, taken_on = EXCLUDED.taken_on,
                    updated_at = EXCLUDED.updated_at
                """, logger: logger)
        }
    }

    /// As SQLite's store: today's and this month's use from the daily totals (every instance's),
    /// the last minute from the raw rows.
    public func clientUsage(now: Date) async throws -> (usage: [Int64: ClientUsage], lastMinute: [RecentClientRequest]) {
        let second = Int64(now.timeIntervalSince1970.rounded(.down))
        let (year, month, day) = UTCCalendar.civil(second.floorDiv(86_400))
        let today = String(format: "%04d-%02d-%02d", Int(year), Int(month), Int(day))
        let monthStart = String(format: "%04d-%02d-01", Int(year), Int(month))
        var usage: [Int64: ClientUsage] = [:]
        for row in try await rows("""
            SELECT c.id,
                   COALESCE(SUM(CASE WHEN d.day = \(today)::date THEN d.requests - d.client_limited END), 0)::bigint AS day_requests,
                   COALESCE(SUM(CASE WHEN d.day = \(today)::date THEN d.prompt_tokens + d.candidates_tokens + d.thoughts_tokens END), 0)::bigint AS day_tokens,
                   COALESCE(SUM(CASE WHEN d.day = \(today)::date THEN d.cost_micros END), 0)::bigint AS day_cost,
                   COALESCE(SUM(d.cost_micros), 0)::bigint AS month_cost
            FROM clients c
            JOIN daily_usage d ON d.client = c.name AND d.day >= \(monthStart)::date AND d.day <= \(today)::date
            WHERE c.revoked_at IS NULL
            GROUP BY c.id
            """) {
            var u = ClientUsage()
            u.dayRequests = try row["day_requests"].decode(Int.self)
            u.dayTokens = try row["day_tokens"].decode(Int.self)
            u.dayCostMicros = try row["day_cost"].decode(Int64.self)
            u.monthCostMicros = try row["month_cost"].decode(Int64.self)
            usage[try row["id"].decode(Int64.self)] = u
        }
        var lastMinute: [RecentClientRequest] = []
        for row in try await rows("""
            SELECT client_id, started_at, prompt_tokens + candidates_tokens + thoughts_tokens AS tokens
            FROM requests
            WHERE started_at > \(now.addingTimeInterval(-60)) AND client_id IS NOT NULL AND outcome <> 'client_limit'
            ORDER BY started_at
            """) {
            let recent = RecentClientRequest(
                clientId: try row["client_id"].decode(Int64.self), startedAt: try row["started_at"].decode(Date.self),
                tokens: try row["tokens"].decode(Int.self))
            lastMinute.append(recent)
            usage[recent.clientId, default: ClientUsage()].minuteRequests += 1
            usage[recent.clientId, default: ClientUsage()].minuteTokens += recent.tokens
        }
        return (usage, lastMinute)
    }
}
