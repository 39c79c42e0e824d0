import ArgumentParser
import Foundation
import GatewayCore
import GatewayStore

// MARK: - Errors and exit codes a shell script can rely on

/// A failure the CLI reports as one line on stderr with a specific exit code.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32

    static func noValidLine(_ message: String) -> CLIError { CLIError(description: message, exitCode: 65) }
    static func cannotRead(_ message: String) -> CLIError { CLIError(description: message, exitCode: 66) }
}

/// Runs `body`, turning any failure into `error: <one line>` on stderr and the documented exit code.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CLIError {
        fail(error.description, code: error.exitCode)
    } catch let error as StoreError {
        switch error {
        case .busy: fail(error.description, code: 75)
        case .missing: fail(error.description, code: 66)
        // EX_UNAVAILABLE: the PostgreSQL store cannot be reached, or the command is not there yet.
        case .unavailable: fail(error.description, code: 69)
        case .badLocation: fail(error.description, code: 64)
        default: fail(error.description, code: 1)
        }
    } catch let error as ExitCode {
        throw error
    } catch {
        fail(String(describing: error), code: 1)
    }
}

private func fail(_ message: String, code: Int32) -> Never {
    LogOutput.standardError.flush(waitingUpTo: 2)  // the log lines before it, first
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(code)
}

// MARK: - Output

enum Output {
    /// `text` with its invisible characters (controls, bidi and other format characters,
    /// unusual spaces) written as `\u{...}`: a value edited by hand, safe to print.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: ListFile.isInvisible) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if ListFile.isInvisible(scalar), scalar != " " {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// One line on stderr, `warning: ...`: something the command left out, it still goes on.
    static func warning(_ message: String) {
        LogOutput.standardError.flush(waitingUpTo: 2)
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }

    static func json(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        encoder.keyEncodingStrategy = .convertToSnakeCase
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// A plain table: a header row, aligned columns separated by two spaces.
    /// Columns padded to their widest cell. Every cell is printed ``escaped(_:)``: tables show
    /// text that others wrote (a model name from a client's path, an upstream's error reason, a
    /// row edited by hand), and none of it reaches the terminal as a control sequence.
    static func table(_ header: [String], _ rows: [[String]]) {
        let rows = rows.map { $0.map(escaped) }
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        print(line(header))
        for row in rows { print(line(row)) }
    }

    /// `2026-11-27 15:03:09` in UTC, or `-`.
    static func time(_ date: Date?) -> String {
        guard let date else { return "-" }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    static func plural(_ count: Int, _ noun: String) -> String {
        "\(count) \(noun)\(count == 1 ? "" : "s")"
    }
}
