import Foundation
import HTTPTypes

/// Which headers cross the gateway, in each direction.
///
/// Hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and every header it names, `Keep-Alive`,
/// `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are dropped both ways. Toward the
/// upstream, every client credential is dropped too (the pool key is added instead), and so is
/// `Accept-Encoding`, so that the gateway can read the usage out of the answer.
enum ForwardedHeaders {
    private static let hopByHop: Set<HTTPField.Name> = [
        .connection, .init("Keep-Alive")!, .init("Proxy-Connection")!, .proxyAuthenticate,
        .proxyAuthorization, .te, .trailer, .transferEncoding, .upgrade,
    ]

    static let apiKey = HTTPField.Name("x-goog-api-key")!

    private static let notToUpstream: Set<HTTPField.Name> = hopByHop.union([
        .init("Host")!, .contentLength, .authorization, apiKey, .acceptEncoding, .cookie,
    ])

    private static let notToClient: Set<HTTPField.Name> = hopByHop.union([.contentLength])

    /// The client's headers as sent upstream, with `credential` as the only credential:
    /// `x-goog-api-key` for native endpoints, `Authorization: Bearer` for `/openai/`.
    static func toUpstream(_ headers: HTTPFields, credential: String, bearer: Bool) -> HTTPFields {
        let named = connectionTokens(headers)
        var out = HTTPFields()
        out.reserveCapacity(headers.count + 1)
        for field in headers where !notToUpstream.contains(field.name) && !named.contains(field.name) {
            out.append(field)
        }
        if bearer {
            out[.authorization] = "Bearer " + credential
        } else {
            out[apiKey] = credential
        }
        return out
    }

    /// The upstream's headers as sent to the client.
    static func toClient(_ headers: HTTPFields) -> HTTPFields {
        let named = connectionTokens(headers)
        var out = HTTPFields()
        out.reserveCapacity(headers.count + 1)
        for field in headers where !notToClient.contains(field.name) && !named.contains(field.name) {
            out.append(field)
        }
        return out
    }

    /// The headers named in `Connection` (besides the usual `keep-alive` and `close`, which name
    /// no header), to drop with it. Nearly every message says only `keep-alive` or `close`: that
    /// costs one comparison and no allocation.
    private static func connectionTokens(_ headers: HTTPFields) -> Set<HTTPField.Name> {
        guard let connection = headers[.connection] else { return [] }
        var names = Set<HTTPField.Name>()
        for token in connection.utf8.split(separator: UInt8(ascii: ",")) {
            let trimmed = trimmingSpaces(token)
            if equalsIgnoringCase(trimmed, "keep-alive") || equalsIgnoringCase(trimmed, "close") { continue }
            if let name = HTTPField.Name(String(decoding: trimmed, as: UTF8.self)) { names.insert(name) }
        }
        return names
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
