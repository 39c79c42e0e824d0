import Foundation
import Synchronization

/// Request ids that sort by time: 11 hex digits of milliseconds since 1970, 4 random hex digits
/// drawn once per process, and a 5-digit counter. Time-ordered ids keep the `request_id` index
/// of the log append-only (random ids would touch a random page of it on every insert); the
/// process prefix keeps two gateways on one database apart. Instances sharing a PostgreSQL store
/// use their registered instance id as the prefix (``use(instance:)``): unique among them, where
/// random prefixes could meet.
enum RequestID {
    private static let process = Atomic<UInt16>({
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }())

    /// Makes `instance` the prefix of the ids handed out from now on.
    static func use(instance: UInt16) {
        process.store(instance, ordering: .relaxed)
    }
    private static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        let milliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
        let sequence = counter.wrappingAdd(1, ordering: .relaxed).newValue & 0xF_FFFF
        return String(unsafeUninitializedCapacity: 20) { out in
            hex(milliseconds, width: 11, into: out, at: 0)
            hex(UInt64(process.load(ordering: .relaxed)), width: 4, into: out, at: 11)
            hex(sequence, width: 5, into: out, at: 15)
            return 20
        }
    }

    /// Writes the low `width` hex digits of `value` (lower case, zero-padded) at `offset`.
    private static func hex(_ value: UInt64, width: Int, into out: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        var rest = value
        for index in stride(from: offset + width - 1, through: offset, by: -1) {
            let digit = UInt8(truncatingIfNeeded: rest & 0xF)
            out[index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
            rest >>= 4
        }
    }
}
