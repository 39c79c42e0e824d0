// MARK: - UsageScanner

/// Finds the last token usage in a response body fed chunk by chunk, as it streams through.
///
/// Understands Gemini SSE (`data: {...}` lines, LF or CRLF framing, events split across chunks at
/// any byte, lines of any length), the non-SSE stream (a JSON array of response objects, element
/// by element), a plain JSON response, and the OpenAI-compatible `usage` object (plain or SSE).
///
/// Cheap per chunk and bounded in memory: a small state machine tracks JSON nesting and strings,
/// skipping the runs of bytes that change nothing in tight loops over a byte table; nothing is
/// buffered except the part of a `usageMetadata`/`usage` object that goes on in the next chunk (at
/// most ``maximumCapture``). The object is read where it lies when it closes: byte by byte when it
/// is plain JSON (integer counts, ASCII strings without escapes), with `JSONSerialization`
/// otherwise. Only keys of a response object itself count (not, say, a `usageMetadata` key inside a
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
    @inlinable
    public mutating func feed(_ chunk: some Collection<UInt8>) {
        // Inlinable, so that the caller's collection (a `ByteBufferView`, an array) is specialised
        // there and its bytes arrive here as one buffer, without a generic thunk per chunk.
        let handled: Void? = chunk.withContiguousStorageIfAvailable { buffer in
            feed(bytes: buffer)
        }
        if handled == nil {
            Array(chunk).withUnsafeBufferPointer { feed(bytes: $0) }
        }
    }

    /// Scans the next chunk of the body, in one buffer.
    @usableFromInline
    mutating func feed(bytes buffer: UnsafeBufferPointer<UInt8>) {
        var start = 0
        if format == .automatic {
            while start < buffer.count, JSONBytes.isWhitespace(buffer[start]) { start += 1 }
            guard start < buffer.count else { return }
            let first = buffer[start]
            format = first == JSONBytes.openBrace || first == JSONBytes.openBracket ? .json : .sse
        }
        ByteClass.table.withUnsafeBufferPointer { table in
            if format == .json {
                _ = tokenizer.consume(buffer, from: start, stoppingAtLineEnds: false, table: table)
                return
            }
            // SSE: the line layer looks at every byte outside the values of fields; a value is
            // handed over whole, up to its line end.
            var index = start
            while index < buffer.count {
                if lines.isInDataValue {
                    index = tokenizer.consume(buffer, from: index, stoppingAtLineEnds: true, table: table)
                    lines.valueContinues()
                    if index == buffer.count { break }
                } else if lines.isInIgnoredValue {
                    index = ByteClass.next(ByteClass.lineEnd, in: buffer, from: index, table: table)
                    lines.valueContinues()
                    if index == buffer.count { break }
                }
                lines.consume(buffer[index], into: &tokenizer)
                index += 1
            }
        }
    }
}

// MARK: - ByteClass

/// What a byte means to the scanner's fast loops, as bit flags in a table of all 256 bytes: each
/// loop skips every byte that has none of the flags it stops at.
enum ByteClass {
    /// A quote or a backslash: the end of a run of string bytes.
    static let stringStop: UInt8 = 1
    /// `"`, `{`, `}`, `[`, `]`, `,`, `:`: what matters between the members of a response object.
    static let responseStop: UInt8 = 2
    /// `"`, `{`, `}`, `[`, `]`: what matters inside a nested value (its depth and its strings).
    static let nestedStop: UInt8 = 4
    /// CR or LF: the end of an SSE line.
    static let lineEnd: UInt8 = 8

    static let table: [UInt8] = (0..<256).map { value in
        var flags: UInt8 = 0
        switch UInt8(value) {
        case JSONBytes.quote: flags = stringStop | responseStop | nestedStop
        case JSONBytes.backslash: flags = stringStop
        case JSONBytes.openBrace, JSONBytes.closeBrace, JSONBytes.openBracket, JSONBytes.closeBracket:
            flags = responseStop | nestedStop
        case JSONBytes.comma, JSONBytes.colon: flags = responseStop
        case JSONBytes.cr, JSONBytes.lf: flags = lineEnd
        default: break
        }
        return flags
    }

