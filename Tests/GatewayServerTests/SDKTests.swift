import FakeGemini
import Foundation
import GatewayCore
import GRDB
import Synchronization
import TestSupport
import Testing

/// Issue 3, scenario 12: the official SDKs (google-genai and openai for Python) pointed at the
/// gateway, in front of the fake upstream. `Tests/sdk/sdk_check.py` makes the calls and checks
/// what the SDKs return; this test checks what reached the fake and what the gateway logged.
///
/// Needs the venv that `scripts/test` builds from `Tests/sdk/requirements.txt`; it exports
/// `GATEWAY_SDK_PYTHON` (that venv's python). Without the variable the test is skipped.
@Suite struct SDKTests {
    static let python = ProcessInfo.processInfo.environment["GATEWAY_SDK_PYTHON"]

    /// The repository root, from this file's path (Tests/GatewayServerTests/SDKTests.swift).
    static func repositoryRoot(_ filePath: String = #filePath) -> URL {
        URL(fileURLWithPath: filePath)
            .deletingLastPathComponent()  // GatewayServerTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
    }

    /// One SDK call as the fake should receive it and the gateway should log it, in the order
    /// sdk_check.py makes them.
    struct Call {
        var check: String
        var method: String
        var path: String
        var query: String = ""
        var endpoint: String
        var apiVersion: String
        var model: String?
        var openAI = false
        var stream = false
        /// The request row's total_tokens (from the answer's usage), nil when the call has none.
        var totalTokens: Int?
    }

    /// `genai` is the API version google-genai calls by default (sdk_check.py prints it); one
    /// generate_content call asks for v1beta explicitly, and the OpenAI endpoint is under v1beta.
    static func expectedCalls(_ s: FakeGemini.Settings, genai v: String) -> [Call] {
        let model = "gemini-2.5-flash"
        let embedding = "gemini-embedding-001"
        let generateTotal = s.promptTokenCount + s.candidatesTokenCount + s.thoughtsTokenCount
        let streamTotal = s.promptTokenCount + s.candidatesTokenCount * s.streamEventCount + s.thoughtsTokenCount
        let openAITotal = s.promptTokenCount + s.candidatesTokenCount
        return [
            Call(check: "genai generate_content", method: "POST", path: "/\(v)/models/\(model):generateContent",
                 endpoint: "generateContent", apiVersion: v, model: model, totalTokens: generateTotal),
            Call(check: "genai generate_content v1beta", method: "POST", path: "/v1beta/models/\(model):generateContent",
                 endpoint: "generateContent", apiVersion: "v1beta", model: model, totalTokens: generateTotal),
            Call(check: "genai generate_content_stream", method: "POST", path: "/\(v)/models/\(model):streamGenerateContent",
                 query: "alt=sse", endpoint: "streamGenerateContent", apiVersion: v, model: model, stream: true,
                 totalTokens: streamTotal),
            Call(check: "genai count_tokens", method: "POST", path: "/\(v)/models/\(model):countTokens",
                 endpoint: "countTokens", apiVersion: v, model: model),
            // google-genai sends embed_content to the Gemini API as batchEmbedContents.
            Call(check: "genai embed_content", method: "POST", path: "/\(v)/models/\(embedding):batchEmbedContents",
                 endpoint: "batchEmbedContents", apiVersion: v, model: embedding),
            Call(check: "genai models.list", method: "GET", path: "/\(v)/models", endpoint: "models.list", apiVersion: v),
            Call(check: "genai models.get", method: "GET", path: "/\(v)/models/\(model)", endpoint: "models.get",
                 apiVersion: v, model: model),
            Call(check: "openai chat.completions.create", method: "POST", path: "/v1beta/openai/chat/completions",
                 endpoint: "openai.chat.completions", apiVersion: "v1beta", model: model, openAI: true, totalTokens: openAITotal),
            Call(check: "openai chat.completions.create stream", method: "POST", path: "/v1beta/openai/chat/completions",
                 endpoint: "openai.chat.completions", apiVersion: "v1beta", model: model, openAI: true, stream: true,
                 totalTokens: openAITotal),
            Call(check: "openai embeddings.create", method: "POST", path: "/v1beta/openai/embeddings",
                 endpoint: "openai.embeddings", apiVersion: "v1beta", model: embedding, openAI: true),
        ]
    }

