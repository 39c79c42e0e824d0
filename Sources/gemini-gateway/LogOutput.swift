import Foundation
import GatewayStore
import Logging
import Synchronization

/// Standard error through a buffer: a log line is appended under a lock (no system call on the
/// request path), and a thread of its own writes what has gathered every
/// ``LogOutput/interval``. A line at `warning` or above is written at once, with everything
/// before it; so is a buffer over ``LogOutput/flushBytes``. What is buffered is written at exit
/// (`atexit`); a crash loses at most the last interval's lines (the request rows are in SQLite).
///
/// With swift-log's `StreamLogHandler` each line was a locked, flushed `fwrite` and a
/// `localtime()` (which looks at `/etc/localtime` on every call when `TZ` is unset): the
/// per-request line cost about 19% of the throughput at 64 connections (issue 21).
final class LogOutput: Sendable {
    static let standardError = LogOutput(descriptor: STDERR_FILENO)

    /// How long a line may wait in the buffer.
    static let interval: Duration = .milliseconds(100)
    /// A buffer this full is written by the thread that filled it.
    static let flushBytes = 64 << 10

    private let descriptor: Int32
    private let pending = Mutex<[UInt8]>([])
    /// Serialises the writes, so that lines keep their order across threads.
    private let writing = Mutex<Void>(())
    private let started = Atomic<Bool>(false)

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Appends a line (with its newline); writes it at once when `urgent`.
    func write(_ line: [UInt8], urgent: Bool) {
        startIfNeeded()
        let full = pending.withLock { pending in
            pending.append(contentsOf: line)
            return pending.count >= Self.flushBytes
        }
        if urgent || full { flush() }
    }

    /// Writes whatever is buffered.
    func flush() {
        writing.withLock { _ in
            // Taken under the write lock: a batch taken later is written later.
            let bytes = pending.withLock { pending -> [UInt8] in
                guard !pending.isEmpty else { return [] }
                var taken = [UInt8]()
                taken.reserveCapacity(pending.capacity)
                swap(&taken, &pending)
                return taken
            }
            guard !bytes.isEmpty else { return }
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let written = Foundation.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        return  // nowhere to write (a closed stderr): the lines are dropped
                    }
                    offset += written
                }
            }
        }
    }

    private func startIfNeeded() {
        guard !started.load(ordering: .relaxed),
              started.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        else { return }
        atexit { LogOutput.standardError.flush() }
        let thread = Thread { [self] in
            let pause = useconds_t(Self.interval.components.attoseconds / 1_000_000_000_000)
                + useconds_t(Self.interval.components.seconds * 1_000_000)
            while true {
                usleep(pause)
                flush()
            }
        }
        thread.name = "log-output"
        thread.start()
    }
}

/// Formats a log line as swift-log's `StreamLogHandler` does
/// (`2026-12-07T00:35:56+0000 info gemini-gateway: a=1 b=2 [GatewayServer] message`), into
/// bytes, with the timestamp made once a second instead of once a line.
enum LogLine {
    private static let cachedSecond = Mutex<(second: Int, text: [UInt8])>((-1, []))

    static func make(level: Logger.Level, label: String, metadata: Logger.Metadata, source: String, message: Logger.Message) -> [UInt8] {
        var line = [UInt8]()
        line.reserveCapacity(384)
        line.append(contentsOf: timestamp())
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: level.rawValue.utf8)
        if !label.isEmpty {
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: label.utf8)
        }
        line.append(UInt8(ascii: ":"))
        if !metadata.isEmpty {
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                line.append(UInt8(ascii: " "))
                line.append(contentsOf: key.utf8)
                line.append(UInt8(ascii: "="))
                switch value {
                case .string(let text): line.append(contentsOf: text.utf8)
                case .stringConvertible(let value): line.append(contentsOf: value.description.utf8)
                default: line.append(contentsOf: value.description.utf8)
                }
            }
        }
        line.append(contentsOf: " [".utf8)
        line.append(contentsOf: source.utf8)
        line.append(contentsOf: "] ".utf8)
        line.append(contentsOf: message.description.utf8)
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// The line of a finished request, at info: what `logger.info("request", metadata:)` of the
    /// server's logger would write (fields sorted by name, as ``make(level:label:metadata:source:message:)``
    /// sorts them), made straight from the row.
    @Sendable static func writeRequest(_ entry: RequestLogEntry) {
        guard LogLevelSwitch.level <= .info else { return }
        var line = [UInt8]()
        line.reserveCapacity(384)
        line.append(contentsOf: timestamp())
        line.append(contentsOf: " info gemini-gateway: attempts=".utf8)
        line.append(contentsOf: String(entry.attempts.count).utf8)
        line.append(contentsOf: " client=".utf8)
        line.append(contentsOf: (entry.clientName ?? "-").utf8)
        line.append(contentsOf: " endpoint=".utf8)
        line.append(contentsOf: entry.endpoint.utf8)
        line.append(contentsOf: " key=".utf8)
        line.append(contentsOf: (entry.keyFingerprint ?? "-").utf8)
        line.append(contentsOf: " latency_ms=".utf8)
        line.append(contentsOf: String(Int((entry.latencyMs ?? 0).rounded())).utf8)
        line.append(contentsOf: " model=".utf8)
        line.append(contentsOf: (entry.model ?? "-").utf8)
        line.append(contentsOf: " outcome=".utf8)
        line.append(contentsOf: entry.outcome.utf8)
        line.append(contentsOf: " request_id=".utf8)
        line.append(contentsOf: entry.requestId.utf8)
        line.append(contentsOf: " status=".utf8)
        line.append(contentsOf: String(entry.status).utf8)
        line.append(contentsOf: " upstream=".utf8)
        line.append(contentsOf: (entry.upstreamUrl ?? "-").utf8)
        line.append(contentsOf: " [GatewayServer] request\n".utf8)
        LogOutput.standardError.write(line, urgent: false)
    }

    /// The local time to the second, as `strftime("%Y-%m-%dT%H:%M:%S%z")`.
    static func timestamp() -> [UInt8] {
        var now = time(nil)
        let second = Int(now)
        if let text = cachedSecond.withLock({ $0.second == second ? $0.text : nil }) { return text }
        var local = tm()
        localtime_r(&now, &local)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &local)
        let text = buffer.prefix(count).map { UInt8(bitPattern: $0) }
        cachedSecond.withLock { $0 = (second, text) }
        return text
    }
}
