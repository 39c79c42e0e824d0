import ArgumentParser
import Foundation
import GatewayCore
import GatewayStore

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import keys and upstreams from the old proxy's text files (idempotent).",
        discussion: """
            api_keys.txt: one key a line, optionally followed by a project label after white space \
            or a comma ("AIza... my-project"). proxy_urls.txt: one base URL a line (http or https). \
            Blank lines and # comments are skipped. Invalid lines are reported and skipped. Keys that \
            were soft-deleted stay deleted. Both files are imported in one transaction: on any error \
            nothing changes. Safe to run while 'serve' is running: it picks the change up within seconds.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The keys file (api_keys.txt).", valueName: "file"))
    var keys: String?

    @Option(name: .long, help: ArgumentHelp("The upstreams file (proxy_urls.txt).", valueName: "file"))
    var upstreams: String?

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if keys == nil && upstreams == nil {
            throw ValidationError("give --keys FILE, --upstreams FILE, or both")
        }
    }

    struct Report: Encodable {
        var keys: KeyImportSummary?
        var upstreams: UpstreamImportSummary?
    }

    func run() async throws {
        try await reportingErrors {
            let (keys, upstreams, printing) = (keys, upstreams, !output.json)
            let parsed = try Self.parse(keys: keys, upstreams: upstreams)
            let result = try await database.withAdminStore(creating: true) { store in
                try await Self.importParsed(parsed, keys: keys, upstreams: upstreams, into: store, printing: printing)
            }
            if output.json {
                try Output.json(Report(keys: result.keys, upstreams: result.upstreams))
            }
        }
    }

    typealias Parsed = (keys: ListFile.Parsed<ListFile.KeyEntry>?, upstreams: ListFile.Parsed<ListFile.UpstreamEntry>?)

    /// Reads and checks both files before the database is opened (a bad file creates and changes
    /// nothing), imports them in one transaction, and prints the human summaries if asked to.
    static func importFiles(
        keys: String?, upstreams: String?, into store: any AdminStore, printing: Bool
    ) async throws -> (keys: KeyImportSummary?, upstreams: UpstreamImportSummary?) {
        try await importParsed(parse(keys: keys, upstreams: upstreams), keys: keys, upstreams: upstreams, into: store, printing: printing)
    }

    /// Reads and checks both files: an error (exit 65 or 66) names the first problem.
    static func parse(keys: String?, upstreams: String?) throws -> Parsed {
        let parsedKeys = try keys.map { path in
            let parsed = ListFile.parseKeys(try readFile(path, what: "keys"))
            try requireEntries(parsed, path: path, what: "keys")
            return parsed
        }
        let parsedUpstreams = try upstreams.map { path in
            let parsed = ListFile.parseUpstreams(try readFile(path, what: "upstreams"))
            try requireEntries(parsed, path: path, what: "upstreams")
            return parsed
        }
        return (parsedKeys, parsedUpstreams)
    }

    /// Imports what ``parse(keys:upstreams:)`` read, in one transaction.
    static func importParsed(
        _ parsed: Parsed, keys: String?, upstreams: String?, into store: any AdminStore, printing: Bool
    ) async throws -> (keys: KeyImportSummary?, upstreams: UpstreamImportSummary?) {
        let result = try await store.importLists(keys: parsed.keys, upstreams: parsed.upstreams, now: Date())
        if printing {
            if let summary = result.keys, let path = keys { print(summary, path: path) }
            if let summary = result.upstreams, let path = upstreams { print(summary, path: path) }
        }
        return result
    }

    /// The whole file, or a `CLIError` (exit 66) that says why it cannot be read.
    static func readFile(_ path: String, what: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CLIError.cannotRead("cannot read \(what) file '\(path)': no such file")
        }
        if isDirectory.boolValue { throw CLIError.cannotRead("cannot read \(what) file '\(path)': it is a directory") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CLIError.cannotRead("cannot read \(what) file '\(path)': permission denied")
        }
        defer { try? handle.close() }
        let limit = 512 << 20
        guard let data = try handle.read(upToCount: limit + 1) else { return Data() }
        if data.count > limit { throw CLIError.cannotRead("\(what) file '\(path)' is larger than 512 MiB") }
        return data
    }

    static func requireEntries<Entry>(_ parsed: ListFile.Parsed<Entry>, path: String, what: String) throws {
        guard parsed.entries.isEmpty else { return }
        let rejected = parsed.rejected.isEmpty ? "" : " (\(Output.plural(parsed.rejected.count, "line")) rejected; first: line \(parsed.rejected[0].line): \(parsed.rejected[0].reason))"
        throw CLIError.noValidLine("\(what) file '\(path)' has no valid line\(rejected); nothing was imported")
    }

    // MARK: - Human summaries

    static func print(_ summary: KeyImportSummary, path: String) {
        var parts = ["\(summary.added) added", "\(summary.alreadyPresent) already present"]
        if summary.labelsUpdated > 0 { parts.append("\(summary.labelsUpdated) relabelled") }
        if summary.duplicatesInFile > 0 { parts.append(Output.plural(summary.duplicatesInFile, "duplicate line")) }
        if !summary.softDeleted.isEmpty { parts.append("\(summary.softDeleted.count) soft-deleted earlier") }
        parts.append("\(summary.invalid.count) invalid")
        Swift.print("keys from \(path): " + parts.joined(separator: ", "))
        printInvalid(summary.invalid)
        if !summary.softDeleted.isEmpty {
            let shown = summary.softDeleted.prefix(10).joined(separator: ", ")
            let more = summary.softDeleted.count > 10 ? " and \(summary.softDeleted.count - 10) more" : ""
            Swift.print("  deleted earlier, left deleted: \(shown)\(more)")
            Swift.print("  to use one again: gemini-gateway keys restore FINGERPRINT")
        }
    }

    static func print(_ summary: UpstreamImportSummary, path: String) {
        var parts = ["\(summary.added) added", "\(summary.alreadyPresent) already present"]
        if summary.duplicatesInFile > 0 { parts.append(Output.plural(summary.duplicatesInFile, "duplicate line")) }
        if !summary.disabled.isEmpty { parts.append("\(summary.disabled.count) disabled earlier") }
        parts.append("\(summary.invalid.count) invalid")
        Swift.print("upstreams from \(path): " + parts.joined(separator: ", "))
        printInvalid(summary.invalid)
        if !summary.disabled.isEmpty {
            Swift.print("  disabled earlier, left disabled: \(summary.disabled.joined(separator: ", "))")
            Swift.print("  to use one again: gemini-gateway upstreams restore URL")
        }
    }

    private static func printInvalid(_ invalid: [ListFile.Rejected]) {
        for rejected in invalid.prefix(20) {
            Swift.print("  line \(rejected.line): \(rejected.reason)")
        }
        if invalid.count > 20 { Swift.print("  ... and \(invalid.count - 20) more invalid lines (--json lists all)") }
    }
}
