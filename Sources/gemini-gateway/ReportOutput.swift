import ArgumentParser
import Foundation
import GatewayStore

// MARK: - Printing a report as a table, JSON or CSV

/// How `report` prints.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case table
    case json
    case csv
}

/// `--format table|json|csv` (and `--json`, as the other commands have).
struct ReportFormatOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("table (the main columns), json or csv (every column).", valueName: "format"))
    var format: ReportFormat = .table

    @Flag(name: .long, help: "The same as --format json.")
    var json = false

    var effective: ReportFormat { json ? .json : format }
}

enum ReportOutput {
    /// Prints `report` to stdout; a table gets `caption` above it and `empty` instead of an empty
    /// table. Days shown whole because of pruning are noted on stderr.
    static func print(_ report: ReportTable, format: ReportFormat, caption: String? = nil, empty: String) {
        if !report.widenedDays.isEmpty {
            FileHandle.standardError.write(Data("""
                note: raw rows of \(report.widenedDays.joined(separator: ", ")) were pruned: \
                \(report.widenedDays.count == 1 ? "that day is" : "those days are") counted whole\n
                """.utf8))
        }
        switch format {
        case .table:
            if let caption { Swift.print(caption) }
            if report.rows.isEmpty {
                Swift.print(empty)
            } else {
                Output.table(report.tableColumns.map(header), table(report))
            }
        case .json: Swift.print(json(report))
        case .csv: Swift.print(csv(report), terminator: "")
        }
    }

    /// `avg_latency_ms` -> `AVG LATENCY MS`.
    static func header(_ column: String) -> String {
        column.replacingOccurrences(of: "_", with: " ").uppercased()
    }

    /// The table's cells: its columns only, null as `-`.
    static func table(_ report: ReportTable) -> [[String]] {
        let indices = report.tableColumns.compactMap { report.columns.firstIndex(of: $0) }
        return report.rows.map { row in
            indices.map { index in
                let value = row[index]
                return value == .null ? "-" : value.description
            }
        }
    }

    /// An array of objects, one a line, keys in column order; numbers as numbers, null as null.
    static func json(_ report: ReportTable) -> String {
        guard !report.rows.isEmpty else { return "[]" }
        let objects = report.rows.map { row in
            "  {" + zip(report.columns, row).map { column, value in
                "\(jsonString(column)): \(jsonValue(value))"
            }.joined(separator: ", ") + "}"
        }
        return "[\n" + objects.joined(separator: ",\n") + "\n]"
    }

    static func jsonValue(_ value: ReportValue) -> String {
        switch value {
        case .integer, .real: value.description
        case .text(let text): jsonString(text)
        case .null: "null"
        }
    }

    static func jsonString(_ text: String) -> String {
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.value < 0x20: escaped += String(format: "\\u%04x", scalar.value)
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped + "\""
    }

    /// RFC 4180 quoting with LF line ends (friendlier to shell tools): a header line, then one
    /// line per row; fields with a comma, quote or line break are quoted; null is empty.
    static func csv(_ report: ReportTable) -> String {
        var lines = [report.columns.map(csvField).joined(separator: ",")]
        for row in report.rows {
            lines.append(row.map { csvField($0.description) }.joined(separator: ","))
        }
        return lines.map { $0 + "\n" }.joined()
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
