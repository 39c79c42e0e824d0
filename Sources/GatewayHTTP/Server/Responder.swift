import GatewayCore
import NIOCore
import NIOHTTP1

/// The seam between the HTTP layer and the gateway's policy: what ``ClientConnectionHandler``
/// asks of the layer above it (`GatewayServer`'s proxy and local routes) for each request. The
/// handler does the reading, pipelining, framing and back-pressure; the responder decides who
/// may ask, what the answer is, and keeps the request's row.
///
/// The handler holds it as `any Responder`, and what it carries from the responder back to it
/// (who sent a request, a relayed body) as existentials: a generic handler, specialised for
/// nothing across the module boundary, cost 20,000 instructions a request more in metadata
/// lookups and unspecialised code (bench/RESULTS.md, issue 22); these cost two small boxes.
public protocol Responder: Sendable {
    /// The largest proxied request body read: a larger one (declared, or counted as it comes) is
    /// refused with 413 and the connection closes.
    var maximumBodyBytes: Int { get }
    /// Most proxied requests answered at once (0: no limit); beyond, ``overloaded(_:)``.
    var maximumInFlight: Int { get }
    /// The longest silence within a request's body (named in the refusal when it passes).
    var requestBodyTimeout: Duration { get }

    /// Who sent the request, from its head alone; nil when nobody (401, before any body byte).
    func admit(_ head: HTTPRequestHead) -> (any Sendable)?
    /// Answers a proxied request whose body has been read whole.
    func respond(to request: IncomingRequest) async -> HTTPAnswer
    /// Answers a proxied request that is not answered (no valid token, too large, malformed, its
    /// body stalled, its client gone), and keeps its row.
    func refuse(_ head: HTTPRequestHead, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String?) -> HTTPAnswer
    /// Answers a proxied request the gateway has no room for (``maximumInFlight``), now.
    func overloaded(_ request: IncomingRequest) -> HTTPAnswer
    /// Answers a request for any path that is not proxied (probes, operator pages, 404).
    func answerLocal(to head: HTTPRequestHead) async -> LocalAnswer
}

/// A proxied request as the connection handler hands it over: its head, who sent it (judged from
/// the head, before the body was read) and its whole body.
public struct IncomingRequest: Sendable {
    public var head: HTTPRequestHead
    /// What ``Responder/admit(_:)`` returned for the head.
    public var admission: any Sendable
    public var body: ByteBuffer
    public var method: HTTPMethod { head.method }
    public var headers: HTTPHeaders { head.headers }

    public init(head: HTTPRequestHead, admission: any Sendable, body: ByteBuffer) {
        self.head = head
        self.admission = admission
        self.body = body
    }
}

/// What a responder answers: a head, and a body either in hand or still arriving from upstream.
public struct HTTPAnswer {
    public var head: HTTPResponseHead
    public var body: Body

    public enum Body {
        case whole(ByteBuffer)
        case relay(any RelayedBody)
    }

    public init(head: HTTPResponseHead, body: Body) {
        self.head = head
        self.body = body
    }
}

/// An answer's body that arrives chunk by chunk, which the connection handler writes to the
/// client as it comes (framed by ``length`` when known, else chunked).
public protocol RelayedBody {
    /// The body's length when known in advance; nil when its end is the end of its chunks.
    var length: Int? { get }
    /// Passes the body to `write` chunk by chunk. Throws if the body breaks off (the client must
    /// then not take what it got for a whole answer) or `write` throws (the client went away).
    mutating func run(write: (ByteBuffer) async throws -> Void) async throws
    /// The client went away before the answer could be sent.
    func abandon()
}

/// A whole answer of the gateway's own: the probes, the operator pages, the 404 of unknown paths.
public struct LocalAnswer: Sendable {
    public var head: HTTPResponseHead
    public var body: ByteBuffer

    /// The largest request body a local route takes (and drops): a probe or a scraper sends
    /// none. A larger one, declared or counted as it arrives, is answered 413 and the connection
    /// closes (``GeminiErrorResponse/localBodyTooLarge``): nobody can keep a connection busy
    /// streaming a body to `/healthz`.
    public static let maximumRequestBodyBytes = 64 << 10

    public init(head: HTTPResponseHead, body: ByteBuffer) {
        self.head = head
        self.body = body
    }

    public init(_ status: HTTPResponseStatus, contentType: String, body: ByteBuffer, headers: HTTPHeaders = [:]) {
        var headers = headers
        headers.add(name: "Content-Type", value: contentType)
        self.init(head: HTTPResponseHead(version: .http1_1, status: status, headers: headers), body: body)
    }
}
