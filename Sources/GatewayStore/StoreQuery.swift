import Foundation
import GRDB

// MARK: - One query, written once, in either store's dialect

/// The SQL dialects of the two stores. The reports, lists, `status` and the status page are
/// built once (``StoreQuery``) and read back as ``ReportTable``s by either store; only the few
/// spellings below differ (../shared/design/scale-out.md §7). Everything else is written in
/// SQL both accept (`WHERE 1 = 0`, `CASE WHEN flag = 1`, named subqueries, NULLIF before a
/// division), so there is one text to read per query.
public enum SQLDialect: Sendable {
    case sqlite
    case postgres

    /// An integer expression that PostgreSQL would make `numeric` (`SUM` of a bigint), as
    /// SQLite's integer: postgres-nio cannot read `numeric` into Int.
    func int(_ expression: String) -> String {
        self == .sqlite ? expression : "(\(expression))::bigint"
    }

    /// An integer expression as a double, before a division that SQLite makes real
    /// (`SUM(cost) / 1000000.0`): PostgreSQL would divide in `numeric`.
    func real(_ expression: String) -> String {
        self == .sqlite ? "(\(expression))" : "(\(expression))::float8"
    }

    /// `round(x, n)` as a double: PostgreSQL rounds only `numeric`.
    func round(_ expression: String, _ digits: Int) -> String {
        self == .sqlite ? "round(\(expression), \(digits))" : "round((\(expression))::numeric, \(digits))::float8"
    }

    /// A time as SQLite's store shows it to the second, `YYYY-MM-DD HH:MM:SS` (UTC): SQLite
    /// keeps times as that text with milliseconds, PostgreSQL as `timestamptz`.
    func second(_ expression: String) -> String {
        self == .sqlite ? "substr(\(expression), 1, 19)" : "to_char(\(expression) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    }

    /// A time's minute, `YYYY-MM-DD HH:MM` (UTC).
    func minute(_ expression: String) -> String {
        self == .sqlite ? "substr(\(expression), 1, 16)" : "to_char(\(expression) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')"
    }

    /// `CROSS JOIN … ON`: SQLite then reads the left table first (the planner may not reorder
    /// it); PostgreSQL takes no `ON` after `CROSS JOIN` and plans a plain join itself.
    var orderedJoin: String {
        self == .sqlite ? "CROSS JOIN" : "JOIN"
    }

    /// A text column in `ORDER BY`, compared byte by byte as SQLite does (PostgreSQL would use
    /// the database's locale, which puts `B` and `a`, `-` and `a` in another order).
    func bytewise(_ expression: String) -> String {
        self == .sqlite ? expression : "\(expression) COLLATE \"C\""
    }
}

/// A value bound to a ``StoreQuery``.
public enum StoreValue: Sendable, Equatable {
    case int(Int64)
    case double(Double)
    case text(String)
    /// An instant: SQLite's text `YYYY-MM-DD HH:MM:SS.SSS`, PostgreSQL's `timestamptz`.
    case time(Date)
    /// A UTC day `YYYY-MM-DD`: SQLite's text, PostgreSQL's `date`.
    case day(String)
    case null
}

/// SQL text in one dialect and the values it binds. Placeholders are numbered (SQLite's `:p1`,
/// PostgreSQL's `$1`), so parts of a query may be written in any order and a value bound once may
/// be used several times.
public struct StoreQuery: Sendable {
    public let dialect: SQLDialect
    public var sql: String
    public private(set) var values: [StoreValue] = []

    public init(_ dialect: SQLDialect, sql: String = "") {
        self.dialect = dialect
        self.sql = sql
    }

    /// Adds `value` and returns its placeholder.
    public mutating func bind(_ value: StoreValue) -> String {
        values.append(value)
        switch dialect {
        case .sqlite: return ":p\(values.count)"
        case .postgres:
            if case .day = value { return "$\(values.count)::date" }
            return "$\(values.count)"
        }
    }

