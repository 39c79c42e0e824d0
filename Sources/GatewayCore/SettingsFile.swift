import Foundation

// MARK: - SettingsFile

/// A settings file in the format of systemd's `EnvironmentFile`: one `NAME=VALUE` a line, `#` or
/// `;` comments, blank lines, an optional `export ` before the name, and values optionally in
/// single or double quotes (double quotes understand `\"`, `\\`, `\n`). Only names starting with
/// `prefix` are accepted, so a typo is an error with its line number instead of a setting
/// silently ignored.
public struct SettingsFile: Sendable, Equatable {
    /// The settings, by name.
    public var values: [String: String]

    /// A line that could not be read.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    public init(values: [String: String] = [:]) {
        self.values = values
    }

    /// Parses `text`; throws the first problem found. `known`, when given, lists the accepted names.
    public static func parse(_ text: String, prefix: String, known: Set<String>? = nil) throws(Problem) -> SettingsFile {
        var values: [String: String] = [:]
        var number = 0
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if number == 1, line.hasPrefix("\u{FEFF}") { line.removeFirst() }
            if line.hasSuffix("\r") { line.removeLast() }
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            guard let equals = line.firstIndex(of: "=") else {
                throw Problem(line: number, message: "expected NAME=VALUE")
            }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                throw Problem(line: number, message: "'\(name)' is not a variable name")
            }
            guard name.hasPrefix(prefix), known?.contains(name) ?? true else {
                throw Problem(line: number, message: "unknown setting \(name)")
            }
            values[name] = try unquote(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces), line: number)
        }
        return SettingsFile(values: values)
    }

    private static func unquote(_ value: String, line: Int) throws(Problem) -> String {
        guard let first = value.first, first == "\"" || first == "'" else { return value }
        guard value.count >= 2, value.last == first else {
            throw Problem(line: line, message: "the value's closing \(first) is missing")
        }
        let inner = value.dropFirst().dropLast()
        guard first == "\"" else { return String(inner) }
        var result = ""
        var escaped = false
        for character in inner {
            if escaped {
                result.append(character == "n" ? "\n" : character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                result.append(character)
            }
        }
        return result
    }
}
