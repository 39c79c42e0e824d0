import Foundation
import GatewayCore
import NIOCore

extension NIOHTTP1Transport {
    /// Where requests go: scheme, host and port of a base URL, and its path prefix.
    struct Endpoint: Hashable, Sendable {
        var tls: Bool
        var host: String
        var port: Int
        /// `Host` header value: the port only when it is not the scheme's default.
        var authority: String
        var pathPrefix: String
        /// Where its idle connections wait in a loop's pool (``LoopPool``), given by that pool;
        /// not part of what the endpoint is (equality and hash leave it out).
        var slot = -1

        /// The socket address when `host` is an IP address (no name to resolve).
        var address: SocketAddress? { try? SocketAddress(ipAddress: host, port: port) }

        static func == (a: Endpoint, b: Endpoint) -> Bool {
            a.tls == b.tls && a.host == b.host && a.port == b.port && a.authority == b.authority && a.pathPrefix == b.pathPrefix
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(tls)
            hasher.combine(host)
            hasher.combine(port)
            hasher.combine(authority)
            hasher.combine(pathPrefix)
        }
    }

    /// The endpoint of a base URL.
    static func parse(_ baseURL: String) throws -> Endpoint {
        // Only a URL `upstreams add` accepts (the pool holds no other): its host, encoded
        // (punycode, no escapes), goes into the Host header as it is.
        guard case .success = ListFile.normalizeUpstreamURL(baseURL), let components = URLComponents(string: baseURL),
              let scheme = components.scheme?.lowercased(), let written = components.encodedHost
        else {
            throw UpstreamTransportError(failure: .other, detail: "not an http(s) base URL: \(baseURL)")
        }
        let tls = scheme == "https"
        let port = components.port ?? (tls ? 443 : 80)
        // An IPv6 literal: brackets in the Host header, none to connect.
        let host = written.hasPrefix("[") && written.hasSuffix("]") ? String(written.dropFirst().dropLast()) : written
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let authority = components.port.map { "\(bracketed):\($0)" } ?? bracketed
        var prefix = components.percentEncodedPath
        while prefix.hasSuffix("/") { prefix.removeLast() }
        return Endpoint(tls: tls, host: host, port: port, authority: authority, pathPrefix: prefix)
    }
}
