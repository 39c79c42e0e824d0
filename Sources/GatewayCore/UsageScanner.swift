// MARK: - UsageScanner

/// Finds the last token usage in a response body fed chunk by chunk, as it streams through.
///
/// Understands Gemini SSE (`data: {...}` lines, LF or CRLF framing, events split across chunks at
/// any byte, lines of any length), the non-SSE stream (a JSON array of response objects, element
/// by element), a plain JSON response, and the OpenAI-compatible `usage` object (plain or SSE).
///
/// Cheap per chunk and bounded in memory: every byte is looked at once by a small state machine
/// that tracks JSON nesting and strings; nothing is buffered except the bytes of the
/// `usageMetadata`/`usage` object being read (at most ``maximumCapture``), which is decoded when it
/// closes. Only keys of a response object itself count (not, say, a `usageMetadata` key inside a
/// function call's arguments). Usage is a running total in Gemini streams: the last complete one
/// wins, nothing is summed.
public struct UsageScanner: Sendable {
    // MARK: Format

    /// How the body is framed.
    public enum Format: Sendable, Hashable {
        /// Decide from the first non-whitespace byte: `{` or `[` is JSON, anything else SSE.
        case automatic
        /// Server-sent events whose `data:` lines carry JSON.
        case sse
        /// JSON: one object, an array of objects, or objects one after another.
        case json
    }

    /// The largest usage object kept for decoding; larger ones are skipped.
    public static let maximumCapture = 1 << 20

    // MARK: State

    private var format: Format
    private var lines = SSELines()
    private var tokenizer = ResponseTokenizer()

    /// The last complete usage seen so far.
    public var last: UsageMetadata? { tokenizer.last }

    /// Whether a response object carried an `error` object (an error reported inside a 200
    /// stream: the answer is not complete).
    public var sawErrorEvent: Bool { tokenizer.sawError }

    /// Whether a usage object was skipped for exceeding ``maximumCapture``.
    public var skippedOversizedUsage: Bool { tokenizer.skippedOversized }

    /// A scanner for a body framed as `format`.
    public init(format: Format = .automatic) {
        self.format = format
    }

    // MARK: Feeding

    /// Scans the next chunk of the body.
    public mutating func feed(_ chunk: some Collection<UInt8>) {
        let handled: Void? = chunk.withContiguousStorageIfAvailable { buffer in
            feed(buffer: buffer)
        }
        if handled == nil {
            Array(chunk).withUnsafeBufferPointer { feed(buffer: $0) }
        }
    }

    private mutating func feed(buffer: UnsafeBufferPointer<UInt8>) {
        var start = 0
        if format == .automatic {
            while start < buffer.count, JSONBytes.isWhitespace(buffer[start]) { start += 1 }
            guard start < buffer.count else { return }
            let first = buffer[start]
            format = first == JSONBytes.openBrace || first == JSONBytes.openBracket ? .json : .sse
        }
        // Most bytes are inside strings (text, base64 data) and change nothing but the position:
        // those runs are skipped in a tight loop.
        var index = start
        if format == .json {
            while index < buffer.count {
                if tokenizer.isInPlainString {
                    index = Self.endOfPlainRun(buffer, from: index)
                    if index == buffer.count { break }
                }
                tokenizer.consume(buffer[index])
                index += 1
            }
        } else {
            while index < buffer.count {
                if lines.isInDataValue, tokenizer.isInPlainString {
                    index = Self.endOfPlainRun(buffer, from: index)
                    if index == buffer.count { break }
                }
                lines.consume(buffer[index], into: &tokenizer)
                index += 1
            }
        }
    }

    /// The index of the first quote, backslash, CR or LF at or after `start` (or the end).
    @inline(__always)
    private static func endOfPlainRun(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        var index = start
        while index < buffer.count {
            let byte = buffer[index]
            if byte == JSONBytes.quote || byte == JSONBytes.backslash || byte == JSONBytes.lf || byte == JSONBytes.cr {
                return index
            }
            index += 1
        }
        return index
    }
}

// MARK: - SSELines

/// The SSE line layer: passes the values of `data:` lines to the JSON tokenizer and resets it at
/// each event boundary (a blank line). Handles CR, LF and CRLF line ends.
private struct SSELines: Sendable {
    enum State: Sendable {
        case lineStart
        case fieldName
        case value
        case ignored
    }

    private static let data: [UInt8] = Array("data".utf8)

    var state = State.lineStart
    var nameLength = 0
    var nameIsData = true
    var isDataLine = false
    var skipSpace = false
    var afterCR = false

    /// Inside the value of a `data:` line, past its optional leading space.
    var isInDataValue: Bool { state == .value && isDataLine && !skipSpace }

    @inline(__always)
    mutating func consume(_ byte: UInt8, into tokenizer: inout ResponseTokenizer) {
        if byte == JSONBytes.lf || byte == JSONBytes.cr {
            if byte == JSONBytes.lf, afterCR {
                afterCR = false
                return
            }
            afterCR = byte == JSONBytes.cr
            endLine(&tokenizer)
            return
        }
        afterCR = false
        switch state {
        case .value:
            if skipSpace {
                skipSpace = false
                if byte == UInt8(ascii: " ") { return }
            }
            if isDataLine { tokenizer.consume(byte) }
        case .lineStart:
            if byte == JSONBytes.colon {
                state = .ignored  // a comment line
                return
            }
            state = .fieldName
            nameLength = 0
            nameIsData = true
            consumeName(byte)
        case .fieldName:
            consumeName(byte)
        case .ignored:
            break
        }
    }

