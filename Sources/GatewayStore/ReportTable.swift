import Foundation
import GRDB

// MARK: - A report's answer

/// One cell of a report: what SQLite answered, without interpretation.
public enum ReportValue: Sendable, Equatable, CustomStringConvertible {
    case integer(Int64)
    case real(Double)
    case text(String)
    case null

    init(_ value: DatabaseValue) {
        switch value.storage {
        case .int64(let number): self = .integer(number)
        case .double(let number): self = .real(number)
        case .string(let text): self = .text(text)
        case .blob(let data): self = .text(String(decoding: data, as: UTF8.self))
        case .null: self = .null
        }
    }

    /// The value as text: numbers as SQLite prints them, null as the empty string.
    public var description: String {
        switch self {
        case .integer(let number): String(number)
        case .real(let number): Self.format(number)
        case .text(let text): text
        case .null: ""
        }
    }

    /// The value as an integer (reals rounded toward zero), or nil for text and null.
    public var integer: Int64? {
        switch self {
        case .integer(let number): number
        case .real(let number): Int64(exactly: number.rounded(.towardZero))
        default: nil
        }
    }

    /// The value as a double, or nil for text and null.
    public var real: Double? {
        switch self {
        case .integer(let number): Double(number)
        case .real(let number): number
        default: nil
        }
    }

    /// `1844.8`, `2000`, `0.0246`: no exponent, no trailing `.0`.
    static func format(_ number: Double) -> String {
        guard number.isFinite else { return "" }
        if number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
        var text = String(format: "%.6f", number)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }
}

/// A report: named columns and rows of values, in order. The command line prints it as a table,
/// JSON or CSV.
public struct ReportTable: Sendable, Equatable {
    /// Column names, snake_case, as in the SQL views.
    public var columns: [String]
    /// The columns a terminal table shows (all of them are in JSON and CSV).
    public var tableColumns: [String]
    public var rows: [[ReportValue]]
    /// Days the range cuts that are shown whole because their raw rows were pruned.
    public var widenedDays: [String]

    public init(columns: [String], tableColumns: [String]? = nil, rows: [[ReportValue]], widenedDays: [String] = []) {
        self.columns = columns
        self.tableColumns = tableColumns ?? columns
        self.rows = rows
        self.widenedDays = widenedDays
    }

    /// The cell of `column` in row `row`, or nil if there is no such column.
    public func value(_ column: String, row: Int) -> ReportValue? {
        guard let index = columns.firstIndex(of: column), rows.indices.contains(row) else { return nil }
        return rows[row][index]
    }

    /// Rows as dictionaries keyed by column name.
    public var records: [[String: ReportValue]] {
        rows.map { Dictionary(uniqueKeysWithValues: zip(columns, $0)) }
    }

    /// Reads every row of a statement.
    static func fetch(_ db: Database, sql: String, arguments: StatementArguments, tableColumns: [String]? = nil) throws -> ReportTable {
        let statement = try db.makeStatement(sql: sql)
        let columns = statement.columnNames
        let rows = try Row.fetchAll(statement, arguments: arguments).map { row in
            Array(row.databaseValues.map(ReportValue.init))
        }
        return ReportTable(columns: columns, tableColumns: tableColumns, rows: rows)
    }
}
