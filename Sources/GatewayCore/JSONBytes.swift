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

// MARK: - Plain JSON

extension JSONBytes.Cursor {
    // Reading *plain* JSON: strict JSON whose strings are printable ASCII without escapes and
    // whose numbers are integers of at most 18 digits. It is what almost every API sends for
    // counters; each method says "not plain" (nil, false) at anything else, so that a caller can
    // decide fast where the input is plain and hand the rest to a full JSON parser. Every plain
    // document is valid JSON; not every "not plain" one is invalid.

    /// Deeper nesting is "not plain" (full parsers have limits of their own).
    static let maximumPlainDepth = 64

    var isAtEnd: Bool { index >= buffer.count }

    /// A plain string at the cursor: returns the range of its bytes, without the quotes.
    mutating func readPlainString() -> Range<Int>? {
        guard consume(JSONBytes.quote) else { return nil }
        let start = index
        while index < buffer.count {
            let byte = buffer[index]
            if byte == JSONBytes.quote {
                index += 1
                return start..<(index - 1)
            }
            guard byte >= 0x20, byte < 0x7F, byte != JSONBytes.backslash else { return nil }
            index += 1
        }
        return nil
    }

    /// Whether the bytes of `range` are `text` (ASCII).
    func bytes(_ range: Range<Int>, are text: StaticString) -> Bool {
        range.count == text.utf8CodeUnitCount
            && (range.isEmpty || memcmp(buffer.baseAddress! + range.lowerBound, text.utf8Start, range.count) == 0)
    }

    /// A plain integer at the cursor: `-?(0|[1-9][0-9]*)`, at most 18 digits, not followed by a
    /// fraction or an exponent.
    mutating func readPlainInteger() -> Int? {
        let negative = consume(UInt8(ascii: "-"))
        let start = index
        var value = 0
        while index < buffer.count, buffer[index] &- UInt8(ascii: "0") < 10 {
            value = value &* 10 &+ Int(buffer[index] &- UInt8(ascii: "0"))
            index += 1
        }
        let digits = index - start
        guard digits > 0, digits <= 18, digits == 1 || buffer[start] != UInt8(ascii: "0") else { return nil }
        if let next = peek(), next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            return nil
        }
        return negative ? -value : value
    }

    /// `true`, `false` or `null` at the cursor.
    mutating func readLiteral() -> Bool {
        for literal: StaticString in ["true", "false", "null"]
        where bytes(index..<min(index + literal.utf8CodeUnitCount, buffer.count), are: literal) {
            index += literal.utf8CodeUnitCount
            return true
        }
        return false
    }

    /// Skips a plain value at the cursor (`depth`: the containers it is in). False if it is not
    /// plain.
    mutating func skipPlainValue(depth: Int) -> Bool {
        guard let first = peek() else { return false }
        switch first {
        case JSONBytes.quote:
            return readPlainString() != nil
        case JSONBytes.openBrace:
            guard depth < Self.maximumPlainDepth else { return false }
            return readPlainObject { cursor, _ in cursor.skipPlainValue(depth: depth + 1) }
        case JSONBytes.openBracket:
            guard depth < Self.maximumPlainDepth else { return false }
            return readPlainArray { cursor in cursor.skipPlainValue(depth: depth + 1) }
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            return readLiteral()
        default:
            return readPlainInteger() != nil
        }
    }

    /// Reads a plain array at the cursor, calling `element` with the cursor at the start of each
    /// element (which it must read or skip). False if the array is not plain or `element` returned
    /// false.
    mutating func readPlainArray(_ element: (inout JSONBytes.Cursor) -> Bool) -> Bool {
        guard consume(JSONBytes.openBracket) else { return false }
        skipWhitespace()
        if consume(JSONBytes.closeBracket) { return true }
        while true {
            guard element(&self) else { return false }
            skipWhitespace()
            if consume(JSONBytes.closeBracket) { return true }
            guard consume(JSONBytes.comma) else { return false }
            skipWhitespace()
        }
    }

    /// Reads a plain object at the cursor, calling `member` with the range of each key (the
    /// cursor at the start of its value, which `member` must read or skip). False if the object
    /// is not plain or `member` returned false.
    mutating func readPlainObject(_ member: (inout JSONBytes.Cursor, Range<Int>) -> Bool) -> Bool {
        guard consume(JSONBytes.openBrace) else { return false }
        skipWhitespace()
        if consume(JSONBytes.closeBrace) { return true }
        while true {
            guard let key = readPlainString() else { return false }
            skipWhitespace()
            guard consume(JSONBytes.colon) else { return false }
            skipWhitespace()
            guard member(&self, key) else { return false }
            skipWhitespace()
            if consume(JSONBytes.closeBrace) { return true }
            guard consume(JSONBytes.comma) else { return false }
            skipWhitespace()
        }
    }
}
