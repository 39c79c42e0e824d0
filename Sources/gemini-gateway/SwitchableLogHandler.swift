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

/// Standard error output at the level of `LogLevelSwitch`, read on every log call.
struct SwitchableLogHandler: LogHandler {
    private var base: StreamLogHandler

    init(label: String) {
        base = StreamLogHandler.standardError(label: label)
        base.logLevel = .trace
    }

    var logLevel: Logger.Level {
        get { LogLevelSwitch.level }
        // The level is the process's (SIGHUP); a logger cannot set its own.
        set {}
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        base.log(event: event)
    }
}
