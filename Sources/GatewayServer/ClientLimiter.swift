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
    /// What this instance's clients used since the last call, for the other instances sharing the
    /// store; empty unless the limiter was made for sharing.
    func takeUsageToShare() -> [ClientUsageDelta]
    /// Counts what the other instances' clients used.
    func absorb(_ usage: [ClientUsageDelta])
    /// Gives back use that could not be shared: the next ``takeUsageToShare()`` has it.
    func restoreUsageToShare(_ usage: [ClientUsageDelta])
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
    /// With a store several instances share: this instance's use not yet told to the others, by
    /// client and second (nil: one instance, nothing to tell; the request path then pays nothing).
    private let unshared: Unshared?

    private final class Unshared: Sendable {
        let table = Mutex<[UsageSlot: ClientUsageDelta]>([:])
    }

    private struct UsageSlot: Hashable {
        var client: Int64
        var second: Int64
    }

    /// `sharing`: the clients' limits count every instance's use (a PostgreSQL store); this one's
    /// is collected for ``takeUsageToShare()``.
    public init(sharing: Bool = false) {
        unshared = sharing ? Unshared() : nil
    }

    public func admit(client id: Int64, model: String?, now: Double) -> ClientUsageCounters.Refusal? {
        let (known, refusal) = clients.withLock { clients -> (Bool, ClientUsageCounters.Refusal?) in
            guard let client = clients[id] else { return (false, nil) }
            return (true, client.counters.admit(client.limits, model: model, now: now))
        }
        if let unshared, known, refusal == nil {
            share(unshared, client: id, now: now) { $0.requests += 1 }
        }
        return refusal
    }

    public func finish(client id: Int64, tokens: Int, costMicros: Int64, now: Double) {
        clients.withLock { clients in
            clients[id]?.counters.finish(tokens: tokens, costMicros: costMicros, now: now)
        }
        if let unshared, tokens != 0 || costMicros != 0 {
            share(unshared, client: id, now: now) {
                $0.tokens += tokens
                $0.costMicros += costMicros
            }
        }
    }

    private func share(_ unshared: Unshared, client id: Int64, now: Double, _ add: (inout ClientUsageDelta) -> Void) {
        let second = Int64(now.rounded(.down))
        unshared.table.withLock { table in
            add(&table[UsageSlot(client: id, second: second), default: ClientUsageDelta(clientID: id, second: second, requests: 0, tokens: 0, costMicros: 0)])
        }
    }

    public func takeUsageToShare() -> [ClientUsageDelta] {
        guard let unshared else { return [] }
        return unshared.table.withLock { table in
            defer { table = [:] }
            return Array(table.values)
        }
    }

    public func restoreUsageToShare(_ usage: [ClientUsageDelta]) {
        guard let unshared else { return }
        unshared.table.withLock { table in
            for delta in usage {
                let slot = UsageSlot(client: delta.clientID, second: delta.second)
                var merged = table[slot] ?? ClientUsageDelta(clientID: delta.clientID, second: delta.second, requests: 0, tokens: 0, costMicros: 0)
                merged.requests += delta.requests
                merged.tokens += delta.tokens
                merged.costMicros += delta.costMicros
                table[slot] = merged
            }
        }
    }

    public func absorb(_ usage: [ClientUsageDelta]) {
        guard !usage.isEmpty else { return }
        clients.withLock { clients in
            for delta in usage.sorted(by: { $0.second < $1.second }) {
                clients[delta.clientID]?.counters.charge(
                    requests: delta.requests, tokens: delta.tokens, costMicros: delta.costMicros, now: Double(delta.second))
            }
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
