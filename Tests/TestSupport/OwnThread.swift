import Foundation

/// Runs CPU-bound `work` on a thread of its own and returns what it returns.
///
/// Swift Testing runs every test on the cooperative pool, which has as many threads as the machine
/// has cores: two in CI. A test that computes for seconds on it (thousands of property-test rounds,
/// a parse of 100,000 lines in a debug build) holds one of them; two such tests hold the whole pool,
/// and the tests that wait for a timer, a service or a reply, which need a turn on the pool to see
/// it, wait behind them for as long as those take on a loaded machine (minutes, measured beside
/// `stress-ng --cpu 2`). On a thread of its own the work shares the cores with every other thread
/// through the kernel, fairly, and the pool stays free for the waiting tests.
///
/// `#expect` belongs in the test's task: check what `work` returns, after it returns.
public func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}
