import NIOCore
import NIOHTTP1

// MARK: - The seam between the proxy loop and whatever carries bytes upstream

/// One request to an upstream. The body is a buffer, so it can be sent again on a retry.
/// Heads are SwiftNIO's HTTP/1 types from the client's connection to the upstream's and back:
/// no conversion on the way.
public struct UpstreamRequest: Sendable {
    public var method: HTTPMethod
    /// The upstream's base URL (`https://host[:port][/prefix]`, no trailing slash).
    public var baseURL: String
    /// The client's path and query, without its `key` parameter.
    public var target: String
    public var headers: HTTPHeaders
    public var body: ByteBuffer

    /// The full URL.
    public var url: String { baseURL + target }

    /// Whether a body (with its length) goes out: a non-empty one, or any for methods that carry one.
    public var sendsBody: Bool {
        body.readableBytes > 0 || method == .POST || method == .PUT || method == .PATCH
    }

    public init(method: HTTPMethod, baseURL: String, target: String, headers: HTTPHeaders, body: ByteBuffer) {
        self.method = method
        self.baseURL = baseURL
        self.target = target
        self.headers = headers
        self.body = body
    }
}

/// The body of an upstream response, read chunk by chunk as it arrives. Read by one task at a
/// time: the proxy loop reads the first chunk, then hands the stream to the response writer.
public protocol UpstreamBodyStream {
    /// The next chunk, nil at the end; throws when the upstream fails mid-body.
    mutating func next() async throws -> ByteBuffer?
}

/// An upstream's response head, with its body still to be read.
public struct UpstreamResponse {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: any UpstreamBodyStream

    public init(status: Int, headers: HTTPHeaders, body: any UpstreamBodyStream) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Sends requests upstream over pooled keep-alive connections.
public protocol UpstreamTransport: Sendable {
    /// Sends `request` and returns when the response head has arrived. Throws
    /// `UpstreamTransportError` when no HTTP answer could be had.
    func send(_ request: UpstreamRequest) async throws -> UpstreamResponse
}

/// How long the transport keeps an unused upstream connection in its pool before closing it.
public let upstreamPoolIdleTimeout: Duration = .seconds(60)
