import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import NIOSSL

extension NIOHTTP1Transport {
    static func transportError(_ error: any Error) -> UpstreamTransportError {
        if let error = error as? UpstreamTransportError { return error }
        let text = String(describing: error)
        // By the system error first: a shortage of the gateway's own (EMFILE...) is not the upstream's.
        if let named = OutcomeClassifier.TransportFailure.named(by: error) { return UpstreamTransportError(failure: named, detail: text) }
        switch error {
        case is ChannelError:
            if case .connectTimeout = error as? ChannelError { return UpstreamTransportError(failure: .timeout, detail: text) }
            return UpstreamTransportError(failure: .connectionReset, detail: text)
        case let error as NIOConnectionError:
            // Every address of the host failed: refused, or no answer in time.
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            return UpstreamTransportError(failure: refused || text.contains("refused") ? .connectionRefused : .timeout, detail: text)
        case is NIOSSLError, is BoringSSLError:
            return UpstreamTransportError(failure: .tls, detail: text)
        default:
            let type = String(reflecting: Swift.type(of: error))
            if type.contains("SSL") || text.contains("SSL") || text.contains("certificate") || text.contains("handshake") {
                return UpstreamTransportError(failure: .tls, detail: "\(type): \(text)")
            }
            if text.contains("refused") { return UpstreamTransportError(failure: .connectionRefused, detail: text) }
            if text.contains("resolve") || text.contains("getaddrinfo") || text.contains("NXDOMAIN") {
                return UpstreamTransportError(failure: .dns, detail: text)
            }
            return UpstreamTransportError(failure: .other, detail: "\(type): \(text)")
        }
    }
}
