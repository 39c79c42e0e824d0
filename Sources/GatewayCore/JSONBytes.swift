import Foundation

// MARK: - JSONBytes

/// Small, allocation-light helpers for looking at raw JSON bytes without decoding a whole document.
///
/// They never trap on malformed input: anything unexpected yields `nil`.
enum JSONBytes {
    // MARK: ASCII

    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")

    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    // MARK: Foundation values

    /// Whether a `JSONSerialization` value is a JSON boolean. (`value is Bool` is also true for the
    /// numbers 0 and 1 on Linux, so the boxed number's type code is checked instead.)
    static func isBoolean(_ value: Any?) -> Bool {
        guard let number = value as? NSNumber else { return value is Bool }
        return String(cString: number.objCType) == "c"
    }

    // MARK: Top-level scalar lookup

    /// The raw bytes of the scalar value (string with its quotes, number, `true`, `false`, `null`)
    /// of `key` in the top-level JSON object of `bytes`.
    ///
    /// Returns `nil` when the document is not an object, the key is absent, or its value is an
    /// object or an array. Runs in one pass and stops at the key; nested values are skipped
    /// without being decoded, so a large `messages` array costs one linear scan at most.
    static func topLevelScalar(forKey key: String, in bytes: [UInt8]) -> [UInt8]? {
        let keyBytes = Array(key.utf8)
        return bytes.withUnsafeBufferPointer { buffer -> [UInt8]? in
            var cursor = Cursor(buffer: buffer)
            cursor.skipWhitespace()
            guard cursor.consume(openBrace) else { return nil }
            while true {
                cursor.skipWhitespace()
                guard let byte = cursor.peek() else { return nil }
                if byte == closeBrace { return nil }
                guard byte == quote, let keyRange = cursor.skipString() else { return nil }
                // keyRange includes the quotes.
                let matches = keyRange.count == keyBytes.count + 2
                    && zip(buffer[(keyRange.lowerBound + 1)..<(keyRange.upperBound - 1)], keyBytes)
                        .allSatisfy { $0 == $1 }
                cursor.skipWhitespace()
                guard cursor.consume(colon) else { return nil }
                cursor.skipWhitespace()
                guard let valueStart = cursor.peek() else { return nil }
                if matches {
                    if valueStart == openBrace || valueStart == openBracket { return nil }
                    guard let range = cursor.skipValue() else { return nil }
                    return Array(buffer[range])
                }
                guard cursor.skipValue() != nil else { return nil }
                cursor.skipWhitespace()
                if cursor.consume(comma) { continue }
                return nil
            }
        }
    }

    /// Decodes a raw JSON string token (with its quotes) into a `String`.
    static func decodeString(_ raw: [UInt8]) -> String? {
        guard raw.count >= 2, raw.first == quote, raw.last == quote else { return nil }
        let inner = raw[1..<(raw.count - 1)]
        if !inner.contains(backslash) {
            return String(decoding: inner, as: UTF8.self)
        }
        return (try? JSONSerialization.jsonObject(with: Data(raw), options: .fragmentsAllowed)) as? String
    }

    // MARK: Cursor

    /// A forward-only reader over a byte buffer that can skip JSON values.
    struct Cursor {
        let buffer: UnsafeBufferPointer<UInt8>
        var index = 0

        init(buffer: UnsafeBufferPointer<UInt8>) {
            self.buffer = buffer
        }

        func peek() -> UInt8? {
            index < buffer.count ? buffer[index] : nil
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            guard index < buffer.count, buffer[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func skipWhitespace() {
            while index < buffer.count, JSONBytes.isWhitespace(buffer[index]) { index += 1 }
        }

        /// Skips a string starting at the cursor; returns its range including the quotes.
        mutating func skipString() -> Range<Int>? {
            let start = index
            guard consume(JSONBytes.quote) else { return nil }
            while index < buffer.count {
                let byte = buffer[index]
                index += 1
                if byte == JSONBytes.backslash {
                    index += 1
                } else if byte == JSONBytes.quote {
                    return start..<index
                }
            }
            return nil
        }

        /// Skips any JSON value starting at the cursor; returns its range.
        mutating func skipValue() -> Range<Int>? {
            let start = index
            guard let first = peek() else { return nil }
            if first == JSONBytes.quote {
                return skipString()
            }
            if first == JSONBytes.openBrace || first == JSONBytes.openBracket {
                var depth = 0
                while index < buffer.count {
                    let byte = buffer[index]
                    if byte == JSONBytes.quote {
                        guard skipString() != nil else { return nil }
                        continue
                    }
                    index += 1
                    if byte == JSONBytes.openBrace || byte == JSONBytes.openBracket {
                        depth += 1
                    } else if byte == JSONBytes.closeBrace || byte == JSONBytes.closeBracket {
                        depth -= 1
                        if depth == 0 { return start..<index }
                    }
                }
                return nil
            }
            // A literal: number, true, false, null.
            while index < buffer.count {
                let byte = buffer[index]
                if byte == JSONBytes.comma || byte == JSONBytes.closeBrace || byte == JSONBytes.closeBracket
                    || JSONBytes.isWhitespace(byte)
                {
                    break
                }
                index += 1
            }
            return index > start ? start..<index : nil
        }
    }
}
