import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

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
}

/// Sends requests upstream over pooled keep-alive connections.
public protocol UpstreamTransport: Sendable {
    /// Sends `request` and returns when the response head has arrived. Throws
    /// `UpstreamTransportError` when no HTTP answer could be had.
    func send(_ request: UpstreamRequest) async throws -> UpstreamResponse
}

/// How long the transport keeps an unused upstream connection in its pool before closing it.
let upstreamPoolIdleTimeout: Duration = .seconds(60)

extension OutcomeClassifier.TransportFailure {
    /// The failure a system error number names; nil for one it does not.
    init?(errno code: CInt) {
        switch code {
        case ECONNREFUSED: self = .connectionRefused
        case ECONNRESET, EPIPE, ECONNABORTED: self = .connectionReset
        case ETIMEDOUT: self = .timeout
        case EHOSTUNREACH, EHOSTDOWN: self = .hostUnreachable
        case ENETUNREACH, ENETDOWN: self = .networkUnreachable
        case EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL: self = .localResources
        default: return nil
        }
    }

    /// The failure named by the system error behind `error`: an `IOError`'s, or for a connection
    /// that failed on every address, a local shortage on any of them, else the first named.
    /// Nil when no system error names one (TLS, DNS, a closed channel: told by their types).
    static func named(by error: any Error) -> Self? {
        switch error {
        case let error as IOError:
            return Self(errno: error.errnoCode)
        case let error as NIOConnectionError:
            let named = error.connectionErrors.compactMap { ($0.error as? IOError).flatMap { Self(errno: $0.errnoCode) } }
            return named.contains(.localResources) ? .localResources : named.first
        default:
            return nil
        }
    }
}

/// No HTTP answer: what went wrong, in the classifier's terms.
public struct UpstreamTransportError: Error, Sendable, CustomStringConvertible {
    public var failure: OutcomeClassifier.TransportFailure
    public var detail: String
    public var description: String { "\(failure.rawValue): \(detail)" }
}