    /// A query with one value: `sql(placeholder)`.
    static func with(_ dialect: SQLDialect, _ value: StoreValue, _ sql: (String) -> String) -> StoreQuery {
        var query = StoreQuery(dialect)
        let placeholder = query.bind(value)
        query.sql = sql(placeholder)
        return query
    }
}

// MARK: - Reading a query's rows, alike in both stores

extension ReportTable {
    /// The rows as records, each cell read by column name.
    var storeRows: [StoreRow] {
        let index = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        return rows.map { StoreRow(index: index, values: $0) }
    }
}

/// One row of a ``StoreQuery``'s answer: the cells as both stores give them (times as SQLite's
/// text, ``ReportValue``), read by column name. The Swift that turns rows into listings and pages
/// reads these, so it is written once for both stores.
struct StoreRow {
    let index: [String: Int]
    let values: [ReportValue]

    subscript(_ column: String) -> ReportValue {
        index[column].map { values[$0] } ?? .null
    }

    func int(_ column: String) -> Int { Int(self[column].integer ?? 0) }
    func int64(_ column: String) -> Int64 { self[column].integer ?? 0 }
    func optionalInt(_ column: String) -> Int? { self[column].integer.map { Int($0) } }
    func optionalInt64(_ column: String) -> Int64? { self[column].integer }
    func bool(_ column: String) -> Bool { (self[column].integer ?? 0) != 0 }

    func text(_ column: String) -> String { optionalText(column) ?? "" }
    func optionalText(_ column: String) -> String? {
        if case .text(let text) = self[column] { return text }
        return nil
    }

    /// A time stored as `YYYY-MM-DD HH:MM:SS.SSS` (UTC).
    func date(_ column: String) -> Date? { optionalText(column).flatMap(UTC.dateTime) }
}

// MARK: - SQLite

extension StoreValue {
    var sqlite: (any DatabaseValueConvertible)? {
        switch self {
        case .int(let value): value
        case .double(let value): value
        case .text(let value), .day(let value): value
        case .time(let value): value
        case .null: nil
        }
    }
}

extension StoreQuery {
    /// The values by their placeholders' names, for GRDB.
    var sqliteArguments: StatementArguments {
        var named: [String: (any DatabaseValueConvertible)?] = [:]
        for (index, value) in values.enumerated() { named["p\(index + 1)"] = value.sqlite }
        return StatementArguments(named)
    }
}

extension Database {
    /// Every row of `query` (written in SQLite's dialect).
    func table(_ query: StoreQuery, tableColumns: [String]? = nil) throws -> ReportTable {
        precondition(query.dialect == .sqlite)
        return try ReportTable.fetch(self, sql: query.sql, arguments: query.sqliteArguments, tableColumns: tableColumns)
    }
}

// MARK: - PostgreSQL's cells as SQLite's store shows them

extension ReportValue {
    /// A time as SQLite's store keeps it, `YYYY-MM-DD HH:MM:SS.SSS` (UTC, milliseconds cut as
    /// GRDB writes them): PostgreSQL's `timestamptz` cells, so that both stores' rows read alike.
    package static func storedTime(_ date: Date) -> ReportValue {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let (seconds, fraction) = (milliseconds.floorDiv(1000), milliseconds - milliseconds.floorDiv(1000) * 1000)
        return .text(UTC.timestamp(Date(timeIntervalSince1970: Double(seconds))) + String(format: ".%03d", Int(fraction)))
    }

    /// The time of a cell that holds one as SQLite's store keeps it, else nil.
    package var storedDate: Date? {
        if case .text(let text) = self { return UTC.dateTime(text) }
        return nil
    }

    /// A UTC day as SQLite's store keeps it, `YYYY-MM-DD`: PostgreSQL's `date` cells.
    package static func storedDay(_ date: Date) -> ReportValue {
        .text(UTC.dayString(date))
    }
}
