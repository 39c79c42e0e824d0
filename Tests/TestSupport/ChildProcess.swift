import Subprocess
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
#if canImport(System)
import System
#else
import SystemPackage
#endif

/// A child process for tests, on swift-subprocess: its `run` holds the child for as long as it
/// runs, in a task of its own, and this wrapper lets a test read what it wrote so far, signal it
/// and wait for its end, as a test that talks to a running `gemini-gateway serve` needs.
///
/// Not Foundation's `Process`: `Process.run()` of swift-corelibs-foundation in Swift 6.3.1
/// over-reads a `dirent` while it scans `/proc/self/fd` and crashes the test process now and then
/// when many descriptors are open (swift-corelibs-foundation#5472), which a suite full of sockets
/// always has. Subprocess spawns with `posix_spawn` and closes the other descriptors with a
/// `closefrom` file action (glibc 2.34 on), not by a scan, and learns of the child's end from a
/// pidfd, not by polling.
///
/// Standard input is `/dev/null`; standard output and error are collected as they come (as
/// Subprocess's one epoll thread sees them ready, so a chatty child never blocks on a full pipe).
/// The child sees exactly the environment given. No wait here holds a thread of the cooperative
/// pool: a wait is a continuation, resumed by new output, by the child's end or by its timeout.
/// A child still running when its `ChildProcess` goes away (a test that failed before it stopped
/// it) is killed and reaped.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private let shared: Shared
    private let running: Task<Void, Never>

    /// Starts `executable` (an absolute path) with `arguments` in `directory`, with exactly
    /// `environment` as its environment; returns once it runs, or throws if it could not start.
    public init(_ executable: String, _ arguments: [String], directory: String? = nil, environment: [String: String]) async throws {
        let configuration = Configuration(
            executable: .path(FilePath(executable)),
            arguments: Arguments(arguments),
            environment: .custom(Dictionary(uniqueKeysWithValues: environment.map { (Environment.Key(stringLiteral: $0.key), $0.value) })),
            workingDirectory: directory.map { FilePath($0) }
        )
        let shared = Shared()
        var running: Task<Void, Never>?
        pid = try await withCheckedThrowingContinuation { started in
            running = Task { await shared.run(configuration, started: started) }
        }
        self.shared = shared
        self.running = running!
    }

    /// What the child wrote so far.
    public var stdout: String { shared.text(.stdout) }
    public var stderr: String { shared.text(.stderr) }

    /// Sends `signal` to the child while it runs (nothing once it has ended).
    public func signal(_ signal: Int32) { shared.send(signal) }

    /// Whether the child still runs.
    public var isRunning: Bool { exitStatus == nil }

    /// The exit status (128 + the signal for a child killed by one) once the child has ended and
    /// its output is read; nil while it runs.
    public var exitStatus: Int32? { shared.state.withLock { $0.exit } }

    /// Waits up to `seconds` for the child to end (and its output to be read); its exit status, or
    /// nil if it still runs.
    public func waitForExit(timeout seconds: Double) async -> Int32? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1_000))
        while true {
            let (version, exit) = shared.state.withLock { ($0.version, $0.exit) }
            if let exit { return exit }
            if ContinuousClock.now >= deadline { return nil }
            await shared.change(after: version, until: deadline)
        }
    }

    /// Waits for the child to end, however long it takes; its exit status.
    public func waitForExit() async -> Int32 {
        await running.value
        return exitStatus ?? -1
    }

    public enum Stream: Sendable { case stdout, stderr }

    /// The first whole line of `stream` that `predicate` accepts, waiting up to `timeout` seconds
    /// for it to be written; nil if none came before the child ended or the time ran out.
    public func firstLine(of stream: Stream, timeout: Double, where predicate: (String) -> Bool) async -> String? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1_000))
        var checked = 0
        while true {
            let (version, ended, bytes) = shared.state.withLock { state in
                (state.version, state.exit != nil, Array(state.output[stream].dropFirst(checked)))
            }
            var start = 0
            while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: bytes[start..<newline], as: UTF8.self)
                if predicate(line) { return line }
                start = newline + 1
            }
            checked += start
            if ended {
                let last = String(decoding: bytes[start...], as: UTF8.self)
                return !last.isEmpty && predicate(last) ? last : nil
            }
            if ContinuousClock.now >= deadline { return nil }
            await shared.change(after: version, until: deadline)
        }
    }

    deinit {
        // A test that failed before it stopped its child: Subprocess kills it when its run is
        // cancelled, and reaps it.
        if isRunning { running.cancel() }
    }
}

