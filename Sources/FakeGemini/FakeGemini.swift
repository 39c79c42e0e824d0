import Foundation
import Hummingbird
import HummingbirdTLS
import NIOSSL
import NIOCore
import ServiceLifecycle
import Synchronization

/// A fake Gemini upstream on a real socket, for tests and benchmarks.
///
/// ```swift
/// let fake = try await FakeGemini.start()            // 127.0.0.1, a free port
/// fake.setRules([
///     .init(key: "key-a", times: 1, reply: .fixture("429-per-minute")),   // first call with key-a
///     .init(model: "gemini-2.5-pro", reply: .status(502, body: "<html>bad gateway</html>", contentType: "text/html")),
///     .init(method: "streamGenerateContent", reply: .sse(events: FakeGemini.defaultStreamEvents(count: 5), interval: .milliseconds(20), failAfter: 2)),
/// ])
/// // ... point the gateway at fake.baseURL, send requests ...
/// let seen = fake.received()                         // method, path, query, headers, body, key, time
/// await fake.stop()                                  // always: the server runs until stopped
/// ```
///
/// - Without a matching rule every endpoint gets a realistic default answer (``Reply/ok``):
///   generateContent, streamGenerateContent (SSE with `alt=sse`, else a streamed JSON array),
///   countTokens, embedContent, batchEmbedContents, models list/get, and on `/v1beta/openai/`
///   chat/completions (SSE ending in `data: [DONE]` when `"stream": true`), embeddings, models.
///   `/v1`, `/v1beta` and `/v1alpha` alike. Files (resumable upload), cached contents and batches
///   belong to the key that made them: other keys get 403 (see `ResourceStore`). Unknown paths: 404 with a Google NOT_FOUND envelope.
///   ``settings`` tunes them (event count and interval, SSE framing, token counts).
/// - Every call must carry an API key (x-goog-api-key, `?key=`, or `Authorization: Bearer`),
///   otherwise the real 403 "unregistered callers" body is answered; an `Authorization` header on a
///   native (non-OpenAI) path gets the real 401, as Google takes it for an OAuth token. Both are
///   checked before the rules.
/// - Every answer carries `x-fake-key` (the last 4 characters of the key used; absent without a
///   key) and `x-fake-request` (the request's ``ReceivedRequest/index``).
/// - Streamed events are logged when written and flushed (``eventLog()``), so a test can prove
///   incremental delivery with the fake's own timestamps; a ``StreamGate`` holds a stream at an
///   event for a proof without timing at all.
public final class FakeGemini: Sendable {
    /// The bound port.
    public let port: Int
    /// The host the fake listens on, as given to ``start(host:port:settings:)``.
    public let host: String
    /// `http`, or `https` when started with TLS.
    public let scheme: String
    let core: Core
    private let runTask: Mutex<Task<Void, Never>?>
    private let group: ServiceGroup

    /// `http://HOST:PORT` (or `https://`), without a trailing slash.
    public var baseURL: String {
        host.contains(":") ? "\(scheme)://[\(host)]:\(port)" : "\(scheme)://\(host):\(port)"
    }

    /// Knobs of the default answers; changes apply to requests that arrive afterwards.
    public var settings: Settings {
        get { core.state.withLock { $0.settings } }
        set { core.state.withLock { $0.settings = newValue } }
    }

    private init(host: String, port: Int, scheme: String, core: Core, task: Task<Void, Never>, group: ServiceGroup) {
        self.host = host
        self.port = port
        self.scheme = scheme
        self.core = core
        self.runTask = Mutex(task)
        self.group = group
    }

