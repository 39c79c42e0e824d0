import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process for tests, started with `posix_spawn` rather than Foundation's `Process`:
/// `Process.run()` of swift-corelibs-foundation in Swift 6.3.1 over-reads a `dirent` while it
/// scans `/proc/self/fd` and crashes the test process now and then when many descriptors are
/// open (swift-corelibs-foundation#5472), which a suite full of sockets always has.
///
/// Standard input is `/dev/null`; standard output and error are collected as they come (one
/// reading thread each, so a chatty child never blocks on a full pipe).
public final class ChildProcess: Sendable {
    public let pid: pid_t
    private static let spawning = NSLock()
    private let output = Mutex<(stdout: [UInt8], stderr: [UInt8], open: Int)>(([], [], 2))
    private let exit = Mutex<Int32?>(nil)

    /// Starts `executable` (an absolute path) with `arguments` in `directory`, with exactly
    /// `environment` as its environment.
    public init(_ executable: String, _ arguments: [String], directory: String? = nil, environment: [String: String]) throws {
        // Pipes are made close-on-exec and the child spawned under one lock, so that no other
        // child of this process inherits the write ends (its output would never end).
        Self.spawning.lock()
        defer { Self.spawning.unlock() }
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            throw ChildProcessError.spawn(errno: errno, executable: executable)
        }
        for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

        // The working directory: through env(1)'s -C, which every Debian has, so that the
        // parent never changes its own.
        var argv = [executable] + arguments
        var path = executable
        if let directory {
            argv = ["/usr/bin/env", "-C", directory, "--"] + argv
            path = "/usr/bin/env"
        }
        let cArguments = argv.map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in cArguments { free(pointer) }
            for pointer in cEnvironment { free(pointer) }
        }
        var child: pid_t = 0
        let result = posix_spawn(&child, path, &actions, nil, cArguments, cEnvironment)
        close(outPipe[1])
        close(errPipe[1])
        guard result == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw ChildProcessError.spawn(errno: result, executable: executable)
        }
        pid = child
        read(outPipe[0], into: \.stdout)
        read(errPipe[0], into: \.stderr)
    }

    private func read(_ fd: Int32, into field: any WritableKeyPath<(stdout: [UInt8], stderr: [UInt8], open: Int), [UInt8]> & Sendable) {
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                self.output.withLock { $0[keyPath: field].append(contentsOf: buffer[0..<count]) }
            }
            close(fd)
            self.output.withLock { $0.open -= 1 }
        }
    }

    /// What the child wrote so far.
    public var stdout: String { output.withLock { String(decoding: $0.stdout, as: UTF8.self) } }
    public var stderr: String { output.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    /// Sends `signal` to the child (nothing once it has been reaped).
    public func signal(_ signal: Int32) {
        guard exit.withLock({ $0 == nil }) else { return }
        kill(pid, signal)
    }

    /// Whether the child still runs (reaps it when it has ended).
    public var isRunning: Bool { reap(blocking: false) == nil }

    /// The exit status (128 + the signal for a child killed by one), or nil if it still runs.
    public var exitStatus: Int32? { reap(blocking: false) }

    /// Waits, blocking the thread, until the child exits and its output is read; its status.
    /// Not from async code: a blocked cooperative thread is one of the two (on 2 cores) that
    /// every test's servers need; use ``waitForExit(timeout:)`` there.
    @available(*, noasync, message: "blocks a cooperative thread; use waitForExit(timeout:)")
    @discardableResult
    public func waitUntilExit() -> Int32 {
        let status = reap(blocking: true) ?? -1
        while output.withLock({ $0.open > 0 }) { usleep(1_000) }
        return status
    }

    /// Waits up to `seconds` for the child to exit (and its output to be read); nil if it did not.
    public func waitForExit(timeout seconds: Double) async -> Int32? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let status = exitStatus {
                while output.withLock({ $0.open > 0 }), ContinuousClock.now < deadline + .seconds(5) {
                    try? await Task.sleep(for: .milliseconds(5))
                }
                return status
            }
            if Task.isCancelled { usleep(20_000) } else { try? await Task.sleep(for: .milliseconds(20)) }
        }
        return exitStatus
    }

    private func reap(blocking: Bool) -> Int32? {
        exit.withLock { exit in
            if let exit { return exit }
            var status: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, blocking ? 0 : WNOHANG) } while result < 0 && errno == EINTR
            guard result == pid else { return nil }
            let signal = status & 0x7f
            exit = signal == 0 ? (status >> 8) & 0xff : 128 + signal
            return exit
        }
    }

    deinit {
        // A test that forgot its child: do not leave it running or unreaped.
        if exit.withLock({ $0 == nil }) {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }
}

public enum ChildProcessError: Error, CustomStringConvertible {
    case spawn(errno: Int32, executable: String)

    public var description: String {
        switch self {
        case .spawn(let code, let executable): "cannot start \(executable): \(String(cString: strerror(code)))"
        }
    }
}
