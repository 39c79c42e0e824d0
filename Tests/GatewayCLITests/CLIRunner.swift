import Foundation

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

    /// A `gemini-gateway` process not yet started: in `directory`, with this environment (and no
    /// GEMINI_GATEWAY_DB from the caller's), stdout and stderr to pipes, no stdin.
    static func process(_ arguments: [String], in directory: String, environment: [String: String]) -> (Process, out: Pipe, err: Pipe) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "GEMINI_GATEWAY_DB")
        env.merge(environment) { $1 }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        return (process, out, err)
    }

    static func run(_ arguments: [String], in directory: String, environment: [String: String] = [:]) throws -> CLIResult {
        let (process, out, err) = Self.process(arguments, in: directory, environment: environment)
        try process.run()
        // Read both pipes to the end before waiting, so a large output cannot block the child.
        let group = DispatchGroup()
        nonisolated(unsafe) var stderrData = Data()
        group.enter()
        DispatchQueue.global().async {
            stderrData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return CLIResult(
            status: process.terminationStatus,
            stdout: String(decoding: stdoutData, as: UTF8.self),
            stderr: String(decoding: stderrData, as: UTF8.self)
        )
    }
}

/// A fresh working directory for one test, removed afterwards.
final class Workspace: Sendable {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "gateway-cli-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) -> String {
        write(name, Data(text.utf8))
    }

    @discardableResult
    func write(_ name: String, _ data: Data) -> String {
        let file = path + "/" + name
        try! data.write(to: URL(fileURLWithPath: file))
        return file
    }

    func run(_ arguments: String..., environment: [String: String] = [:]) throws -> CLIResult {
        try CLI.run(arguments, in: path, environment: environment)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
