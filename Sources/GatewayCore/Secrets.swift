import Crypto

// MARK: - Secrets: how keys and tokens are shown, hashed and generated

/// What may be shown of a Gemini API key or a gateway token: never the whole secret.
public enum Secret {
    /// A stable identifier of a key: the first 12 hex digits of its SHA-256.
    /// Unique enough for hundreds of thousands of keys, and reveals nothing of the key.
    public static func fingerprint(_ secret: String) -> String {
        String(sha256Hex(secret).prefix(12))
    }

    /// The last four characters, as operators recognise keys in Google's console (`…a1B2`).
    public static func tail(_ secret: String) -> String {
        String(secret.suffix(4))
    }

    /// A redacted rendering for logs and messages: `…a1B2`.
    public static func redacted(_ secret: String) -> String {
        "…" + tail(secret)
    }

    /// The stored form of a gateway token: 64 hex digits of SHA-256.
    public static func tokenHash(_ token: String) -> String {
        sha256Hex(token)
    }

    /// The SHA-256 of the UTF-8 bytes of `string`, as 64 lowercase hex digits.
    public static func sha256Hex(_ string: String) -> String {
        hexString(Crypto.SHA256.hash(data: Array(string.utf8)))
    }

    /// A fresh gateway token: `gw-` and 40 characters from a cryptographically secure source
    /// (`SystemRandomNumberGenerator` reads the kernel's CSPRNG on Linux).
    public static func newToken() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        var token = "gw-"
        for _ in 0..<40 {
            token.append(alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))])
        }
        return token
    }

    /// Compares two secrets in time that depends only on their lengths, not on where they differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}

/// Lowercase hex of `bytes`.
public func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