    /// Starts a fake on `host:port` (port 0: a free port, see ``port``) and returns once it listens.
    /// With `tls` (a server configuration with a certificate), it speaks https and ``baseURL``
    /// says so. With `sharingResourcesWith`, files, cached contents and batches made through
    /// either fake are known to both, as two relays in front of one Google.
    public static func start(
        host: String = "127.0.0.1", port: Int = 0, settings: Settings = Settings(), tls: TLSConfiguration? = nil,
        sharingResourcesWith other: FakeGemini? = nil
    ) async throws -> FakeGemini {
        let core = Core(settings: settings, resources: ResourceStore(sharing: other?.core.resources.shared ?? .init()))
        let bound = StartupSignal()
        var app = Application(
            responder: FakeResponder(core: core),
            server: try tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
            configuration: .init(address: .hostname(host, port: port), serverName: nil, backlog: 4096),
            onServerRunning: { channel in
                bound.succeed(channel.localAddress?.port ?? port)
            }
        )
        // Hummingbird logs every start at info, and stop() (a cancellation) at error ("Waiting on child
        // channel: CancellationError()"); a test suite starts and stops many fakes. LOG_LEVEL still wins.
        if ProcessInfo.processInfo.environment["LOG_LEVEL"] == nil {
            app.logger.logLevel = .critical
        }
        // Run in a service group of our own, so that stop() can shut the server down gracefully:
        // cancelling a Hummingbird server while a just-accepted connection waits to be served
        // traps in NIO ("Deinited NIOAsyncWriter without calling finish()", swift-nio#3481).
        let group = ServiceGroup(configuration: .init(
            services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: app.logger
        ))
        let task = Task {
            do {
                try await group.run()
                bound.fail(FakeGeminiError.stoppedBeforeListening)
            } catch {
                bound.fail(error)
            }
        }
        do {
            let boundPort = try await withTaskCancellationHandler {
                try await bound.wait()
            } onCancel: {
                task.cancel()
            }
            return FakeGemini(host: host, port: boundPort, scheme: tls == nil ? "http" : "https", core: core, task: task, group: group)
        } catch {
            task.cancel()
            await task.value
            throw error
        }
    }

    /// Stops listening, closes idle connections, aborts those still open 250 ms later (streams in
    /// progress fail) and waits until the server has shut down. Safe to call more than once.
    public func stop() async {
        let task = runTask.withLock { task in
            defer { task = nil }
            return task
        }
        guard let task else { return }
        // Stop accepting and close idle connections first; whatever still runs a moment later (a
        // stream held open by a test) is aborted by cancelling, as tests expect of a stop.
        await group.triggerGracefulShutdown()
        await withTaskGroup(of: Void.self) { waiting in
            waiting.addTask { await task.value }
            waiting.addTask {
                try? await Task.sleep(for: .milliseconds(250))
                task.cancel()
            }
            await waiting.next()
            waiting.cancelAll()
        }
    }

    // MARK: Rules

    /// Replaces all rules. The first matching rule with uses left answers; otherwise the default answer.
    public func setRules(_ rules: [Rule]) {
        core.state.withLock { $0.rules = rules.map { RuleSlot(rule: $0, remaining: $0.times) } }
    }

    /// Appends a rule (tried after the existing ones).
    public func addRule(_ rule: Rule) {
        core.state.withLock { $0.rules.append(RuleSlot(rule: rule, remaining: rule.times)) }
    }

    /// Removes all rules.
    public func clearRules() {
        core.state.withLock { $0.rules.removeAll() }
    }

    // MARK: Resources

    /// Every file, cached content and batch created so far, with the key that owns it.
    public func resourceOwners() -> [String: String] {
        core.resources.owners
    }

    // MARK: Records

    /// Every request received since start (or the last ``clearReceived()``), in the order their bodies
    /// were read.
    public func received() -> [ReceivedRequest] {
        core.state.withLock { $0.received }
    }

    /// Forgets the received requests and the event log.
    public func clearReceived() {
        core.state.withLock {
            $0.received.removeAll()
            $0.events.removeAll()
        }
    }

    /// Number of requests received since start, also while ``Settings/recording`` is off.
    public var requestCount: Int {
        core.state.withLock { $0.nextIndex }
    }

