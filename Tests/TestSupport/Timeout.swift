// Deadlines for tests: a test that hangs fails with a message instead of stalling the suite.

/// Runs `operation`, failing with `TimedOut` if it takes longer than `seconds`.
public func withTimeout<T: Sendable>(_ seconds: Double = 120, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimedOut(seconds: seconds)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public let seconds: Double
    public init(seconds: Double) { self.seconds = seconds }
    public var description: String { "timed out after \(seconds) s" }
}