/// What the task that runs the child shares with its `ChildProcess` and the tests' waits.
private final class Shared: Sendable {
    struct Output {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        subscript(stream: ChildProcess.Stream) -> [UInt8] { stream == .stdout ? stdout : stderr }
        mutating func append(_ bytes: UnsafeRawBufferPointer, to stream: ChildProcess.Stream) {
            switch stream {
            case .stdout: stdout.append(contentsOf: bytes)
            case .stderr: stderr.append(contentsOf: bytes)
            }
        }
    }

    struct Waiter {
        var continuation: CheckedContinuation<Void, Never>
        var timer: Task<Void, Never>?
    }

    struct State {
        var output = Output()
        var exit: Int32?
        /// The running child, to signal: set for as long as it has not ended.
        var execution: Execution<NoInput, SequenceOutput, SequenceOutput>?
        /// Counts every change of output or exit, so that a wait sees whether it missed one.
        var version: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
    }

    let state = Mutex(State())

    func text(_ stream: ChildProcess.Stream) -> String {
        state.withLock { String(decoding: $0.output[stream], as: UTF8.self) }
    }

    func send(_ signal: Int32) {
        // Under the lock: `run` closes the child's pidfd only after `execution` is cleared.
        state.withLock { state in _ = try? state.execution?.send(signal: Signal(rawValue: signal)) }
    }

    /// Runs the child to its end: resumes `started` with its pid once it runs (or with the error
    /// that kept it from starting), collects its output, and records its exit status.
    func run(_ configuration: Configuration, started: CheckedContinuation<pid_t, any Error>) async {
        var didStart = false
        let status: Int32
        do {
            let result = try await Subprocess.run(configuration, input: .none, output: .sequence, error: .sequence) { execution in
                state.withLock { $0.execution = execution }
                didStart = true
                started.resume(returning: execution.processIdentifier.value)
                async let stdout: Void = collect(execution.standardOutput, into: .stdout)
                async let stderr: Void = collect(execution.standardError, into: .stderr)
                _ = await (stdout, stderr)
                // Both pipes are closed: the child has ended or is ending (Subprocess also ends the
                // reads when it sees the child end while a grandchild keeps a pipe open). Signals
                // reach it until it has, without reaping it: `run` reaps it after this returns.
                let pid = execution.processIdentifier.value
                _ = try? await onOwnThread {
                    var info = siginfo_t()
                    while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
                }
                state.withLock { $0.execution = nil }
            }
            switch result.terminationStatus {
            case .exited(let code): status = code
            case .signaled(let signal): status = 128 + signal
            }
        } catch {
            state.withLock { $0.execution = nil }
            guard didStart else {
                started.resume(throwing: error)
                return
            }
            status = -1
        }
        changed { $0.exit = status }
    }

    private func collect(_ sequence: SubprocessOutputSequence, into stream: ChildProcess.Stream) async {
        do {
            for try await buffer in sequence {
                buffer.withUnsafeBytes { bytes in changed { $0.output.append(bytes, to: stream) } }
            }
        } catch {
            // The read failed or was cancelled (the run is being torn down): what came is kept.
        }
    }

    /// Applies `change` and wakes every wait.
    private func changed(_ change: (inout State) -> Void) {
        let waiters = state.withLock { state in
            change(&state)
            state.version &+= 1
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        for waiter in waiters {
            waiter.timer?.cancel()
            waiter.continuation.resume()
        }
    }

    /// Returns when the state has changed since `version`, or at `deadline`. The caller's
    /// cancellation does not cut it short: every wait here has a deadline of its own.
    func change(after version: UInt64, until deadline: ContinuousClock.Instant) async {
        await withCheckedContinuation { continuation in
            let id: UInt64? = state.withLock { state in
                guard state.version == version else { return nil }
                let id = state.nextWaiter
                state.nextWaiter += 1
                state.waiters[id] = Waiter(continuation: continuation)
                return id
            }
            guard let id else { return continuation.resume() }
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                self.wake(id)
            }
            let woken = state.withLock { state in
                guard state.waiters[id] != nil else { return true }
                state.waiters[id]?.timer = timer
                return false
            }
            if woken { timer.cancel() }
        }
    }

    private func wake(_ id: UInt64) {
        guard let waiter = state.withLock({ $0.waiters.removeValue(forKey: id) }) else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume()
    }
}
