import Foundation
import GatewayCore
import GatewayHTTP

/// Everything `serve` can be told. Defaults are what an operator gets without flags.
public struct GatewayConfiguration: Sendable {
    /// Address to listen on (default 0.0.0.0:8000, as the old proxy).
    public var host = "0.0.0.0"
    public var port = 8000

    /// A static gateway token accepted besides the hashed tokens from `clients add`.
    public var proxyKey: String?

    /// The token for the operator's pages (`/metrics`, `/status`); never accepted as a client
    /// token. Without it those pages answer 403 (unless `metricsPublic` opens `/metrics`).
    public var adminToken: String?

    /// Serves `/metrics` without the admin token (for a scraper on a private network).
    public var metricsPublic = false

    /// Adds per-key gauges to `/metrics` (labelled by key fingerprint: cooling, cooling until);
    /// off by default, as it makes one series per key.
    public var metricsPerKey = false

    /// The gateway's address as clients reach it (`https://gemini.example.com`), for the upload
    /// URLs it hands out; without it they are built from `X-Forwarded-Proto`/`-Host` or `Host`.
    public var publicURL: String?

    /// Sends the headers that name the client's address (`X-Forwarded-*`, `X-Real-IP`,
    /// `Forwarded`, `Via`, `CF-Connecting-IP`, `True-Client-IP`) upstream; off by default, so
    /// that Google learns nothing of the gateway's clients.
    public var forwardClientAddress = false

    /// Largest request body accepted (Gemini's inline limit): larger is answered 413.
    public var maximumBodyBytes = 100 << 20

    /// Client side (slow or idle clients): the longest wait for a request's head, from the
    /// connection's start or the request's first byte; the longest silence within a request's
    /// body; the longest a kept-alive connection waits for its next request (nginx's 75 s).
    public var requestHeadTimeout: Duration = .seconds(30)
    public var requestBodyTimeout: Duration = .seconds(30)
    public var keepAliveTimeout: Duration = .seconds(75)

    /// Most client connections open at once; at the cap the gateway stops accepting (new clients
    /// wait in the listen backlog) until one closes. Nil: no cap but the descriptor limit.
    public var maximumConnections: Int?

    /// Most proxied requests answered at once (0: no limit). A request that arrives (its body
    /// read) while that many are in flight is answered at once with 503 and `Retry-After: 1`,
    /// nothing sent upstream and no key charged, instead of joining a queue with no bound.
    /// Each request in flight holds a client connection and an upstream one.
    public var maximumInFlight = 4096

    /// The longest a request waits in all for a key to come back when every key is cooling for
    /// its model (per-minute and bare 429s only); zero: it gets 429 at once.
    public var maximumQueueWait: Duration = .seconds(10)

    /// Most requests waiting for a key at once; more get 429 at once. A waiter holds its client
    /// connection and a suspended task (no thread, no upstream connection).
    public var maximumQueued = 1000

    /// Upstream tries per client request, and the time after which no new try starts.
    public var maximumAttempts = 5
    public var retryBudget: Duration = .seconds(60)

    /// The upstream client's timeouts: connecting, the response head, silence within a body
    /// (their defaults are ``UpstreamTimeouts``'s).
    public var upstreamTimeouts = UpstreamTimeouts()
    public var connectTimeout: Duration {
        get { upstreamTimeouts.connectTimeout }
        set { upstreamTimeouts.connectTimeout = newValue }
    }
    public var responseHeadTimeout: Duration {
        get { upstreamTimeouts.responseHeadTimeout }
        set { upstreamTimeouts.responseHeadTimeout = newValue }
    }
    public var readIdleTimeout: Duration {
        get { upstreamTimeouts.readIdleTimeout }
        set { upstreamTimeouts.readIdleTimeout = newValue }
    }

    /// A PEM file of extra CA certificates to trust for https upstreams (relays behind a private CA).
    public var upstreamCAFile: String?

    /// How often the server looks for changes made by the CLI (import, keys, upstreams, clients).
    public var reloadInterval: Duration = .seconds(1)

    /// Request rows held in memory waiting to be written before new rows are dropped (and counted).
    public var logBufferCapacity = 100_000

    /// Whole UTC days of raw request and attempt rows kept besides today (0 keeps them all);
    /// older rows are pruned in the background, their counts stay in the daily totals.
    public var logRetentionDays = 30

    /// How long a graceful shutdown waits for in-flight requests and streams.
    public var shutdownGracePeriod: Duration = .seconds(30)

    /// Cooldown durations.
    public var policy = CooldownPolicy()

    /// The upstream used when none is configured.
    public static let defaultUpstream = "https://generativelanguage.googleapis.com"

    public init() {}
}
