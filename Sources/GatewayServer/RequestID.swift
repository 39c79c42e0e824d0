import Foundation
import Synchronization

/// Request ids that sort by time: 11 hex digits of milliseconds since 1970, 4 random hex digits
/// drawn once per process, and a 5-digit counter. Time-ordered ids keep the `request_id` index
/// of the log append-only (random ids would touch a random page of it on every insert); the
/// process prefix keeps two gateways on one database apart.
enum RequestID {
    private static let process: String = {
        var generator = SystemRandomNumberGenerator()
        return hex(UInt64(generator.next() as UInt16), width: 4)
    }()
    private static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        let milliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        let sequence = counter.wrappingAdd(1, ordering: .relaxed).newValue & 0xF_FFFF
        return hex(milliseconds, width: 11) + process + hex(sequence, width: 5)
    }

    private static func hex(_ value: UInt64, width: Int) -> String {
        let digits = String(value, radix: 16)
        return digits.count >= width ? String(digits.suffix(width)) : String(repeating: "0", count: width - digits.count) + digits
    }
}
