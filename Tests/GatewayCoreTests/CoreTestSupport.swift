import Foundation
@testable import GatewayCore

// MARK: - Dates

/// Parses an ISO 8601 instant such as `2025-03-09T08:00:00Z`; traps on a typo (a test bug).
func utc(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    guard let date = formatter.date(from: text) else { fatalError("bad test date \(text)") }
    return date
}

/// A fixed instant tests start from.
let baseDate = Date(timeIntervalSince1970: 1_750_000_000)

// MARK: - Pools

func poolKeys(_ count: Int, project: (Int) -> String? = { _ in nil }) -> [PoolKey] {
    (1...max(count, 1)).prefix(count).map {
        PoolKey(id: Int64($0), secret: "AIza-secret-\($0)", fingerprint: "fp\($0)", project: project($0))
    }
}

func poolUpstreams(_ count: Int) -> [PoolUpstream] {
    (1...max(count, 1)).prefix(count).map {
        PoolUpstream(id: Int64($0), baseURL: "https://relay\($0).example")
    }
}

extension PickResult {
    var keyID: Int64? { pairID?.key }
    var upstreamID: Int64? { pairID?.upstream }
}

// MARK: - Random

/// A small deterministic generator so randomized tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
