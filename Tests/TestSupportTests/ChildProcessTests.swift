import Foundation
import Glibc
import Testing
import TestSupport

/// What the CLI, SDK and TLS tests rely on from ``ChildProcess``.
@Suite struct ChildProcessTests {
    @Test func seesExactlyItsEnvironmentInItsDirectory() async throws {
        let directory = NSTemporaryDirectory() + "child-process-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let env = try await ChildProcess("/usr/bin/env", [], directory: directory, environment: ["ONLY": "this one"])
        #expect(await env.waitForExit(timeout: patience) == 0)
        #expect(env.stdout == "ONLY=this one\n")
        let pwd = try await ChildProcess("/bin/sh", ["-c", "pwd -P"], directory: directory, environment: [:])
        #expect(await pwd.waitForExit(timeout: patience) == 0)
        #expect(pwd.stdout == URL(fileURLWithPath: directory).resolvingSymlinksInPath().path + "\n")
    }

    /// Megabytes on both streams, far past what a pipe holds: the child is never stuck on a write.
    @Test func aChattyChildNeverBlocks() async throws {
        let script = "head -c 4000000 /dev/zero | tr '\\0' o; head -c 3000000 /dev/zero | tr '\\0' e >&2; echo done >&2"
        let child = try await ChildProcess("/bin/sh", ["-c", script], environment: ["PATH": "/usr/bin:/bin"])
        #expect(await child.waitForExit(timeout: patience) == 0)
        #expect(child.stdout.utf8.count == 4_000_000)
        #expect(child.stderr.utf8.count == 3_000_005)
        #expect(child.stderr.hasSuffix("edone\n"))
    }

    /// Lines are seen as they come, signals reach the child while it runs, and its status says
    /// how it ended. (perl: its `sleep` is cut short by a signal, and it starts no grandchild.)
    @Test func signalsWhileItRunsAndReadsLinesAsTheyCome() async throws {
        let script = #"$| = 1; $SIG{HUP} = sub { print "hangup\n" }; $SIG{TERM} = sub { print STDERR "bye\n"; exit 7 }; print "ready\n"; sleep while 1;"#
        let child = try await ChildProcess("/usr/bin/perl", ["-e", script], environment: [:])
        #expect(await child.firstLine(of: .stdout, timeout: patience) { $0 == "ready" } != nil)
        #expect(child.isRunning)
        #expect(await child.waitForExit(timeout: 0.05) == nil)
        child.signal(SIGHUP)
        #expect(await child.firstLine(of: .stdout, timeout: patience) { $0 == "hangup" } != nil)
        child.signal(SIGTERM)
        #expect(await child.waitForExit(timeout: patience) == 7)
        #expect(child.exitStatus == 7 && !child.isRunning)
        #expect(child.stderr == "bye\n")
        #expect(await child.firstLine(of: .stdout, timeout: patience) { $0 == "never" } == nil, "an ended child's lines are all there are")
        child.signal(SIGKILL) // a no-op once it has ended

        let killed = try await ChildProcess("/bin/sleep", ["600"], environment: [:])
        killed.signal(SIGKILL)
        #expect(await killed.waitForExit(timeout: patience) == 128 + SIGKILL)
    }

    /// A test that fails before it stops its child leaves no process behind.
    @Test func aForgottenChildIsKilledAndReaped() async throws {
        var child: ChildProcess? = try await ChildProcess("/bin/sleep", ["600"], environment: [:])
        let pid = try #require(child?.pid)
        #expect(kill(pid, 0) == 0)
        child = nil
        try await waitUntil("the forgotten child gone, reaped") { kill(pid, 0) != 0 && errno == ESRCH }
    }

    @Test func aMissingExecutableThrows() async throws {
        await #expect(throws: (any Error).self) {
            _ = try await ChildProcess("/nonexistent/gemini-gateway", [], environment: [:])
        }
    }
}