    @Test(.enabled(if: SDKTests.python != nil, "set by scripts/test"))
    func officialSDKsWorkThroughTheGateway() async throws {
        let python = try #require(Self.python)
        let root = Self.repositoryRoot()
        let script = root.appendingPathComponent("Tests/sdk/sdk_check.py").path
        let poolKey = testKey("a")
        let settings = FakeGemini.Settings()

        try await withGateway(keys: [poolKey], settings: settings, timeout: 150) { gateway, fakes in
            // 1. The SDKs, in a child process.
            let result = try await runProcess(
                python, [script],
                environment: Self.childEnvironment(gateway: gateway, settings: settings),
                directory: root.path,
                timeout: 120
            )
            let transcript = result.transcript
            Attachment.record(transcript, named: "sdk_check.txt")
            #expect(!result.timedOut, "sdk_check.py did not finish in 120 s:\n\(transcript)")
            #expect(result.exitCode == 0, "sdk_check.py exited \(result.exitCode):\n\(transcript)")
            guard result.exitCode == 0 else { return }
            let versionLine = "sdk_check: genai api version "
            let genaiVersion = try #require(
                result.stdout.split(separator: "\n").first { $0.hasPrefix(versionLine) }?.dropFirst(versionLine.count),
                "no '\(versionLine)' line:\n\(transcript)"
            )
            let calls = Self.expectedCalls(settings, genai: String(genaiVersion))
            for call in calls {
                #expect(result.stdout.contains("ok   \(call.check):"), "no passing '\(call.check)' check:\n\(transcript)")
            }

            // 2. The fake: every call arrived once, in order, with the pool key and never the token.
            let received = fakes[0].received()
            #expect(received.count == calls.count, "the fake received \(received.map { "\($0.method) \($0.path)" })")
            for (call, request) in zip(calls, received) {
                let what = "\(call.check) (\(request.method) \(request.path)?\(request.query))"
                #expect(request.method == call.method, "\(what)")
                #expect(request.path == call.path, "\(what)")
                if !call.query.isEmpty { #expect(request.query == call.query, "\(what)") }
                #expect(request.queryValue("key") == nil, "\(what): a key in the query")
                #expect(request.key == poolKey, "\(what): key \(request.key ?? "none")")
                #expect(request.headerValues("host") == ["127.0.0.1:\(fakes[0].port)"], "\(what): \(request.headers)")
                if call.openAI {
                    #expect(request.keySource == .bearer, "\(what)")
                    #expect(request.headerValues("authorization") == ["Bearer \(poolKey)"], "\(what)")
                    #expect(!request.hasHeader("x-goog-api-key"), "\(what)")
                    // The SDK's own headers pass through.
                    #expect(request.header("x-stainless-lang") == "python", "\(what): \(request.headers)")
                } else {
                    #expect(request.keySource == .header, "\(what)")
                    #expect(request.headerValues("x-goog-api-key") == [poolKey], "\(what)")
                    #expect(!request.hasHeader("authorization"), "\(what)")
                    #expect(request.header("x-goog-api-client")?.contains("google-genai-sdk/") == true, "\(what): \(request.headers)")
                }
                let leaked = request.headers.filter { $0.value.contains(gateway.token) }
                #expect(leaked.isEmpty, "\(what): the gateway token reached the fake in \(leaked.map(\.name))")
                #expect(!request.query.contains(gateway.token), "\(what): the gateway token reached the fake in the query")
                #expect(!request.bodyText.contains(gateway.token), "\(what): the gateway token reached the fake in the body")
            }

            // 3. The gateway: one successful row per call, with the right endpoint, on the pool key.
            let rows = try await gateway.requestRows(count: calls.count)
            #expect(rows.count == calls.count)
            // The log writer may write a streamed call after the next one (the client can finish
            // reading before the gateway records): match rows by endpoint and stream flag.
            var unmatched = rows
            let fingerprint = Secret.fingerprint(poolKey)
            for call in calls {
                guard let index = unmatched.firstIndex(where: {
                    $0["endpoint"] as String? == call.endpoint && $0["api_version"] as String? == call.apiVersion
                        && ($0["is_stream"] as Bool? ?? false) == call.stream
                }) else {
                    Issue.record("no request row for \(call.check) (\(call.apiVersion) \(call.endpoint), stream \(call.stream)): \(rows)")
                    continue
                }
                let row = unmatched.remove(at: index)
                let what = "\(call.check): \(row)"
                #expect(row["method"] as String? == call.method, "\(what)")
                #expect(row["status"] as Int? == 200, "\(what)")
                #expect(row["outcome"] as String? == "success", "\(what)")
                #expect(row["attempt_count"] as Int? == 1, "\(what)")
                #expect(row["client_name"] as String? == "tests", "\(what)")
                #expect(row["key_fingerprint"] as String? == fingerprint, "\(what)")
                #expect(row["api_version"] as String? == call.apiVersion, "\(what)")
                #expect(row["model"] as String? == call.model, "\(what)")
                if let total = call.totalTokens {
                    #expect(row["total_tokens"] as Int? == total, "\(what)")
                    #expect(row["usage_status"] as String? == "complete", "\(what)")
                }
            }
            #expect(unmatched.isEmpty, "request rows no SDK call accounts for: \(unmatched)")
            #expect(!gateway.logs.all.contains { $0.contains(gateway.token) || $0.contains(poolKey) }, "a secret in the gateway's log")
        }
    }

