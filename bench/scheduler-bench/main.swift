// The scheduler alone: how long a pick and a recorded outcome take with 10,000 keys and
// 10 upstreams. Run by bench/run.sh in release mode:
//
//     swift build -c release --product scheduler-bench
//     .build/release/scheduler-bench [iterations]
//
// Every operation is timed on its own (ContinuousClock, i.e. clock_gettime(CLOCK_MONOTONIC)); the
// clock's own cost is measured and printed so it can be subtracted by the reader. Each scenario
// prints one JSON line (for bench/report.py) after a human-readable one on stderr.

import Foundation
import GatewayCore
import Synchronization

let keyCount = 10_000
let upstreamCount = 10
let iterations = CommandLine.arguments.dropFirst().first.flatMap(Int.init)
    ?? ProcessInfo.processInfo.environment["SCHED_BENCH_N"].flatMap(Int.init)
    ?? 200_000
let model = "gemini-2.5-flash"

func makeKeys() -> [PoolKey] {
    (1...keyCount).map { id in
        PoolKey(
            id: Int64(id),
            secret: "AIzaBenchFakeKey" + String(format: "%023d", id),
            fingerprint: String(format: "%012x", id &* 2_654_435_761 & 0xffff_ffff_ffff),
            // Every 10 keys share a project label, as an operator with 1,000 projects would have.
            project: "project-\(id % 1_000)"
        )
    }
}

func makeUpstreams() -> [PoolUpstream] {
    (1...upstreamCount).map { PoolUpstream(id: Int64($0), baseURL: "http://127.0.0.1:\(9000 + $0)") }
}

struct Stats {
    var name: String
    var samples: [Int64]

    func percentile(_ p: Double) -> Int64 {
        let sorted = samples.sorted()
        let index = min(sorted.count - 1, max(0, Int((Double(sorted.count) * p).rounded(.up)) - 1))
        return sorted[index]
    }

    func report(clockOverhead: Int64) {
        let mean = Double(samples.reduce(0, +)) / Double(samples.count)
        let median = percentile(0.5), p99 = percentile(0.99), p999 = percentile(0.999)
        FileHandle.standardError.write(Data(
            (name.padding(toLength: 44, withPad: " ", startingAt: 0)
                + "median \(median) ns  p99 \(p99) ns  p99.9 \(p999) ns  mean \(Int(mean)) ns  (n=\(samples.count))\n").utf8))
        print(#"{"name":"\#(name)","n":\#(samples.count),"median_ns":\#(median),"p99_ns":\#(p99),"p999_ns":\#(p999),"mean_ns":\#(Int(mean)),"clock_overhead_ns":\#(clockOverhead)}"#)
    }
}

@inline(__always)
func nanoseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
}

/// Times `operation` `count` times, one sample each.
@inline(__always)
func measure(_ name: String, count: Int, _ operation: (Int) -> Void) -> Stats {
    var samples = [Int64]()
    samples.reserveCapacity(count)
    let clock = ContinuousClock()
    for i in 0..<count {
        let start = clock.now
        operation(i)
        samples.append(nanoseconds(clock.now - start))
    }
    return Stats(name: name, samples: samples)
}

let clockOverhead = measure("clock_only", count: 100_000) { _ in }.percentile(0.5)
FileHandle.standardError.write(Data("scheduler-bench: \(keyCount) keys, \(upstreamCount) upstreams, \(iterations) timed operations per scenario; clock overhead \(clockOverhead) ns (not subtracted)\n".utf8))

var sink = 0

// 1. Every key and upstream healthy: the common case. Each pick marks the key used, so it sinks
//    behind the others (O(log n)); the next pick takes the new root. `now` is read per pick as the
//    request path does (KeyPool.pick passes Date()).
do {
    var scheduler = Scheduler(keys: makeKeys(), upstreams: makeUpstreams())
    for _ in 0..<20_000 { if case .pair = scheduler.pick(model: model, now: Date()) { sink &+= 1 } }
    measure("pick_all_healthy", count: iterations) { _ in
        if case .pair(let key, _) = scheduler.pick(model: model, now: Date()) { sink &+= Int(key.id) }
    }.report(clockOverhead: clockOverhead)

    // Recording a success right after its pick (what every successful request does).
    var pairs: [PairID] = []
    pairs.reserveCapacity(iterations)
    for _ in 0..<iterations {
        if let pair = scheduler.pick(model: model, now: Date()).pairID { pairs.append(pair) }
    }
    measure("record_success", count: pairs.count) { i in
        sink &+= scheduler.record(.success, key: pairs[i].key, upstream: pairs[i].upstream, model: model, now: Date()).count
    }.report(clockOverhead: clockOverhead)

    // The same through a Mutex, as KeyPool holds the scheduler.
    let pool = Mutex(scheduler)
    measure("pick_all_healthy_via_mutex", count: iterations) { _ in
        let result = pool.withLock { $0.pick(model: model, now: Date(), tried: []) }
        if case .pair(let key, _) = result { sink &+= Int(key.id) }
    }.report(clockOverhead: clockOverhead)
}