    /// The index of the first byte at or after `start` with one of `flags` (or the end), by
    /// ``table`` (passed in, read once per chunk). Inside a string (the text of an answer, most
    /// of its bytes) eight bytes are tested at a time first.
    @inline(__always)
    static func next(
        _ flags: UInt8, in buffer: UnsafeBufferPointer<UInt8>, from start: Int, table: UnsafeBufferPointer<UInt8>
    ) -> Int {
        var index = start
        if flags & ~(stringStop | lineEnd) == 0 {
            index = skipStringWords(in: buffer, from: index, lineEnds: flags & lineEnd != 0)
        }
        while index < buffer.count, table[Int(buffer[index])] & flags == 0 { index += 1 }
        return index
    }

    /// Skips the whole 8-byte words from `start` on that hold no quote or backslash (and, with
    /// `lineEnds`, no CR or LF): the first byte that matters is in the word it stops at, or in
    /// the few bytes after the last whole word.
    @inline(__always)
    static func skipStringWords(in buffer: UnsafeBufferPointer<UInt8>, from start: Int, lineEnds: Bool) -> Int {
        guard let base = buffer.baseAddress else { return start }
        let bytes = UnsafeRawPointer(base)
        var index = start
        while index &+ 8 <= buffer.count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            var found = hasByte(word, JSONBytes.quote) | hasByte(word, JSONBytes.backslash)
            if lineEnds { found |= hasByte(word, JSONBytes.cr) | hasByte(word, JSONBytes.lf) }
            if found != 0 { break }
            index &+= 8
        }
        return index
    }

    /// Non-zero exactly when one of the eight bytes of `word` is `byte` (the high bit of each
    /// byte of `word ^ byte…` that is zero ends up set; a borrow can only mark bytes after one).
    @inline(__always)
    static func hasByte(_ word: UInt64, _ byte: UInt8) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let x = word ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & 0x8080_8080_8080_8080
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

    /// Inside a line whose bytes up to its end matter to nobody: a comment, or the value of
    /// another field than `data`.
    var isInIgnoredValue: Bool { state == .ignored || (state == .value && !isDataLine && !skipSpace) }

    /// Bytes of the current value (none of them CR or LF) were handed over in bulk.
    mutating func valueContinues() {
        afterCR = false
    }

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
    /// The captured bytes that came in earlier chunks (or between them).
    private var capture: [UInt8] = []
    /// While a chunk is consumed: where the captured bytes of this chunk begin in it (they are
    /// read there, not copied, unless the object goes on in the next chunk).
    private var captureStart: Int?
    /// Inside ``consume(_:from:stoppingAtLineEnds:table:)``, which keeps the captured bytes.
    private var readingChunk = false
    private var captureDepth = 0
    private var captureKind = KeyKind.none
    /// The byte just consumed opened a usage object, or closed it: for the chunk's loop.
    private var captureOpened = false
    private var captureClosed = false

    /// Consumes the bytes of `buffer` from `start` on, and returns where it stopped: at the end,
    /// or, with `stoppingAtLineEnds` (SSE), at the first CR or LF, left to the line layer.
    ///
    /// Equivalent to ``consume(_:)`` byte after byte, only faster: runs of bytes that change
    /// nothing but the position (inside strings; between the structural bytes of nested values
    /// and of response objects) are skipped in a tight loop (`table`: ``ByteClass/table``), and
    /// a usage object is read where it lies in `buffer`.
    mutating func consume(
        _ buffer: UnsafeBufferPointer<UInt8>, from start: Int, stoppingAtLineEnds: Bool, table: UnsafeBufferPointer<UInt8>
    ) -> Int {
        let lineEnd = stoppingAtLineEnds ? ByteClass.lineEnd : 0
        if capturing { captureStart = start }
        readingChunk = true
        defer { readingChunk = false }
        var index = start
        while index < buffer.count {
            // The bytes that end a run where nothing happens; none: one byte at a time.
            let stops: UInt8
            if inString {
                stops = escaped ? 0 : ByteClass.stringStop | lineEnd
            } else if inResponseObject, depth == responseDepth {
                stops = phase == .expectValue ? 0 : ByteClass.responseStop | lineEnd
            } else {
                stops = ByteClass.nestedStop | lineEnd
            }
            if stops != 0 {
                let stop = ByteClass.next(stops, in: buffer, from: index, table: table)
                if stop > index {
                    if inString, phase == .inKey { appendKey(UnsafeBufferPointer(rebasing: buffer[index..<stop])) }
                    index = stop
                    if index == buffer.count { break }
                }
            }
            let byte = buffer[index]
            if stoppingAtLineEnds, byte == JSONBytes.cr || byte == JSONBytes.lf { break }
            // The common bytes first, as ``consume(_:)`` takes them: the end of a string (or an
            // escape) that is not a key, and the brackets and quotes of a nested value that do not
            // bring it back to the response object.
            if inString, phase != .inKey {
                if escaped {
                    escaped = false
                } else if byte == JSONBytes.backslash {
                    escaped = true
                } else if byte == JSONBytes.quote {
                    inString = false
                }
                index += 1
                continue
            }
            if !inString, responseDepth > 0, depth > responseDepth {
                if byte == JSONBytes.quote {
                    inString = true
                    index += 1
                    continue
                }
                if byte == JSONBytes.openBrace || byte == JSONBytes.openBracket {
                    depth += 1
                    index += 1
                    continue
                }
                if depth - 1 > responseDepth {  // a closing bracket, still nested
                    depth -= 1
                    index += 1
                    continue
                }
            }
            consume(byte)
            if captureOpened {
                captureOpened = false
                captureStart = index
            } else if captureClosed {
                captureClosed = false
                finishCapture(buffer, through: index)
            }
            index += 1
        }
        // An object that goes on: its bytes so far are kept, up to the limit.
        if capturing, let start = captureStart {
            captureStart = nil
            if capture.count + (index - start) <= UsageScanner.maximumCapture {
                capture.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<index]))
            } else {
                abandonCapture()
            }
        }
        return index
    }

    private mutating func abandonCapture() {
        capturing = false
        captureStart = nil
        capture.removeAll(keepingCapacity: false)
        skippedOversized = true
    }

    mutating func reset() {
        depth = 0
        inString = false
        escaped = false
        responseDepth = 0
        inResponseObject = false
        phase = .idle
        keyKind = .none
        capturing = false
        captureStart = nil
        capture.removeAll(keepingCapacity: true)
    }

    /// One byte. Inside ``consume(_:from:stoppingAtLineEnds:table:)`` the captured bytes are
    /// left where they are in the chunk; outside (a byte the SSE line layer hands over alone: the
    /// first of a value, the newline that joins two `data:` lines), they are kept here.
    @inline(__always)
    mutating func consume(_ byte: UInt8) {
        if capturing, !readingChunk {
            if capture.count < UsageScanner.maximumCapture {
                capture.append(byte)
            } else {
                abandonCapture()
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
            if capturing, depth == captureDepth {
                if readingChunk { captureClosed = true } else { finishCapture() }
            }
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

    /// Bytes of a key, as many as ``appendKey(_:)`` one by one would keep.
    private mutating func appendKey(_ bytes: UnsafeBufferPointer<UInt8>) {
        if key.count <= Self.maximumKeyLength {
            key.append(contentsOf: bytes.prefix(Self.maximumKeyLength + 1 - key.count))
        }
    }

    private mutating func finishKey() {
        func keyIs(_ name: StaticString) -> Bool {
            key.count == name.utf8CodeUnitCount
                && key.withUnsafeBufferPointer { $0.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: key.count)) }
        }
        if keyIs("usageMetadata") {
            keyKind = .usageMetadata
        } else if keyIs("usage") {
            keyKind = .usage
        } else if keyIs("error") {
            keyKind = .error
        } else {
            keyKind = .none
        }
        phase = .expectColon
    }

    private mutating func valueStarts(with byte: UInt8) {
        if byte == JSONBytes.openBrace {
            switch keyKind {
            case .usageMetadata, .usage:
                // The brace itself is the first captured byte: at the chunk's index of it, or kept.
                capturing = true
                capture.removeAll(keepingCapacity: true)
                if readingChunk { captureOpened = true } else { capture.append(byte) }
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

    /// The usage object closed at `end` of `buffer`: what came before this chunk and what this
    /// chunk holds of it, read as one.
    private mutating func finishCapture(_ buffer: UnsafeBufferPointer<UInt8>, through end: Int) {
        guard let start = captureStart else { return finishCapture() }
        captureStart = nil
        let here = UnsafeBufferPointer(rebasing: buffer[start...end])
        guard capture.count + here.count <= UsageScanner.maximumCapture else { return abandonCapture() }
        if capture.isEmpty {
            decode(here)
        } else {
            capture.append(contentsOf: here)
            finishCapture()
        }
    }

    /// The usage object in ``capture`` closed.
    private mutating func finishCapture() {
        capture.withUnsafeBufferPointer { decode($0) }
        capture.removeAll(keepingCapacity: true)
    }

    private mutating func decode(_ object: UnsafeBufferPointer<UInt8>) {
        capturing = false
        let openAI = captureKind == .usage
        // Plain objects (what Google and OpenAI send) are read here; anything else by Foundation.
        if let usage = UsageMetadata.decodePlain(object, openAI: openAI) ?? UsageMetadata.decode(Array(object), openAI: openAI) {
            last = usage
        }
    }
}

// MARK: - Plain usage objects

extension UsageMetadata {
    /// The usage in a captured `usageMetadata` (or OpenAI `usage`) object, read byte by byte when
    /// the object is plain JSON (``JSONBytes/Cursor``: ASCII strings without escapes, integer
    /// counts, no key of interest twice); nil when it is not, for ``decode(_:openAI:)`` to decide.
    ///
    /// Gives what ``decode(_:openAI:)`` gives for every plain object: a count is its integer
    /// (negative ones 0), and 0 when it is missing, `true`, `false`, `null`, an object or an
    /// array; a count given as a string or a non-integer number is left to Foundation.
    static func decodePlain(_ bytes: UnsafeBufferPointer<UInt8>, openAI: Bool) -> UsageMetadata? {
        var reader = JSONBytes.Cursor(buffer: bytes)
        var counts = Counts()
        let complete = reader.readPlainObject { reader, key in
            guard let field = Field(reader, key, openAI: openAI) else { return reader.skipPlainValue(depth: 1) }
            switch field {
            case .count(let slot):
                return counts.set(slot, Self.count(&reader))
            case .details(let slot, let inner):
                guard counts.seenDetails[slot] == 0 else { return false }  // twice: Foundation's call
                counts.seenDetails[slot] = 1
                guard reader.peek() == JSONBytes.openBrace else {
                    // Not an object: no count in it.
                    return reader.skipPlainValue(depth: 1) && counts.set(slot, 0)
                }
                return reader.readPlainObject { reader, key in
                    guard reader.bytes(key, are: inner) else { return reader.skipPlainValue(depth: 2) }
                    return counts.set(slot, Self.count(&reader))
                }
            case .modalities:
                guard !counts.seenModalities else { return false }  // twice: Foundation's call
                counts.seenModalities = true
                guard reader.peek() == JSONBytes.openBracket else { return reader.skipPlainValue(depth: 1) }
                return reader.readPlainArray { reader in Self.modalityEntry(&reader, audio: &counts.audio) }
            }
        }
        guard complete, reader.isAtEnd else { return nil }
        return UsageMetadata(
            prompt: counts.value(0), cached: counts.value(1), candidates: counts.value(2),
            thoughts: counts.value(3), toolUse: counts.value(4), total: counts.value(5), audio: counts.audio)
    }

    /// One entry of `promptTokensDetails` (`{"modality": "AUDIO", "tokenCount": 5}`): adds its
    /// count to `audio` when its modality is `AUDIO`. False when not plain (a `modality` or
    /// `tokenCount` given twice included: Foundation keeps the last).
    private static func modalityEntry(_ reader: inout JSONBytes.Cursor, audio: inout Int) -> Bool {
        guard reader.peek() == JSONBytes.openBrace else { return reader.skipPlainValue(depth: 2) }
        var modality: Bool?
        var count: Int?
        let plain = reader.readPlainObject { reader, key in
            if reader.bytes(key, are: "modality") {
                guard modality == nil else { return false }
                guard reader.peek() == JSONBytes.quote else {
                    modality = false
                    return reader.skipPlainValue(depth: 3)
                }
                guard let value = reader.readPlainString() else { return false }
                modality = reader.bytes(value, are: "AUDIO")
                return true
            }
            if reader.bytes(key, are: "tokenCount") {
                guard count == nil, let value = Self.count(&reader) else { return false }
                count = value
                return true
            }
            return reader.skipPlainValue(depth: 3)
        }
        if plain, modality == true { audio += count ?? 0 }
        return plain
    }

    /// The six counts in the order of ``init(prompt:cached:candidates:thoughts:toolUse:total:)``
    /// (-1: not read yet), and which details objects were read.
    private struct Counts {
        var values: SIMD8<Int> = SIMD8(repeating: -1)
        var seenDetails: SIMD8<Int> = SIMD8(repeating: 0)
        /// `promptTokensDetails`: whether read, and its `AUDIO` tokens.
        var seenModalities = false
        var audio = 0

        /// Sets a count read once; false when not plain, or read before (Foundation's call).
        mutating func set(_ slot: Int, _ value: Int?) -> Bool {
            guard let value, values[slot] < 0 else { return false }
            values[slot] = value
            return true
        }

        func value(_ slot: Int) -> Int { Swift.max(values[slot], 0) }
    }

    /// A member of a usage object that holds a count.
    private enum Field {
        /// A count, for its slot in ``Counts``.
        case count(Int)
        /// An OpenAI details object, whose member `inner` is the count for the slot.
        case details(Int, inner: StaticString)
        /// Gemini's `promptTokensDetails`: a list of `{modality, tokenCount}`.
        case modalities

        static let gemini: [(StaticString, Field)] = [
            ("promptTokenCount", .count(0)), ("cachedContentTokenCount", .count(1)), ("candidatesTokenCount", .count(2)),
            ("thoughtsTokenCount", .count(3)), ("toolUsePromptTokenCount", .count(4)), ("totalTokenCount", .count(5)),
            ("promptTokensDetails", .modalities),
        ]
        static let openAI: [(StaticString, Field)] = [
            ("prompt_tokens", .count(0)), ("completion_tokens", .count(2)), ("total_tokens", .count(5)),
            ("prompt_tokens_details", .details(1, inner: "cached_tokens")),
            ("completion_tokens_details", .details(3, inner: "reasoning_tokens")),
        ]

        init?(_ reader: JSONBytes.Cursor, _ key: Range<Int>, openAI: Bool) {
            guard let field = (openAI ? Self.openAI : Self.gemini).first(where: { reader.bytes(key, are: $0.0) }) else {
                return nil
            }
            self = field.1
        }
    }

    /// A count at the reader: an integer, or 0 for a literal or a container; nil when not plain
    /// or a string (which Foundation's reading turns into a number).
    private static func count(_ reader: inout JSONBytes.Cursor) -> Int? {
        switch reader.peek() {
        case JSONBytes.openBrace, JSONBytes.openBracket:
            return reader.skipPlainValue(depth: 2) ? 0 : nil
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            return reader.readLiteral() ? 0 : nil
        case JSONBytes.quote, nil:
            return nil
        default:
            return reader.readPlainInteger().map { max($0, 0) }
        }
    }
}
