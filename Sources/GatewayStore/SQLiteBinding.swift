import Foundation
import GatewayCore
import GRDB
import GRDBSQLite

// MARK: - Binding rows with SQLite's C API

/// SQLite copies the bytes of a value bound with this destructor (SQLITE_TRANSIENT).
private let sqliteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// Texts of the row being bound, copied where they stay put until the row has run, so SQLite can
/// use them in place (bound SQLITE_STATIC: no copy and no allocation of its own per value).
///
/// A bump allocator over chunks that are never moved: ``reset()`` before each row reuses them.
final class TextArena {
    private var chunks: [UnsafeMutableRawBufferPointer] = []
    private var chunk = 0
    private var offset = 0
    private static let chunkSize = 16 << 10

    /// Runs `body` with an arena, freed after it returns: `body` must clear every binding that
    /// points into it before it returns.
    static func with<R>(_ body: (TextArena) throws -> R) rethrows -> R {
        let arena = TextArena()
        return try withExtendedLifetime(arena) { try body(arena) }
    }

    private init() {}

    deinit {
        for chunk in chunks { chunk.deallocate() }
    }

    /// Makes the chunks free for the next row (whose bindings replace the last row's).
    func reset() {
        chunk = 0
        offset = 0
    }

    /// Room for `count` bytes that stays valid until ``reset()``.
    func allocate(_ count: Int) -> UnsafeMutableRawPointer {
        while chunk < chunks.count {
            if chunks[chunk].count - offset >= count {
                defer { offset += count }
                return chunks[chunk].baseAddress! + offset
            }
            chunk += 1
            offset = 0
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(count, Self.chunkSize), alignment: 8)
        chunks.append(buffer)
        chunk = chunks.count - 1
        offset = count
        return buffer.baseAddress!
    }
}

/// Binds the values of one row to a prepared statement, parameter after parameter, with SQLite's
/// C API, then runs it: no `StatementArguments`, no `DatabaseValue` boxes, no `DateFormatter`.
///
/// Every value is stored exactly as GRDB stores the same Swift value: a `String` as text up to
/// its first NUL (GRDB binds it as a C string), `Int` and `Int64` as integers, `Bool` as 0 or 1,
/// a `Double` as a real (SQLite turns NaN into NULL, for GRDB too), a `Date` as GRDB's UTC text
/// (``LogTimestamp``), nil as NULL.
///
/// For statements of the request log only: it steps the statement itself, outside GRDB's
/// bookkeeping, which these statements do not need (no transaction observer watches the log, and
/// they run inside a transaction that GRDB opened and will end).
struct RowBinder {
    private let statement: SQLiteStatement
    private let connection: SQLiteConnection?
    /// GRDB's statement, for its SQL in errors (`Statement.sql` is dear: read only on failure).
    private let source: Statement
    /// Where texts are copied to be bound in place; nil: SQLite copies them.
    private let arena: TextArena?
    private var index: CInt = 0
    private var failure: CInt = SQLITE_OK

    /// Readies `statement` of `db` for a new row: resets it after its last run and starts at its
    /// first parameter. With an `arena`, texts are bound in place from copies in it: clear the
    /// statement (``clear(_:)``) before the arena goes.
    init(_ statement: Statement, _ db: Database, arena: TextArena? = nil) {
        self.statement = statement.sqliteStatement
        self.connection = db.sqliteConnection
        self.source = statement
        self.arena = arena
        sqlite3_reset(self.statement)
        arena?.reset()
    }

    // MARK: Values

    private mutating func record(_ code: CInt) {
        if code != SQLITE_OK, failure == SQLITE_OK { failure = code }
    }

    /// Binds `count` bytes of text at `text`: in place from a copy in the arena, or copied by
    /// SQLite.
    private mutating func bindText(_ text: UnsafePointer<CChar>, count: Int) {
        index += 1
        guard count <= Int(Int32.max) else { return record(SQLITE_TOOBIG) }
        guard let arena else {
            return record(sqlite3_bind_text(statement, index, text, CInt(count), sqliteTransient))
        }
        let copy = arena.allocate(count)
        copy.copyMemory(from: text, byteCount: count)
        record(sqlite3_bind_text(statement, index, copy.assumingMemoryBound(to: CChar.self), CInt(count), nil))
    }

    mutating func bind(_ value: String) {
        // As a C string, as GRDB binds it: up to the first NUL.
        value.withCString { bindText($0, count: strlen($0)) }
    }

    mutating func bind(_ value: String?) {
        if let value { bind(value) } else { bindNull() }
    }

    mutating func bind(_ value: Int64) {
        index += 1
        record(sqlite3_bind_int64(statement, index, value))
    }

    mutating func bind(_ value: Int) { bind(Int64(value)) }

    mutating func bind(_ value: Int64?) {
        if let value { bind(value) } else { bindNull() }
    }

    mutating func bind(_ value: Int?) {
        if let value { bind(Int64(value)) } else { bindNull() }
    }

    mutating func bind(_ value: Bool) { bind(Int64(value ? 1 : 0)) }

    /// Binds each of `values` in turn.
    mutating func bind(_ values: [Int]) {
        for value in values { bind(value) }
    }

    mutating func bind(_ value: Double) {
        index += 1
        record(sqlite3_bind_double(statement, index, value))
    }