    /// google-genai's `files.upload` (the resumable protocol: start, then chunks without a key at
    /// the URL the gateway hands out), then `files.get`, a `generate_content` naming the file and
    /// `files.delete`, with three keys on two upstreams: the fake refuses every key but the
    /// file's owner, so the script passes only if the gateway keeps the file on its key.
    @Test(.enabled(if: SDKTests.python != nil, "set by scripts/test"))
    func uploadsAFileWithTheSDK() async throws {
        let python = try #require(Self.python)
        let root = Self.repositoryRoot()
        let keys = [testKey("a"), testKey("b"), testKey("c")]
        try await withGateway(keys: keys, fakes: 2, timeout: 100) { gateway, fakes in
            let result = try await runProcess(
                python, [root.appendingPathComponent("Tests/sdk/sdk_files.py").path],
                environment: Self.childEnvironment(gateway: gateway, settings: .init()),
                directory: root.path, timeout: 60
            )
            #expect(result.exitCode == 0, "sdk_files.py exited \(result.exitCode):\n\(result.transcript)")
            #expect(result.stdout.contains("sdk_files: ok files/"), "\(result.transcript)")

            // The upload went to one upstream; every call reached the fakes with the owner's key.
            let received = fakes.flatMap { $0.received() }
            let uploads = fakes.map { $0.received().filter { $0.path.hasPrefix("/upload/") }.count }
            #expect(uploads.filter { $0 > 0 }.count == 1, "the upload's steps on one upstream: \(uploads)")
            #expect(uploads.reduce(0, +) >= 2, "a start and at least one chunk")
            #expect(Set(received.map(\.key)).count == 1, "one key for everything: \(received.map { "\($0.method) \($0.path)" })")
            #expect(received.contains { $0.method == "DELETE" })
            #expect(fakes[0].resourceOwners().isEmpty, "the file was deleted")
            #expect(!gateway.logs.all.contains { line in line.contains(gateway.token) || keys.contains { line.contains($0) } })
        }
    }

    /// The child's environment: this process's, without anything that could steer an SDK
    /// elsewhere (Google/Gemini/OpenAI settings, HTTP proxies), plus the gateway and the fake's settings.
    static func childEnvironment(gateway: GatewayHarness, settings s: FakeGemini.Settings) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { name, _ in
            let upper = name.uppercased()
            return !(upper.hasPrefix("GOOGLE_") || upper.hasPrefix("GEMINI_") || upper.hasPrefix("OPENAI_")
                || upper.hasSuffix("_PROXY"))
        }
        environment["NO_PROXY"] = "127.0.0.1,localhost"
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        environment["PYTHONUNBUFFERED"] = "1"
        environment["GATEWAY_URL"] = gateway.baseURL
        environment["GATEWAY_TOKEN"] = gateway.token
        environment["FAKE_STREAM_EVENTS"] = String(s.streamEventCount)
        environment["FAKE_PROMPT_TOKENS"] = String(s.promptTokenCount)
        environment["FAKE_CANDIDATES_TOKENS"] = String(s.candidatesTokenCount)
        environment["FAKE_THOUGHTS_TOKENS"] = String(s.thoughtsTokenCount)
        environment["FAKE_EMBEDDING_DIMENSIONS"] = String(s.embeddingDimensions)
        environment["FAKE_MODELS"] = s.models.joined(separator: ",")
        return environment
    }
}

// MARK: - A child process with a deadline

struct ProcessResult: Sendable {
    var exitCode: Int32
    var timedOut: Bool
    var stdout: String
    var stderr: String

    var transcript: String {
        "exit code \(exitCode)\(timedOut ? " (killed: timed out)" : "")\n--- stdout ---\n\(stdout)--- stderr ---\n\(stderr)"
    }
}

/// Runs `executable` with `arguments` to its end, and kills it (SIGTERM, then SIGKILL) if it has
/// not exited after `timeout` seconds (or at once when the test is cancelled).
func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String], directory: String, timeout: Double
) async throws -> ProcessResult {
    let child = try await ChildProcess(executable, arguments, directory: directory, environment: environment)
    var timedOut = false
    var status = await withTaskCancellationHandler {
        await child.waitForExit(timeout: timeout)
    } onCancel: {
        child.signal(SIGTERM)
    }
    if status == nil {
        timedOut = true
        child.signal(SIGTERM)
        status = await child.waitForExit(timeout: 5)
        if status == nil {
            child.signal(SIGKILL)
            status = await child.waitForExit(timeout: 5)
        }
    }
    return ProcessResult(exitCode: status ?? -1, timedOut: timedOut, stdout: child.stdout, stderr: child.stderr)
}
