import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import NIOSSL

/// No HTTP answer: what went wrong, in the classifier's terms.
public struct UpstreamTransportError: Error, Sendable, CustomStringConvertible {
    public var failure: OutcomeClassifier.TransportFailure
    /// What happened, for the logs and `keys check`: said, never read to classify.
    public var detail: String
    public var description: String { "\(failure.rawValue): \(detail)" }

    init(failure: OutcomeClassifier.TransportFailure, detail: String) {
        self.failure = failure
        self.detail = detail
    }

    /// Any error met on the way to an upstream, classified by
    /// ``OutcomeClassifier/TransportFailure/init(classifying:)``; one of these as it is.
    public init(_ error: any Error) {
        if let error = error as? UpstreamTransportError {
            self = error
            return
        }
        failure = .init(classifying: error)
        // An error the classifier does not know says its type, for the one who will teach it.
        detail = failure == .other ? "\(String(reflecting: type(of: error))): \(error)" : "\(error)"
    }
}

// MARK: - The one classifier of transport errors

extension OutcomeClassifier.TransportFailure {
    /// The failure `error` names, by its type and, for a system error, its number; never by its
    /// text. The transport's own errors (head and read timeouts, a connection closed before the
    /// answer) are made as ``UpstreamTransportError``s where they happen and keep their failure.
    ///
    /// | error | failure |
    /// |---|---|
    /// | `UpstreamTransportError` | its own |
    /// | `IOError` | by its errno (``init(errno:)``), else `.other` |
    /// | `NIOConnectionError` (every address failed) | by its attempts (``init(attempts:)``) |
    /// | `ChannelError.connectTimeout` | `.timeout` |
    /// | any other `ChannelError` (EOF, closed) | `.connectionReset` |
    /// | NIOSSL's errors | `.tls` |
    /// | `CancellationError` (the request's task was cancelled) | `.cancelled` |
    /// | anything else (a malformed response, ...) | `.other` |
    public init(classifying error: any Error) {
        switch error {
        case let error as UpstreamTransportError: self = error.failure
        case let error as IOError: self = Self(errno: error.errnoCode) ?? .other
        case let error as NIOConnectionError: self = Self(attempts: error.connectionErrors.map(\.error))
        case ChannelError.connectTimeout: self = .timeout
        case is ChannelError: self = .connectionReset
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError, is NIOSSLCloseTimedOutError, is NIOTLSUnwrappingError:
            self = .tls
        case is CancellationError: self = .cancelled
        default: self = .other
        }
    }

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

    /// A host whose every address failed (`NIOConnectionError`): a shortage of the gateway's own
    /// on any attempt (another try would meet it too), else the first attempt's named failure;
    /// no attempt at all means the name gave no address to try.
    init(attempts: [any Error]) {
        guard !attempts.isEmpty else {
            self = .dns
            return
        }
        let failures = attempts.map(Self.init(classifying:))
        self = failures.contains(.localResources) ? .localResources : failures.first { $0 != .other } ?? .other
    }
}
