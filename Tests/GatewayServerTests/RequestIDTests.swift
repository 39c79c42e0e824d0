import Foundation
@testable import GatewayServer
import Testing

/// The ids of request rows (and of the `x-gateway-request-id` header): 20 lower-case hex digits,
/// milliseconds since 1970, then a per-process part, then a counter, so that they sort by time.
struct RequestIDTests {
    @Test func idsAreTimeOrderedHexOfOneProcess() throws {
        let before = UInt64(Date().timeIntervalSince1970 * 1000)
        let ids = (0..<1_000).map { _ in RequestID.next() }
        let after = UInt64(Date().timeIntervalSince1970 * 1000)
        for id in ids {
            #expect(id.utf8.count == 20)
            #expect(id.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }, "\(id)")
            let milliseconds = try #require(UInt64(id.prefix(11), radix: 16))
            #expect((before...after).contains(milliseconds))
        }
        #expect(Set(ids.map { $0.dropFirst(11).prefix(4) }).count == 1)
        let counters = try ids.map { try #require(UInt64($0.suffix(5), radix: 16)) }
        // Each id takes the next count (other tests running beside this one take some too).
        for (previous, next) in zip(counters, counters.dropFirst()) {
            #expect((1..<100_000).contains((next &- previous) & 0xF_FFFF))
        }
        #expect(ids == ids.sorted() || counters.contains(0), "ids sort by time unless the counter wrapped")
    }
}
