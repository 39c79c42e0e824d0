import NIOHTTP1

/// What the gateway refuses in a proxied request's head itself, before anything goes upstream.
///
/// A relay (or Google's front end) answers such a request with a 4xx page of its own; the
/// gateway cannot tell that page from a broken relay's, so it judges what it can here: the
/// client gets a clear Gemini-shaped answer, and no upstream is tried (or blamed) for it.
///
/// The limits are those of a relay run on nginx's defaults (`large_client_header_buffers 4 8k`):
/// a request target or a header line over 8 KiB, or a header section over 16 KiB, would be
/// refused there. Gemini's clients send a few hundred bytes of headers.
enum RequestHeadCheck {
    /// Longest request target (path and query) accepted.
    static let maximumTarget = 8 << 10
    /// Longest header line (name, `: `, value) accepted.
    static let maximumHeaderLine = 8 << 10
    /// Largest header section (every line with its CRLF) accepted.
    static let maximumHeaderSection = 16 << 10

    /// The answer to a head the gateway refuses, or nil when it may go upstream.
    static func refusal(for head: HTTPRequestHead) -> GeminiErrorResponse? {
        if head.uri.utf8.count > maximumTarget { return .targetTooLong(limit: maximumTarget) }
        if hasControlCharacter(head.uri) { return .controlCharacterInTarget }
        var section = 0
        for (name, value) in head.headers {
            let line = name.utf8.count + 2 + value.utf8.count
            if line > maximumHeaderLine { return .headersTooLarge(line: maximumHeaderLine, section: maximumHeaderSection) }
            section += line + 2
        }
        if section > maximumHeaderSection { return .headersTooLarge(line: maximumHeaderLine, section: maximumHeaderSection) }
        return nil
    }

    /// Whether the target holds a CR, LF or NUL, as sent or percent-encoded (`%0d`, `%0A`,
    /// `%00`): decoded by a relay or by Google, such a byte would split or cut the request.
    static func hasControlCharacter(_ target: String) -> Bool {
        var target = target  // a native string: `withUTF8` reads it in place
        return target.withUTF8 { bytes in
            var index = 0
            while index < bytes.count {
                switch bytes[index] {
                case 0x00, 0x0A, 0x0D:
                    return true
                case UInt8(ascii: "%") where index + 2 < bytes.count && bytes[index + 1] == UInt8(ascii: "0"):
                    switch bytes[index + 2] | 0x20 {
                    case UInt8(ascii: "0"), UInt8(ascii: "a"), UInt8(ascii: "d"): return true
                    default: index += 2
                    }
                default:
                    break
                }
                index += 1
            }
            return false
        }
    }
}

extension GeminiErrorResponse {
    static func targetTooLong(limit: Int) -> GeminiErrorResponse {
        GeminiErrorResponse(.uriTooLong, "INVALID_ARGUMENT", "The request's path and query are longer than the gateway accepts: \(limit) bytes.")
    }

    static let controlCharacterInTarget = GeminiErrorResponse(
        .badRequest, "INVALID_ARGUMENT", "The request's path or query holds a control character (CR, LF or NUL, also percent-encoded)."
    )

    static func headersTooLarge(line: Int, section: Int) -> GeminiErrorResponse {
        GeminiErrorResponse(
            .requestHeaderFieldsTooLarge, "INVALID_ARGUMENT",
            "The request's headers are larger than the gateway accepts: \(line) bytes a line, \(section) bytes in all."
        )
    }
}
