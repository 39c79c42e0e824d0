#if canImport(Glibc)
import Glibc
#endif

// Waiting for a condition, never for a fixed time: the suite runs on busy 2-core machines where
// anything may take many times longer than it does alone.

/// How long a test waits for something that happens within milliseconds on an idle machine:
/// generous enough for a machine many times slower and busier.
public let patience: Double = 60

/// The longest pause between two polls: a condition that takes long is seen at most this late.
let slowestPoll: Duration = .milliseconds(200)

/// Polls `condition` until it holds; throws ``ConditionNotMet`` naming `what` when it has not
/// held within `timeout` seconds (checked once more at the deadline).
///
/// The first polls come `interval` apart, then ever more slowly, up to ``slowestPoll``: hundreds
/// of tests wait at once on a machine of two cores, and a poll every few milliseconds from each of
/// them is work the machine does instead of the work they are waiting for.
public func waitUntil(
    _ what: @autoclosure () -> String,
    timeout: Double = patience,
    every interval: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1_000))
    var pause = interval
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: pause)
        pause = min(pause * 2, max(interval, slowestPoll))
    }
    if try await condition() { return }
    throw ConditionNotMet(what: what(), seconds: timeout)
}

/// Polls `value` until it is not nil and returns it; throws ``ConditionNotMet`` naming `what`.
public func waitFor<T>(
    _ what: @autoclosure () -> String,
    timeout: Double = patience,
    every interval: Duration = .milliseconds(10),
    _ value: () async throws -> T?
) async throws -> T {
    var found: T?
    try await waitUntil(what(), timeout: timeout, every: interval) {
        found = try await value()
        return found != nil
    }
    return found!
}

/// ``waitUntil(_:timeout:every:_:)`` for code on a thread of its own (a raw-socket exchange in
/// ``withRawConnection(port:_:)``): blocks that thread, so never call it from async code.
@available(*, noasync, message: "blocks the thread: use waitUntil")
public func waitUntilBlocking(
    _ what: @autoclosure () -> String,
    timeout: Double = patience,
    _ condition: () throws -> Bool
) throws {
    let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1_000))
    while ContinuousClock.now < deadline {
        if try condition() { return }
        usleep(20_000)
    }
    if try condition() { return }
    throw ConditionNotMet(what: what(), seconds: timeout)
}

/// A condition a test waited for that did not come.
public struct ConditionNotMet: Error, CustomStringConvertible {
    public let what: String
    public let seconds: Double
    public var description: String { "waited \(seconds) s for \(what), in vain" }
}