    mutating func bind(_ value: Double?) {
        if let value { bind(value) } else { bindNull() }
    }

    mutating func bind(_ value: LogTimestamp) {
        value.withText { text in
            text.withMemoryRebound(to: CChar.self) { text in
                if let base = text.baseAddress {
                    bindText(base, count: text.count)
                } else {
                    "".withCString { bindText($0, count: 0) }
                }
            }
        }
    }

    /// Binds `date` as GRDB would and returns its text, for the caller's daily totals.
    @discardableResult
    mutating func bind(_ date: Date) -> LogTimestamp {
        let timestamp = LogTimestamp(date)
        bind(timestamp)
        return timestamp
    }

    mutating func bindNull() {
        index += 1
        record(sqlite3_bind_null(statement, index))
    }

    // MARK: Running

    /// Runs the statement to its end. Returns the number of rows it inserted or changed (0 for an
    /// `INSERT OR IGNORE` that ignored its row).
    mutating func execute() throws -> Int {
        // Every parameter bound: one missing in a many-row statement would shift the values of
        // every later row by a column.
        assert(index == sqlite3_bind_parameter_count(statement), "\(index) values bound for \(sqlite3_bind_parameter_count(statement)) parameters")
        guard failure == SQLITE_OK else { throw error(failure) }
        let code = sqlite3_step(statement)
        guard code == SQLITE_DONE else {
            let error = error(code)
            sqlite3_reset(statement)
            throw error
        }
        return Int(sqlite3_changes(connection))
    }

    private func error(_ code: CInt) -> DatabaseError {
        let message = connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: source.sql)
    }

    /// Releases the values bound last (the statement stays cached, pointing nowhere).
    static func clear(_ statement: Statement) {
        sqlite3_reset(statement.sqliteStatement)
        sqlite3_clear_bindings(statement.sqliteStatement)
    }
}

// MARK: - Dates as GRDB stores them

/// A `Date` as GRDB stores it: UTC text `YYYY-MM-DD HH:MM:SS.SSS`, written digit by digit.
///
/// GRDB formats with a `DateFormatter` (ICU), which Foundation hands the instant as
/// `(timeIntervalSinceReferenceDate + 978307200) * 1000 + 0.5` milliseconds and ICU floors: the
/// milliseconds are rounded half up. The same arithmetic is done here, on the proleptic Gregorian
/// calendar (ICU's as well after 1582). Dates before 1970 or from the year 10000 on keep GRDB's own
/// formatting, so the text is GRDB's for every date.
struct LogTimestamp: Sendable {
    /// The 23 bytes of the text (24 of storage).
    private var bytes: (UInt64, UInt64, UInt64) = (0, 0, 0)
    /// GRDB's text for dates outside 1970-9999.
    private var formatted: String?

    /// The text's length for dates from 1970 to 9999.
    static let length = 23
    /// 10000-01-01 00:00:00 UTC in milliseconds since 1970.
    private static let end: Int64 = 253_402_300_800_000

    init(_ date: Date) {
        let milliseconds = ((date.timeIntervalSinceReferenceDate + 978_307_200) * 1000 + 0.5).rounded(.down)
        guard milliseconds >= 0, milliseconds < Double(Self.end) else {
            formatted = String.fromDatabaseValue(date.databaseValue) ?? ""
            return
        }
        let total = Int64(milliseconds)
        let days = Int(total / 86_400_000)
        var rest = Int(total % 86_400_000)
        let millisecond = rest % 1000
        rest /= 1000
        let second = rest % 60
        rest /= 60
        let minute = rest % 60
        let hour = rest / 60
        let (civilYear, civilMonth, civilDay) = UTCCalendar.civil(Int64(days))
        let (year, month, day) = (Int(civilYear), Int(civilMonth), Int(civilDay))
        withUnsafeMutableBytes(of: &bytes) { out in
            func two(_ value: Int, at offset: Int) {
                out[offset] = UInt8(truncatingIfNeeded: 48 + value / 10)
                out[offset + 1] = UInt8(truncatingIfNeeded: 48 + value % 10)
            }
            two(year / 100, at: 0)
            two(year % 100, at: 2)
            out[4] = UInt8(ascii: "-")
            two(month, at: 5)
            out[7] = UInt8(ascii: "-")
            two(day, at: 8)
            out[10] = UInt8(ascii: " ")
            two(hour, at: 11)
            out[13] = UInt8(ascii: ":")
            two(minute, at: 14)
            out[16] = UInt8(ascii: ":")
            two(second, at: 17)
            out[19] = UInt8(ascii: ".")
            out[20] = UInt8(truncatingIfNeeded: 48 + millisecond / 100)
            two(millisecond % 100, at: 21)
        }
    }

    /// Calls `body` with the text's UTF-8 bytes.
    func withText<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        if var formatted {
            return try formatted.withUTF8(body)
        }
        return try withUnsafeBytes(of: bytes) { raw in
            try body(UnsafeBufferPointer(start: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: Self.length))
        }
    }

    /// The text.
    var text: String { withText { String(decoding: $0, as: UTF8.self) } }

    /// The UTC day, `YYYY-MM-DD`: what the daily totals take from the text
    /// (`substr(started_at, 1, 10)`).
    var day: String { withText { String(decoding: $0.prefix(10), as: UTF8.self) } }
}
