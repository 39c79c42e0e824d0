/// Which request targets the gateway proxies, read byte by byte (it runs on every request).
/// Pure: no I/O, tested alone (`ProxiedTargetTests`).
public enum ProxiedTarget {
    /// Whether the proxy serves this request target: its path starts with one of the prefixes
    /// (each ending in `/`, so a query never matters) and cannot climb out of an upstream's path
    /// prefix. Read byte by byte: it runs on every request.
    public static func isProxied(_ target: String) -> Bool {
        var target = target  // a native string: `withUTF8` reads it in place
        return target.withUTF8 { bytes in
            proxiedPrefixes.contains { bytes.starts(with: $0.utf8) } && !mayClimbOut(bytes)
        }
    }

    /// Whether the target could name something outside an upstream's path prefix once the
    /// upstream resolves it: `https://relay/gemini` + `/v1beta/../../admin` is the relay's
    /// `/admin`. True for a `.` or `..` segment in the path, also written with `%2e` or followed
    /// by `;params` (`..;`, as some servers read it); for a slash or backslash written as `%2f`,
    /// `%5c` or `\` in the path (servers that decode it first see segments there); and for a `#`
    /// anywhere (no client sends a fragment, and it would go upstream as it is). No Gemini path
    /// has any of these; such a target gets the 404 of unknown paths.
    public static func mayClimbOut(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var dots = 0  // dots in the current segment so far; -1 once it has anything else
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "/"):
                if dots == 1 || dots == 2 { return true }
                dots = 0
            case UInt8(ascii: "?"):
                if dots == 1 || dots == 2 { return true }
                return UnsafeBufferPointer(rebasing: bytes[index...]).contains(UInt8(ascii: "#"))
            case UInt8(ascii: "#"), UInt8(ascii: "\\"):
                return true
            case UInt8(ascii: ";"):
                if dots == 1 || dots == 2 { return true }
                dots = -1
            case UInt8(ascii: "."):
                if dots >= 0 { dots += 1 }
            case UInt8(ascii: "%") where index + 2 < bytes.count:
                let escaped = (bytes[index + 1], bytes[index + 2] | 0x20)
                if escaped == (UInt8(ascii: "2"), UInt8(ascii: "f")) || escaped == (UInt8(ascii: "5"), UInt8(ascii: "c")) { return true }
                if escaped == (UInt8(ascii: "2"), UInt8(ascii: "e")) {
                    if dots >= 0 { dots += 1 }
                } else {
                    dots = -1
                }
                index += 2
            default:
                dots = -1
            }
            index += 1
        }
        return dots == 1 || dots == 2
    }

    private static let proxiedPrefixes = [
        "/v1/", "/v1beta/", "/v1alpha/", "/upload/v1beta/", "/upload/v1/", "/download/v1beta/", "/download/v1/",
    ]
}
