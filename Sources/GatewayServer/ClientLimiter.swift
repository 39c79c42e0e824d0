import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import NIOHTTP1
import Synchronization

// MARK: - Limits per client, on the request path

/// What the request path asks of the clients' limits: judge a request before a pair is picked,
/// and charge it when it ends. The seam where the counters live: in memory in this process
/// (``ClientLimiter``); a later store shared by several gateways (PostgreSQL) implements the same.
/// Class-bound: each request's recorder holds the store until the request ends, and a class
/// existential is copied with a retain (an unbounded one cost ~4.6k instructions a request).
public protocol ClientLimitStore: AnyObject, Sendable {
    /// Admits a request of client `id` for `model` at `now` (seconds since 1970) and counts it,
    /// or says which of the client's limits refuses it.
    func admit(client id: Int64, model: String?, now: Double) -> ClientUsageCounters.Refusal?
    /// An admitted request of client `id` ended, having used `tokens` and cost `costMicros`.
    func finish(client id: Int64, tokens: Int, costMicros: Int64, now: Double)
    /// The clients and their limits changed (the CLI): counters of clients that stay are kept.
    func replace(_ clients: [ClientRecord])
    /// Client `id`'s limits (for the message of a refusal).
    func limits(client id: Int64) -> ClientLimits?
}

/// The counters in memory, one ``ClientUsageCounters`` per client under one lock (held for well
/// under a microsecond a request: `bench/limit-bench`). Every client from `clients add` is
/// counted, limited or not, so that a limit set while serving applies to what was used already.
/// Written behind through the request log (every request's row); rebuilt from it at start
/// (``rebuild(from:now:)``), so a restart forgets nothing but the rows not yet written.
public final class ClientLimiter: ClientLimitStore {
    /// A class: its counters change in place under the lock, never copied.
    private final class Client {
        var limits: ClientLimits
        var counters: ClientUsageCounters

        init(limits: ClientLimits, counters: ClientUsageCounters = ClientUsageCounters()) {
            self.limits = limits
            self.counters = counters
        }
    }

    private let clients = Mutex<[Int64: Client]>([:])

    public init() {}

    public func admit(client id: Int64, model: String?, now: Double) -> ClientUsageCounters.Refusal? {
        clients.withLock { clients in
            guard let client = clients[id] else { return nil }
            return client.counters.admit(client.limits, model: model, now: now)
        }
    }

    public func finish(client id: Int64, tokens: Int, costMicros: Int64, now: Double) {
        clients.withLock { clients in
            clients[id]?.counters.finish(tokens: tokens, costMicros: costMicros, now: now)
        }
    }

    public func replace(_ records: [ClientRecord]) {
        clients.withLock { clients in
            var next: [Int64: Client] = [:]
            for record in records where record.revokedAt == nil {
                guard let id = record.id else { continue }
                next[id] = Client(limits: record.limits, counters: clients[id]?.counters ?? ClientUsageCounters())
            }
            clients = next
        }
    }

    /// Sets the counters from the request log: the last minute's rows one by one, then the day's
    /// and month's totals (what ``AppDatabase/clientUsage(now:)`` read).
    public func rebuild(from usage: (usage: [Int64: ClientUsage], lastMinute: [RecentClientRequest]), now: Date) {
        clients.withLock { clients in
            for client in clients.values { client.counters = ClientUsageCounters() }
            for recent in usage.lastMinute {
                clients[recent.clientId]?.counters.charge(
                    requests: 1, tokens: recent.tokens, costMicros: 0, now: recent.startedAt.timeIntervalSince1970)
            }
            for (id, u) in usage.usage {
                clients[id]?.counters.restore(
                    dayRequests: u.dayRequests, dayTokens: u.dayTokens, dayCostMicros: u.dayCostMicros,
                    monthCostMicros: u.monthCostMicros, now: now.timeIntervalSince1970)
            }
        }
    }

    /// The counters of client `id` (tests).
    public func counters(client id: Int64) -> ClientUsageCounters? {
        clients.withLock { $0[id]?.counters }
    }

    public func limits(client id: Int64) -> ClientLimits? {
        clients.withLock { $0[id]?.limits }
    }
}

/// The price table in memory, replaced when the CLI imports prices.
public final class Prices: Sendable {
    private let table = Mutex(PriceTable())

    public init() {}

    public func replace(_ prices: [ModelPrice]) {
        let next = PriceTable(prices)
        table.withLock { $0 = next }
    }

    /// What a request for `model` that used `usage` cost (``PriceTable/cost(model:usage:freeTier:)``).
    public func cost(model: String?, usage: UsageMetadata, freeTier: Bool) -> RequestCost {
        table.withLock { $0.cost(model: model, usage: usage, freeTier: freeTier) }
    }
}

// MARK: - The answer to a refused request

extension GeminiErrorResponse {
    /// The gateway's answer when client `name`'s own `refusal` stops a request for `model`.
    static func clientLimit(_ refusal: ClientUsageCounters.Refusal, client name: String, model: String?, limits: ClientLimits?) -> GeminiErrorResponse {
        var headers: HTTPHeaders = [:]
        if let seconds = refusal.retryAfter { headers.add(name: "Retry-After", value: String(seconds)) }
        let retry = refusal.retryAfter.map { " Retry in \($0)s." } ?? ""
        switch refusal.limit {
        case .expires:
            return GeminiErrorResponse(
                .unauthorized, "UNAUTHENTICATED",
                "The gateway token of client '\(name)' has expired; ask the gateway's operator for a new one.")
        case .models:
            let allowed = limits?.models?.joined(separator: ", ") ?? ""
            return GeminiErrorResponse(
                .forbidden, "PERMISSION_DENIED",
                "Client '\(name)' may not use model \(model ?? "-") (allowed: \(allowed)).")
        case .maxConcurrent:
            return GeminiErrorResponse(
                .tooManyRequests, "RESOURCE_EXHAUSTED",
                "Client '\(name)' has reached its limit of \(limits?.maxConcurrent ?? 0) concurrent requests (max-concurrent).\(retry)",
                headers: headers)
        default:
            let value: String = switch refusal.limit {
            case .rpm: String(limits?.rpm ?? 0)
            case .rpd: String(limits?.rpd ?? 0)
            case .tpm: String(limits?.tpm ?? 0)
            case .tpd: String(limits?.tpd ?? 0)
            case .dailyBudget: "$" + Micros.dollars(limits?.dailyBudgetMicros ?? 0)
            case .monthlyBudget: "$" + Micros.dollars(limits?.monthlyBudgetMicros ?? 0)
            default: ""
            }
            return GeminiErrorResponse(
                .tooManyRequests, "RESOURCE_EXHAUSTED",
                "Client '\(name)' has reached its limit of \(value) \(refusal.limit.phrase) (\(refusal.limit.rawValue)) at the gateway.\(retry)",
                headers: headers)
        }
    }
}