// 2. A retry: one pair already tried for the request.
do {
    var scheduler = Scheduler(keys: makeKeys(), upstreams: makeUpstreams())
    let tried: Set<PairID> = [PairID(key: 1, upstream: 1)]
    measure("pick_retry_with_tried_set", count: iterations) { _ in
        if case .pair(let key, _) = scheduler.pick(model: model, now: Date(), tried: tried) { sink &+= Int(key.id) }
    }.report(clockOverhead: clockOverhead)
}

// 3. A busy day: 20% of the keys throttled for the model (per-minute quota, cooling for an hour)
//    and 2 upstreams cooling after failures.
do {
    var scheduler = Scheduler(keys: makeKeys(), upstreams: makeUpstreams())
    let now = Date()
    for id in stride(from: 1, through: keyCount, by: 5) {
        _ = scheduler.record(
            .throttled(Throttle(kind: .perMinute, retryDelay: 3_600, quotaID: nil)),
            key: Int64(id), upstream: 1, model: model, now: now)
    }
    for id in 1...2 {
        _ = scheduler.record(.upstreamFailure(reason: "CONNECTION_REFUSED"), key: 1, upstream: Int64(id), model: model, now: now)
    }
    for _ in 0..<20_000 { if case .pair = scheduler.pick(model: model, now: Date()) { sink &+= 1 } }
    measure("pick_20pct_keys_cooling", count: iterations) { _ in
        if case .pair(let key, _) = scheduler.pick(model: model, now: Date()) { sink &+= Int(key.id) }
    }.report(clockOverhead: clockOverhead)
}

// 4. Recording a throttle (429 per minute, with RetryInfo): the key sinks, a cooldown is merged.
do {
    var scheduler = Scheduler(keys: makeKeys(), upstreams: makeUpstreams())
    let throttle = Verdict.throttled(Throttle(kind: .perMinute, retryDelay: 30, quotaID: nil))
    measure("record_throttled", count: iterations) { i in
        let key = Int64(i % keyCount + 1)
        sink &+= scheduler.record(throttle, key: key, upstream: 1, model: model, now: Date()).count
    }.report(clockOverhead: clockOverhead)
}

// 5. The worst realistic shape: cooldowns loaded from the database for half the keys (they rank
//    as never throttled, so the pick has to skip them; the per-model view parks them).
do {
    let keys = makeKeys()
    let until = Date().addingTimeInterval(3_600)
    let cooldowns = keys.filter { $0.id % 2 == 0 }.map {
        KeyCooldown(keyID: $0.id, model: model, until: until, reason: "RATE_LIMIT_PER_MINUTE", quotaID: nil)
    }
    var scheduler = Scheduler(keys: keys, upstreams: makeUpstreams(), cooldowns: cooldowns)
    for _ in 0..<20_000 { if case .pair = scheduler.pick(model: model, now: Date()) { sink &+= 1 } }
    measure("pick_50pct_loaded_cooldowns", count: iterations) { _ in
        if case .pair(let key, _) = scheduler.pick(model: model, now: Date()) { sink &+= Int(key.id) }
    }.report(clockOverhead: clockOverhead)
}

// 6. A client's limits (issue 24): what ClientLimiter does per request, admit at its start and
//    finish at its end, for one of 1,000 clients with every limit set, each client's counters in
//    a class in a dictionary behind one Mutex (as in Sources/GatewayServer/ClientLimiter.swift).
//    Timed per 100 requests (the clock costs as much as one check), printed per request.
do {
    final class Entry {
        var limits: ClientLimits
        var counters = ClientUsageCounters()
        init(_ limits: ClientLimits) { self.limits = limits }
    }
    let limits = ClientLimits(
        rpm: 1_000_000, rpd: 100_000_000, tpm: Int.max, tpd: Int.max, dailyBudgetMicros: .max, monthlyBudgetMicros: .max,
        maxConcurrent: 1_000_000, models: ["gemini-2.5-flash*", "gemini-embedding-001"],
        expiresAt: Date().addingTimeInterval(86_400 * 365))
    var table: [Int64: Entry] = [:]
    for id in 1...1_000 { table[Int64(id)] = Entry(limits) }
    let clients = Mutex(table)
    let batch = 100
    let samples = measure("client_limit_admit_and_finish_x100", count: max(1, iterations / batch)) { i in
        for j in 0..<batch {
            let id = Int64((i &* batch &+ j) % 1_000 + 1)
            let now = Date().timeIntervalSince1970
            let refused = clients.withLock { clients -> Bool in
                guard let entry = clients[id] else { return false }
                return entry.counters.admit(entry.limits, model: model, now: now) != nil
            }
            if refused { sink &+= 1 }
            clients.withLock { $0[id]?.counters.finish(tokens: 23, costMicros: 33, now: now) }
        }
    }
    samples.report(clockOverhead: clockOverhead)
    let perRequest = Double(samples.percentile(0.5)) / Double(batch)
    FileHandle.standardError.write(Data("client limit check: \(String(format: "%.0f", perRequest)) ns per request (admit + finish, median of batches of \(batch))\n".utf8))
    print(#"{"name":"client_limit_per_request","median_ns":\#(Int(perRequest.rounded()))}"#)
}

if sink == 42 { FileHandle.standardError.write(Data("\n".utf8)) }
