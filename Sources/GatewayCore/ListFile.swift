import Foundation

// MARK: - The old proxy's list files: api_keys.txt and proxy_urls.txt

/// Parses the plain-text list files the old proxy used: one entry a line, blank lines and
/// `#` comments skipped, whitespace trimmed, CRLF and a UTF-8 byte-order mark accepted.
///
/// A bad line never stops the rest: it is reported with its line number and the reason.
public enum ListFile {
    /// The longest line that is looked at; a longer one is rejected without being decoded.
    public static let maximumLineBytes = 4096

    /// A line that was not accepted.
    public struct Rejected: Sendable, Equatable, Codable {
        public let line: Int
        public let reason: String

        public init(line: Int, reason: String) {
            self.line = line
            self.reason = reason
        }
    }

    /// A key line: the secret and an optional project label.
    public struct KeyEntry: Sendable, Equatable {
        public let line: Int
        public let secret: String
        public let project: String?

        public init(line: Int, secret: String, project: String?) {
            self.line = line
            self.secret = secret
            self.project = project
        }
    }

    /// An upstream line: the normalised base URL.
    public struct UpstreamEntry: Sendable, Equatable {
        public let line: Int
        public let baseURL: String

        public init(line: Int, baseURL: String) {
            self.line = line
            self.baseURL = baseURL
        }
    }

    /// What a file yielded: entries in file order (first occurrence wins), lines rejected, and
    /// how many lines repeated an earlier entry of the same file.
    public struct Parsed<Entry: Sendable>: Sendable {
        public var entries: [Entry] = []
        public var rejected: [Rejected] = []
        public var duplicatesInFile = 0

        public init() {}
    }

    // MARK: Keys

    /// Parses `api_keys.txt`: `KEY`, `KEY LABEL` or `KEY,LABEL` per line.
    public static func parseKeys(_ data: some Collection<UInt8>) -> Parsed<KeyEntry> {
        var parsed = Parsed<KeyEntry>()
        var seen = Set<String>()
        parsed.rejected = forEachLine(data) { number, text in
            switch parseKeyLine(text) {
            case .failure(let reason):
                return reason.message
            case .success(let (secret, project)):
                if seen.insert(secret).inserted {
                    parsed.entries.append(KeyEntry(line: number, secret: secret, project: project))
                } else {
                    parsed.duplicatesInFile += 1
                }
                return nil
            }
        }
        return parsed
    }

    /// Validates a key as given on the command line or in a file.
    public static func validateKey(_ key: String) -> Result<String, LineError> {
        guard (8...256).contains(key.utf8.count) else {
            return .failure(LineError("a key is 8 to 256 characters long, this one is \(key.utf8.count)"))
        }
        if let bad = key.unicodeScalars.first(where: { !isKeyCharacter($0) }) {
            return .failure(LineError("a key has only letters, digits, '.', '_' and '-', this one has \(describe(bad))"))
        }
        return .success(key)
    }

    /// Validates a project label.
    public static func validateProject(_ label: String) -> Result<String, LineError> {
        guard (1...100).contains(label.utf8.count) else {
            return .failure(LineError("a project label is 1 to 100 characters long"))
        }
        if let bad = label.unicodeScalars.first(where: { !isKeyCharacter($0) && !":/@".unicodeScalars.contains($0) }) {
            return .failure(LineError("a project label has only letters, digits and . _ - : / @, this one has \(describe(bad))"))
        }
        return .success(label)
    }

    private static func parseKeyLine(_ text: String) -> Result<(String, String?), LineError> {
        let fields = text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count <= 2 else {
            return .failure(LineError("expected a key and at most one project label, found \(fields.count) fields"))
        }
        let secret: String
        switch validateKey(fields[0]) {
        case .failure(let error): return .failure(error)
        case .success(let key): secret = key
        }
        guard fields.count == 2 else { return .success((secret, nil)) }
        return validateProject(fields[1]).map { (secret, $0) }
    }

