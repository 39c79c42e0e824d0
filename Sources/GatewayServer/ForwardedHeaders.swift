import Foundation
import NIOHTTP1

/// Which headers cross the gateway, in each direction.
///
/// Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are dropped both ways. Toward the
/// upstream, every client credential is dropped too (the pool key is added instead), and so is
/// `Accept-Encoding`, so that the gateway can read the usage out of the answer.
///
/// Names are compared without regard to case, byte by byte: no header name is lowercased (or
/// otherwise copied) on the way.
enum ForwardedHeaders {
    private static let hopByHop: [StaticString] = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    static let apiKey = "x-goog-api-key"

    private static let notToUpstream: [StaticString] = hopByHop + [
        "host", "content-length", "authorization", "x-goog-api-key", "accept-encoding", "cookie",
    ]

    private static let notToClient: [StaticString] = hopByHop + ["content-length"]

    /// The client's headers as sent upstream, with `credential` as the only credential:
    /// `x-goog-api-key` for native endpoints, `Authorization: Bearer` for `/openai/`.
    static func toUpstream(_ headers: HTTPHeaders, credential: String, bearer: Bool) -> HTTPHeaders {
        var out = filtered(headers, dropping: notToUpstream, extra: 1)
        if bearer {
            out.add(name: "Authorization", value: "Bearer " + credential)
        } else {
            out.add(name: apiKey, value: credential)
        }
        return out
    }

    /// The upstream's headers as sent to the client (room for one more: the request id).
    static func toClient(_ headers: HTTPHeaders) -> HTTPHeaders {
        filtered(headers, dropping: notToClient, extra: 1)
    }

    private static func filtered(_ headers: HTTPHeaders, dropping dropped: [StaticString], extra: Int) -> HTTPHeaders {
        let named = connectionTokens(headers)
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + extra)
        for (name, value) in headers {
            let utf8 = name.utf8
            if dropped.contains(where: { equalsIgnoringCase(utf8[...], $0) }) { continue }
            if !named.isEmpty, named.contains(where: { $0.utf8.elementsEqual(utf8.lazy.map(lowercased)) }) { continue }
            out.add(name: name, value: value)
        }
        return out
    }

    /// The headers named in `Connection` (besides the usual `keep-alive` and `close`, which name
    /// no header), lowercased, to drop with it. Nearly every message says only `keep-alive` or
    /// `close`: that costs one comparison and no allocation.
    private static func connectionTokens(_ headers: HTTPHeaders) -> [String] {
        var names: [String] = []
        for connection in headers[canonicalForm: "connection"] {
            for token in connection.utf8.split(separator: UInt8(ascii: ",")) {
                let trimmed = trimmingSpaces(token)
                if trimmed.isEmpty || equalsIgnoringCase(trimmed, "keep-alive") || equalsIgnoringCase(trimmed, "close") { continue }
                names.append(String(decoding: trimmed.lazy.map(lowercased), as: UTF8.self))
            }
        }
        return names
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

    /// ASCII case-insensitive equality with a lowercase literal.
    private static func equalsIgnoringCase(_ bytes: Substring.UTF8View.SubSequence, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        var index = 0
        for byte in bytes {
            let folded = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
            if folded != lowercase.utf8Start[index] { return false }
            index += 1
        }
        return true
    }
}

// MARK: - The request target

/// The client's path and query as forwarded: the path exactly as sent, the query without `key`
/// (the gateway token, if the client sent it that way).
struct ForwardedTarget {
    var path: String
    var query: String?
    /// The value of `key` in the query, if any.
    var keyParameter: String?

    init(target: String) {
        guard let mark = target.firstIndex(of: "?") else {
            path = target
            query = nil
            keyParameter = nil
            return
        }
        path = String(target[..<mark])
        var kept: [Substring] = []
        var key: String?
        for parameter in target[target.index(after: mark)...].split(separator: "&", omittingEmptySubsequences: true) {
            if parameter == "key" || parameter.hasPrefix("key=") {
                key = String(parameter.dropFirst(4)).removingPercentEncoding ?? String(parameter.dropFirst(4))
            } else {
                kept.append(parameter)
            }
        }
        query = kept.isEmpty ? nil : kept.joined(separator: "&")
        keyParameter = key
    }

    /// `path?query` for the upstream request.
    var forwarded: String {
        query.map { path + "?" + $0 } ?? path
    }
}