    private mutating func consumeName(_ byte: UInt8) {
        if byte == JSONBytes.colon {
            isDataLine = nameIsData && nameLength == Self.data.count
            skipSpace = true
            state = .value
            return
        }
        if nameLength >= Self.data.count || Self.data[nameLength] != byte { nameIsData = false }
        nameLength += 1
    }

    private mutating func endLine(_ tokenizer: inout ResponseTokenizer) {
        switch state {
        case .lineStart:
            tokenizer.reset()  // blank line: the event is over
        case .value where isDataLine:
            tokenizer.consume(JSONBytes.lf)  // data lines of one event are joined by a newline
        default:
            break
        }
        state = .lineStart
        isDataLine = false
    }
}

// MARK: - ResponseTokenizer

/// A streaming JSON tokenizer that watches the keys of response objects (top-level objects, or
/// the objects of a top-level array) for `usageMetadata`, `usage` and `error`.
private struct ResponseTokenizer: Sendable {
    enum Phase: Sendable {
        case idle
        case expectKey
        case inKey
        case expectColon
        case expectValue
    }

    enum KeyKind: Sendable {
        case none
        case usageMetadata
        case usage
        case error
    }

    private static let maximumKeyLength = 16

    var last: UsageMetadata?
    var sawError = false
    var skippedOversized = false

    private var depth = 0
    private var inString = false
    private var escaped = false
    /// Depth at which response objects' members live: 1 for a top-level object, 2 inside a
    /// top-level array; 0 between top-level values.
    private var responseDepth = 0
    private var inResponseObject = false
    private var phase = Phase.idle
    private var key: [UInt8] = []
    private var keyKind = KeyKind.none
    private var capturing = false
    private var capture: [UInt8] = []
    private var captureDepth = 0
    private var captureKind = KeyKind.none

    /// Inside a string whose bytes matter to nobody (not a key being read, not a captured usage
    /// object, not right after a backslash).
    var isInPlainString: Bool { inString && !escaped && !capturing && phase != .inKey }

    mutating func reset() {
        depth = 0
        inString = false
        escaped = false
        responseDepth = 0
        inResponseObject = false
        phase = .idle
        keyKind = .none
        capturing = false
        capture.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    mutating func consume(_ byte: UInt8) {
        if capturing {
            if capture.count < UsageScanner.maximumCapture {
                capture.append(byte)
            } else {
                capturing = false
                capture.removeAll(keepingCapacity: false)
                skippedOversized = true
            }
        }
        if inString {
            if escaped {
                escaped = false
                if phase == .inKey { appendKey(byte) }
            } else if byte == JSONBytes.backslash {
                escaped = true
                if phase == .inKey { appendKey(byte) }
            } else if byte == JSONBytes.quote {
                inString = false
                if phase == .inKey { finishKey() }
            } else if phase == .inKey {
                appendKey(byte)
            }
            return
        }
        let atResponseLevel = inResponseObject && depth == responseDepth
        switch byte {
        case JSONBytes.quote:
            inString = true
            if atResponseLevel {
                if phase == .expectKey {
                    phase = .inKey
                    key.removeAll(keepingCapacity: true)
                } else if phase == .expectValue {
                    valueStarts(with: byte)
                }
            }
        case JSONBytes.openBrace, JSONBytes.openBracket:
            if depth == 0 { responseDepth = byte == JSONBytes.openBrace ? 1 : 2 }
            if atResponseLevel, phase == .expectValue { valueStarts(with: byte) }
            depth += 1
            if depth == responseDepth {
                inResponseObject = byte == JSONBytes.openBrace
                phase = inResponseObject ? .expectKey : .idle
            }
        case JSONBytes.closeBrace, JSONBytes.closeBracket:
            if depth > 0 { depth -= 1 }
            if capturing, depth == captureDepth { finishCapture() }
            if depth < responseDepth {
                inResponseObject = false
                phase = .idle
            }
            if depth == 0 { responseDepth = 0 }
        case JSONBytes.comma:
            if atResponseLevel { phase = .expectKey }
        case JSONBytes.colon:
            if atResponseLevel, phase == .expectColon { phase = .expectValue }
        case 0x20, 0x09, 0x0A, 0x0D:
            break
        default:
            if atResponseLevel, phase == .expectValue { valueStarts(with: byte) }
        }
    }

    // MARK: Keys and values

    @inline(__always)
    private mutating func appendKey(_ byte: UInt8) {
        if key.count <= Self.maximumKeyLength { key.append(byte) }
    }

    private mutating func finishKey() {
        switch key.count {
        case 13 where key.elementsEqual("usageMetadata".utf8): keyKind = .usageMetadata
        case 5 where key.elementsEqual("usage".utf8): keyKind = .usage
        case 5 where key.elementsEqual("error".utf8): keyKind = .error
        default: keyKind = .none
        }
        phase = .expectColon
    }

    private mutating func valueStarts(with byte: UInt8) {
        if byte == JSONBytes.openBrace {
            switch keyKind {
            case .usageMetadata, .usage:
                capturing = true
                capture.removeAll(keepingCapacity: true)
                capture.append(byte)
                captureDepth = depth
                captureKind = keyKind
            case .error:
                sawError = true
            case .none:
                break
            }
        }
        keyKind = .none
        phase = .idle
    }

    private mutating func finishCapture() {
        capturing = false
        if let usage = UsageMetadata.decode(capture, openAI: captureKind == .usage) { last = usage }
        capture.removeAll(keepingCapacity: true)
    }
}
