import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport
@testable import gemini_gateway

/// The buffered log output of `serve`: logging never waits for standard error.
struct LogOutputTests {
    /// A standard error nobody reads (a stalled pipe) holds up only the writing thread: logging
    /// returns at once, urgent lines included, what does not fit is dropped and counted, and
    /// once the pipe drains every line kept is written, in order, with the count of the dropped.
    @Test func aStalledStandardErrorNeitherBlocksLoggingNorGrowsWithoutBound() async throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let (readEnd, writeEnd) = (ends[0], ends[1])
        defer {
            close(readEnd)
            close(writeEnd)
        }
        let output = LogOutput(descriptor: writeEnd)
        let lines = LogOutput.maximumPending / 100 * 2  // twice what it may hold, of 100 bytes each
        let finished = Atomic<Bool>(false)
        Thread {
            for index in 0..<lines {
                var line = Array(String(format: "%09d ", index).utf8)
                line += Array(repeating: UInt8(ascii: "x"), count: 89) + [UInt8(ascii: "\n")]
                output.write(line, urgent: index % 10_000 == 0)
            }
            finished.store(true, ordering: .releasing)
        }.start()
        // A logging call that waited for the pipe would never return: nobody reads it yet.
        try await waitUntil("every log call to return while nobody reads the pipe") { finished.load(ordering: .acquiring) }

        // Now read it: the writing thread goes on as the pipe drains. The reader looks for the
        // notice in what it has just read (megabytes in all: too much to search at every poll).
        let received = Mutex<[UInt8]>([])
        let noticed = Atomic<Bool>(false)
        let notice = Array("log lines dropped".utf8)
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = read(readEnd, &buffer, buffer.count)
                guard count > 0 else { return }
                let found = received.withLock { received in
                    let start = max(0, received.count - notice.count)
                    received += buffer[0..<count]
                    return received[start...].firstRange(of: notice) != nil
                }
                if found { noticed.store(true, ordering: .releasing) }
            }
        }
        reader.start()
        try await waitUntil("the count of the dropped lines") { noticed.load(ordering: .acquiring) }
        let text = received.withLock { String(decoding: $0, as: UTF8.self) }
        let kept = text.split(separator: "\n").filter { $0.hasSuffix("xxx") }
        let dropped = text.matches(of: /dropped=(\d+)/).compactMap { Int($0.output.1) }.reduce(0, +)
        #expect(kept.count + dropped == lines, "every line written or counted as dropped")
        // Held at most: the buffer, the batch being written when the pipe stalled, the pipe's own.
        #expect(kept.count * 100 <= LogOutput.maximumPending * 2 + (1 << 20), "no more held than the bound")
        #expect(dropped > 0)
        let numbers = kept.compactMap { Int($0.prefix(9)) }
        #expect(numbers == numbers.sorted(), "in order")
    }
}
