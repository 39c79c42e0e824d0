import Foundation
import GRDB

/// Why the database could not be used, in words an operator can act on (one line each).
public enum StoreError: Error, Equatable, CustomStringConvertible {
    case isDirectory(path: String)
    /// No file at the path, and the caller would not create one.
    case missing(path: String)
    case cannotCreate(path: String, reason: String)
    case cannotOpen(path: String, reason: String)
    case notADatabase(path: String)
    case readOnly(path: String)
    case busy(path: String, seconds: TimeInterval)
    case newerSchema(unknownMigrations: [String])
    case notFound(String)
    case ambiguous(String)
    case invalid(String)
    case database(String)
    /// The PostgreSQL store could not be reached or refused a statement (the reason names it).
    case unavailable(reason: String)
    /// A `--store` that is neither a path nor a usable `postgres://` URL.
    case badLocation(url: String, reason: String)

    public var description: String {
        switch self {
        case .isDirectory(let path):
            "database path '\(path)' is a directory; give a file path such as '\(path)/gateway.db'"
        case .missing(let path):
            "no database at '\(path)' (give --db PATH or set GEMINI_GATEWAY_DB; 'import' or 'serve' creates one)"
        case .cannotCreate(let path, let reason):
            "cannot create database '\(path)': \(reason)"
        case .cannotOpen(let path, let reason):
            "cannot open database '\(path)': \(reason)"
        case .notADatabase(let path):
            "'\(path)' is not a SQLite database"
        case .readOnly(let path):
            "database '\(path)' is read-only for this user"
        case .busy(let path, let seconds):
            "database '\(path)' is locked by another writer (waited \(Self.format(seconds)) s); try again"
        case .newerSchema(let unknown):
            "database was created by a newer gemini-gateway (unknown migrations: \(unknown.joined(separator: ", "))); refusing to downgrade it"
        case .notFound(let message), .ambiguous(let message), .invalid(let message), .database(let message):
            message
        case .unavailable(let reason):
            reason
        case .badLocation(let url, let reason):
            "--store '\(url)': \(reason)"
        }
    }

    /// Maps a GRDB error met while opening or writing the database at `path`.
    public init(_ error: any Error, path: String, busyTimeout: TimeInterval) {
        guard let error = error as? DatabaseError else {
            self = .database(String(describing: error))
            return
        }
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: self = .busy(path: path, seconds: busyTimeout)
        case .SQLITE_CANTOPEN: self = .cannotOpen(path: path, reason: error.message ?? "unable to open")
        case .SQLITE_NOTADB: self = .notADatabase(path: path)
        case .SQLITE_READONLY: self = .readOnly(path: path)
        default: self = .database("database '\(path)': \(error.message ?? "\(error.resultCode)")")
        }
    }

    private static func format(_ seconds: TimeInterval) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}
