import Foundation
import GatewayCore
import NIOHTTP1

/// Which headers cross the gateway, in each direction.
///
/// Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are dropped both ways. Toward the
/// upstream, every client credential is dropped too (the pool key is added instead), and so are
/// `Accept-Encoding`, so that the gateway can read the usage out of the answer, and `Expect`,
/// which the gateway answers itself. The headers that name the client's address
/// (``clientAddressNames`` and every `X-Forwarded-*`) go upstream only when the operator keeps
/// them (`--forward-client-address`): by default Google learns nothing of the gateway's clients.
///
/// Names are compared without regard to case, byte by byte: no header name is lowercased (or
/// otherwise copied) on the way.
public enum ForwardedHeaders {
    private static let hopByHop: [StaticString] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    public static let apiKey = "x-goog-api-key"

    private static let notToUpstreamNames: [StaticString] = hopByHop + [
        "host", "content-length", "authorization", "x-goog-api-key", "accept-encoding", "cookie",
        // Answered by the gateway itself (the body is read whole before anything goes upstream).
        "expect",
    ]

    private static let notToUpstream = NameSet(notToUpstreamNames)

    /// Headers that carry the client's address (or the operator's proxies'), besides `X-Forwarded-*`.
    static let clientAddressNames: [StaticString] = ["x-real-ip", "forwarded", "via", "cf-connecting-ip", "true-client-ip"]

    private static let notToUpstreamNorAddress = NameSet(notToUpstreamNames + clientAddressNames)

    private static let forwardedPrefix: StaticString = "x-forwarded-"

    private static let notToClient = NameSet(hopByHop + ["content-length"])

    private static let connectionHeader = NameSet(["connection"])

    private static let usualConnectionValues = NameSet(["keep-alive", "close"])

    /// Lowercase names, found by length first: most names a request carries have a length no
    /// listed name has, and are told apart with one array access.
    struct NameSet {
        private let byLength: [[StaticString]]

        init(_ names: [StaticString]) {
            var byLength = [[StaticString]](repeating: [], count: (names.map(\.utf8CodeUnitCount).max() ?? 0) + 1)
            for name in names { byLength[name.utf8CodeUnitCount].append(name) }
            self.byLength = byLength
        }

        /// Whether `bytes`, ignoring ASCII case, is one of the names.
        func contains(_ bytes: some Collection<UInt8>) -> Bool {
            let count = bytes.count
            guard count < byLength.count else { return false }
            for name in byLength[count] where ForwardedHeaders.equalsIgnoringCase(bytes, name) { return true }
            return false
        }

        func contains(_ name: String) -> Bool {
            var name = name  // a native string: `withUTF8` reads it in place
            return name.withUTF8 { contains($0) }
        }
    }

    /// The client's headers as sent upstream, with `credential` as the only credential:
    /// `x-goog-api-key` for native endpoints, `Authorization: Bearer` for `/openai/`; the
    /// client's address only if `keepClientAddress`.
    public static func toUpstream(_ headers: HTTPHeaders, credential: String, bearer: Bool, keepClientAddress: Bool = false) -> HTTPHeaders {
        var out = keepClientAddress
            ? filtered(headers, dropping: notToUpstream, room: 1)
            : filtered(headers, dropping: notToUpstreamNorAddress, droppingPrefix: forwardedPrefix, room: 1)
        // After the filter: a `Connection` header naming this one does not drop it.
        out.append(bearer ? ("Authorization", "Bearer " + credential) : (apiKey, credential))
        return HTTPHeaders(out)
    }

    /// The upstream's headers as sent to the client (room for one more: the request id).
    public static func toClient(_ headers: HTTPHeaders) -> HTTPHeaders {
        HTTPHeaders(filtered(headers, dropping: notToClient, room: 1))
    }

    /// One pass over the headers; a second only in the rare case that `Connection` names
    /// headers to drop besides the usual `keep-alive` and `close`. The kept pairs go into a new
    /// `HTTPHeaders` whole, not one `add` at a time (which checks each name for non-ASCII bytes
    /// again: these came through SwiftNIO's parser, which admits only token characters).
    private static func filtered(
        _ headers: HTTPHeaders, dropping dropped: NameSet, droppingPrefix prefix: StaticString? = nil, room: Int
    ) -> [(String, String)] {
        var out: [(String, String)] = []
        out.reserveCapacity(headers.count + room)
        var named: [String] = []
        for (name, value) in headers {
            if connectionHeader.contains(name) {
                connectionTokens(value, into: &named)
                continue  // hop-by-hop itself
            }
            if dropped.contains(name) { continue }
            if let prefix, startsIgnoringCase(name, prefix) { continue }
            out.append((name, value))
        }
        if !named.isEmpty {
            out.removeAll { name, _ in named.contains { $0.utf8.elementsEqual(name.utf8.lazy.map(lowercased)) } }
        }
        return out
    }

    /// Adds the headers a `Connection` value names (besides `keep-alive` and `close`, which name
    /// no header), lowercased. Nearly every value is just one of those two: no allocation then.
    private static func connectionTokens(_ value: String, into names: inout [String]) {
        if usualConnectionValues.contains(value) { return }
        var tokens = ByteSplitter(value[...], separator: UInt8(ascii: ","))
        while let token = tokens.next() {
            let trimmed = trimmingSpaces(token.utf8)
            if trimmed.isEmpty || usualConnectionValues.contains(trimmed) { continue }
            names.append(String(decoding: trimmed.lazy.map(lowercased), as: UTF8.self))
        }
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    private static func trimmingSpaces(_ bytes: Substring.UTF8View.SubSequence) -> Substring.UTF8View.SubSequence {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, isSpace(bytes[start]) { start = bytes.index(after: start) }
        while end > start, isSpace(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        return bytes[start..<end]
    }

    /// Whether `name` begins with the lowercase literal `prefix`, ignoring ASCII case.
    private static func startsIgnoringCase(_ name: String, _ prefix: StaticString) -> Bool {
        let length = prefix.utf8CodeUnitCount
        guard name.utf8.count > length else { return false }
        return equalsIgnoringCase(name.utf8.prefix(length), prefix)
    }

    /// ASCII case-insensitive equality with a lowercase literal.
    static func equalsIgnoringCase(_ bytes: some Collection<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        var index = 0
        for byte in bytes {
            if lowercased(byte) != lowercase.utf8Start[index] { return false }
            index += 1
        }
        return true
    }
}

// MARK: - The request target

/// The client's path and query as forwarded: the path exactly as sent, the query without `key`
/// (the gateway token, if the client sent it that way).
public struct ForwardedTarget: Sendable {
    public var path: String
    public var query: String?
    /// The value of `key` in the query, if any.
    public var keyParameter: String?

    public init(target: String) {
        guard let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else {
            path = target
            query = nil
            keyParameter = nil
            return
        }
        path = String(target[..<mark])
        var kept: [Substring] = []
        var key: String?
        var parameters = ByteSplitter(target[target.utf8.index(after: mark)...], separator: UInt8(ascii: "&"))
        while let parameter = parameters.next() {
            if parameter == "key" || parameter.utf8.starts(with: "key=".utf8) {
                let value = parameter.dropFirst(4)
                key = value.removingPercentEncoding ?? String(value)
            } else {
                kept.append(parameter)
            }
        }
        query = kept.isEmpty ? nil : kept.joined(separator: "&")
        keyParameter = key
    }

    /// `path?query` for the upstream request.
    public var forwarded: String {
        query.map { path + "?" + $0 } ?? path
    }
}