    /// Every streamed event the fake has written and flushed, in order.
    public func eventLog() -> [SentEvent] {
        core.state.withLock { $0.events }
    }

    /// How each streamed answer ended, by request index (one still streaming has no entry).
    public func streamEnds() -> [Int: StreamEnd] {
        core.state.withLock { $0.streamEnds }
    }

    /// The events written for one request, in order.
    public func eventLog(request index: Int) -> [SentEvent] {
        core.state.withLock { $0.events.filter { $0.requestIndex == index } }
    }

    /// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns whether it held.
    /// E.g. `await fake.wait { $0.received().count == 2 }`.
    @discardableResult
    public func wait(timeout: Duration = .seconds(60), until condition: (FakeGemini) -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if condition(self) { return true }
            if clock.now >= deadline || Task.isCancelled { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }
}

public enum FakeGeminiError: Error, Sendable {
    /// The server stopped before it was listening.
    case stoppedBeforeListening
}

// MARK: - Shared state

struct RuleSlot: Sendable {
    var rule: FakeGemini.Rule
    var remaining: Int?
}

/// State shared between the public object and the request handlers.
final class Core: Sendable {
    struct State: Sendable {
        var settings: FakeGemini.Settings
        var rules: [RuleSlot] = []
        var received: [FakeGemini.ReceivedRequest] = []
        var events: [FakeGemini.SentEvent] = []
        var streamEnds: [Int: FakeGemini.StreamEnd] = [:]
        var nextIndex = 0
    }

    let state: Mutex<State>
    /// Files, cached contents and batches, and who owns them.
    let resources: ResourceStore

    init(settings: FakeGemini.Settings, resources: ResourceStore = ResourceStore()) {
        self.state = Mutex(State(settings: settings))
        self.resources = resources
    }

    /// Numbers and (when recording) records a request; returns its index and the settings to answer it with.
    func record(_ make: (Int) -> FakeGemini.ReceivedRequest) -> (Int, FakeGemini.Settings) {
        state.withLock { state in
            let index = state.nextIndex
            state.nextIndex += 1
            if state.settings.recording {
                state.received.append(make(index))
            }
            return (index, state.settings)
        }
    }

    /// The reply of the first matching rule with uses left (using one of them), if any.
    func reply(for facts: RequestFacts) -> FakeGemini.Reply? {
        state.withLock { state in
            for i in state.rules.indices where state.rules[i].rule.matches(facts) {
                if let remaining = state.rules[i].remaining {
                    if remaining <= 0 { continue }
                    state.rules[i].remaining = remaining - 1
                }
                return state.rules[i].rule.reply
            }
            return nil
        }
    }

    func logStreamEnd(request: Int, _ end: FakeGemini.StreamEnd) {
        state.withLock { $0.streamEnds[request] = end }
    }

    func logEvent(request: Int, event: Int) {
        let entry = FakeGemini.SentEvent(requestIndex: request, eventIndex: event, time: Date(), instant: .now)
        state.withLock { state in
            if state.settings.recording { state.events.append(entry) }
        }
    }
}

/// Resumes the starter once the server listens (or failed to).
final class StartupSignal: Sendable {
    private enum State {
        case waiting(CheckedContinuation<Int, any Error>?)
        case done(Result<Int, any Error>)
    }

    private let state = Mutex<State>(.waiting(nil))

    func succeed(_ port: Int) { complete(.success(port)) }
    func fail(_ error: any Error) { complete(.failure(error)) }

    private func complete(_ result: Result<Int, any Error>) {
        let continuation: CheckedContinuation<Int, any Error>? = state.withLock { state in
            switch state {
            case .done:
                return nil
            case .waiting(let continuation):
                state = .done(result)
                return continuation
            }
        }
        continuation?.resume(with: result)
    }

    func wait() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Int, any Error>? = state.withLock { state in
                switch state {
                case .done(let result):
                    return result
                case .waiting:
                    state = .waiting(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