    private static func isKeyCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": return true
        default: return false
        }
    }

    // MARK: Upstreams

    /// Parses `proxy_urls.txt`: one base URL per line.
    public static func parseUpstreams(_ data: some Collection<UInt8>) -> Parsed<UpstreamEntry> {
        var parsed = Parsed<UpstreamEntry>()
        var seen = Set<String>()
        parsed.rejected = forEachLine(data) { number, text in
            switch normalizeUpstreamURL(text) {
            case .failure(let reason):
                return reason.message
            case .success(let url):
                if seen.insert(url).inserted {
                    parsed.entries.append(UpstreamEntry(line: number, baseURL: url))
                } else {
                    parsed.duplicatesInFile += 1
                }
                return nil
            }
        }
        return parsed
    }

    /// Checks an upstream base URL and brings it to one canonical form: scheme and host in lower
    /// case, no trailing slash. http or https, a host, no credentials, no query, no fragment.
    public static func normalizeUpstreamURL(_ text: String) -> Result<String, LineError> {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.unicodeScalars.contains(where: isInvisible) else {
            return .failure(LineError("a URL has no spaces or control characters"))
        }
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased() else {
            return .failure(LineError("not a URL (expected http://host or https://host)"))
        }
        guard scheme == "http" || scheme == "https" else {
            return .failure(LineError("scheme '\(scheme)' is not supported (use http or https)"))
        }
        // Encoded: percent-escapes kept as written (`host` decodes them: `a%0d%0a.example`
        // would become a line break, `exa%2Fmple.com` another host), other names in punycode
        // (`bücher.example` and `xn--bcher-kva.example` are the same host).
        guard let host = components.encodedHost, !host.isEmpty else {
            return .failure(LineError("the URL has no host"))
        }
        // A host name has the characters of a key (letters, digits, '.', '-', '_').
        guard host.unicodeScalars.allSatisfy(isKeyCharacter) || isIPv6Literal(host) else {
            return .failure(LineError("the host '\(host)' is not a host name (letters, digits, '.', '-', '_', or a name in punycode) or an [IPv6] address"))
        }
        guard components.user == nil, components.password == nil else {
            return .failure(LineError("credentials in the URL are not supported"))
        }
        guard components.query == nil else {
            return .failure(LineError("the URL has a query ('?...'); give the base URL only"))
        }
        guard components.fragment == nil else {
            return .failure(LineError("the URL has a fragment ('#...'); give the base URL only"))
        }
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        let port = components.port.map { ":\($0)" } ?? ""
        return .success("\(scheme)://\(host.lowercased())\(port)\(path)")
    }

    /// Spaces of any kind, control characters (C0, DEL, C1) and format characters (bidi
    /// overrides, zero-width ones): nothing a URL has, and nothing to print raw to a terminal.
    public static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .spaceSeparator, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }

    /// `[` hex digits, `:` and `.` (an embedded IPv4 address) `]`; no zone id.
    private static func isIPv6Literal(_ host: String) -> Bool {
        let bytes = Array(host.utf8)
        guard bytes.count > 2, bytes.first == UInt8(ascii: "["), bytes.last == UInt8(ascii: "]") else { return false }
        return bytes.dropFirst().dropLast().allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"),
                UInt8(ascii: ":"), UInt8(ascii: "."):
                return true
            default:
                return false
            }
        }
    }

    // MARK: Lines

    /// Why a line or a value was not accepted.
    public struct LineError: Error, Sendable, Equatable {
        public let message: String
        public init(_ message: String) { self.message = message }
    }

    /// Calls `body` with the 1-based number and trimmed text of each line that is neither blank
    /// nor a comment; `body` returns why it rejects the line, or nil. Lines that are too long, not
    /// UTF-8 or hold control characters are rejected without calling it. Returns the rejections.
    private static func forEachLine(
        _ data: some Collection<UInt8>,
        _ body: (Int, String) -> String?
    ) -> [Rejected] {
        var rejected: [Rejected] = []
        let bytes = Array(data)
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var number = 0
        while start < bytes.count {
            number += 1
            let newline = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            var end = newline
            if end > start, bytes[end - 1] == 0x0D { end -= 1 }
            defer { start = newline + 1 }

            let length = end - start
            if length > maximumLineBytes {
                rejected.append(Rejected(line: number, reason: "line is \(length) bytes long (at most \(maximumLineBytes))"))
                continue
            }
            let raw = bytes[start..<end]
            if let index = raw.firstIndex(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
                rejected.append(Rejected(
                    line: number,
                    reason: "contains a control character (byte 0x\(hexString([raw[index]])) at column \(index - start + 1))"
                ))
                continue
            }
            guard let decoded = String(validating: raw, as: UTF8.self) else {
                rejected.append(Rejected(line: number, reason: "is not valid UTF-8 text (binary data?)"))
                continue
            }
            var text = decoded
            if let hash = commentStart(text) { text = String(text[..<hash]) }
            text = text.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if let reason = body(number, text) {
                rejected.append(Rejected(line: number, reason: reason))
            }
        }
        return rejected
    }

    /// A comment starts with `#` at the start of a line or after white space, so that a `#` inside
    /// a URL is a fragment (and rejected as such), not a comment.
    private static func commentStart(_ text: String) -> String.Index? {
        var previous: Character = " "
        for index in text.indices {
            if text[index] == "#", previous == " " || previous == "\t" { return index }
            previous = text[index]
        }
        return nil
    }

    private static func describe(_ scalar: Unicode.Scalar) -> String {
        scalar.value < 0x80 && scalar.value >= 0x20
            ? "'\(Character(scalar))'"
            : "U+" + String(scalar.value, radix: 16, uppercase: true)
    }
}
