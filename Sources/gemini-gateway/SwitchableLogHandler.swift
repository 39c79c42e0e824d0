import Logging
import Synchronization

/// The process-wide log level of `serve`, which SIGHUP can change while serving.
enum LogLevelSwitch {
    private static let current = Atomic<UInt8>(index(of: .info))
    /// Read on every log call (the request path's too): `allCases` would make an array each time.
    private static let levels = Logger.Level.allCases

    static var level: Logger.Level {
        get { levels[Int(current.load(ordering: .relaxed))] }
        set { current.store(index(of: newValue), ordering: .relaxed) }
    }

    private static func index(of level: Logger.Level) -> UInt8 {
        UInt8(levels.firstIndex(of: level) ?? 2)
    }
}

/// Standard error output at the level of `LogLevelSwitch`, read on every log call, in
/// swift-log's `StreamLogHandler` format, through the buffered ``LogOutput``.
struct SwitchableLogHandler: LogHandler {
    private let label: String
    var metadata: Logger.Metadata = [:]

    init(label: String) {
        self.label = label
    }

    var logLevel: Logger.Level {
        get { LogLevelSwitch.level }
        // The level is the process's (SIGHUP); a logger cannot set its own.
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let explicit = event.metadata, !explicit.isEmpty {
            if merged.isEmpty {
                merged = explicit
            } else {
                merged.merge(explicit) { _, explicit in explicit }
            }
        }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        let line = LogLine.make(level: event.level, label: label, metadata: merged, source: event.source, message: event.message)
        LogOutput.standardError.write(line, urgent: event.level >= .warning)
    }
}
