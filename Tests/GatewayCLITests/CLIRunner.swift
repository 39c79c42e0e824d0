import Foundation
import TestSupport
import Testing

/// Runs the built `gemini-gateway` binary as an operator's shell would.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var all: String { stdout + stderr }
}

enum CLI {
    /// The executable SwiftPM built next to the test bundle.
    static let executable: URL = {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent(".build/debug"),
        ]
        for directory in candidates {
            let url = directory.appendingPathComponent("gemini-gateway")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        fatalError("gemini-gateway binary not found next to the tests; run 'swift build' first")
    }()

    /// The environment a command runs with: this process's, without its GEMINI_GATEWAY_DB, plus `extra`.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "GEMINI_GATEWAY_DB")
        environment.merge(extra) { $1 }
        return environment
    }

    /// A started `gemini-gateway` process in `directory`.
    static func start(_ arguments: [String], in directory: String, environment: [String: String]) async throws -> ChildProcess {
        try await ChildProcess(executable.path, arguments, directory: directory, environment: Self.environment(environment))
    }

    /// Runs a command to its end and returns its status and output. The wait holds no thread:
    /// tests run in parallel, and the gateways and fakes of the other tests need the test
    /// process's few cooperative threads (two on a 2-core machine) to answer at all.
    static func run(_ arguments: [String], in directory: String, environment: [String: String] = [:]) async throws -> CLIResult {
        let child = try await start(arguments, in: directory, environment: environment)
        let status = await child.waitForExit()
        return CLIResult(status: status, stdout: child.stdout, stderr: child.stderr)
    }
}

/// A fresh working directory for one test, removed afterwards.
final class Workspace: Sendable {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "gateway-cli-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        write(name, Data(text.utf8))
    }

    @discardableResult
    func write(_ name: String, _ data: Data) -> String {
        let file = path + "/" + name
        try! data.write(to: URL(fileURLWithPath: file))
        return file
    }

    /// An empty database file, as `import` or `serve` would leave it before their first write:
    /// the other commands refuse a --db that does not exist, and migrate an empty file.
    @discardableResult
    func createDatabase(_ name: String = "gateway.db") -> String {
        let file = path + "/" + name
        #expect(FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]))
        return file
    }

    func run(_ arguments: String..., environment: [String: String] = [:]) async throws -> CLIResult {
        try await CLI.run(arguments, in: path, environment: environment)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
