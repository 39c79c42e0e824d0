import Foundation
import GatewayCore
import GRDB
import Testing

/// Fake keys shaped like real ones; none is a real key.
let secrets = [
    "AIzaSyFAKE-test-key-number-one-00000001",
    "AIzaSyFAKE-test-key-number-two-00000002",
    "AQ.FAKE_test_key_number_three_000000000000000003",
]

@Suite struct ImportCLITests {
    @Test func importSummaryAndIdempotency() async throws {
        let ws = Workspace()
        ws.write("api_keys.txt", "# keys\n\(secrets[0])\n\(secrets[1]) proj-a\n\(secrets[0])\nnot a key!\n")
        ws.write("proxy_urls.txt", "https://relay.example.com/\nftp://bad.example.com\n")
        let first = try await ws.run("import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt")
        #expect(first.status == 0)
        #expect(first.stdout.contains("keys from api_keys.txt: 2 added, 0 already present, 1 duplicate line, 1 invalid"))
        #expect(first.stdout.contains("line 5:"))
        #expect(first.stdout.contains("upstreams from proxy_urls.txt: 1 added, 0 already present, 1 invalid"))
        #expect(first.stdout.contains("line 2: scheme 'ftp'"))

        let second = try await ws.run("import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt", "--json")
        #expect(second.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as! [String: Any]
        let keys = json["keys"] as! [String: Any]
        #expect(keys["added"] as? Int == 0)
        #expect(keys["already_present"] as? Int == 2)
        #expect((keys["invalid"] as? [[String: Any]])?.first?["line"] as? Int == 5)
    }

    @Test func softDeletedKeysAreReportedNotResurrected() async throws {
        let ws = Workspace()
        ws.write("api_keys.txt", secrets.joined(separator: "\n"))
        #expect(try await ws.run("import", "--keys", "api_keys.txt").status == 0)
        let delete = try await ws.run("keys", "delete", "0001", "--reason", "leaked")
        #expect(delete.status == 0)
        let again = try await ws.run("import", "--keys", "api_keys.txt")
        #expect(again.status == 0)
        #expect(again.stdout.contains("0 added, 2 already present, 1 soft-deleted earlier"))
        #expect(again.stdout.contains("gemini-gateway keys restore"))
        let list = try await ws.run("keys", "list", "--json")
        let rows = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as! [[String: Any]]
        let deleted = rows.first { $0["tail"] as? String == "0001" }!
        #expect(deleted["state"] as? String == "deleted")
        #expect(deleted["deleted_reason"] as? String == "leaked")
    }

    /// A key or an upstream edited by hand with sqlite3 into something the commands refuse is
    /// not used by the gateway: the listings say so, and show nothing raw of it.
    @Test func rowsEditedByHandIntoInvalidValuesAreMarkedInListings() async throws {
        let ws = Workspace()
        ws.write("api_keys.txt", secrets.joined(separator: "\n"))
        ws.write("proxy_urls.txt", "https://relay.example.com\nhttps://other.example.com\nhttps://third.example.com\nhttps://fourth.example.com\n")
        #expect(try await ws.run("import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt").status == 0)
        let queue = try DatabaseQueue(path: ws.path + "/gateway.db")
        try await queue.write { db in
            try db.execute(sql: "UPDATE keys SET secret = secret || char(13, 10) || 'X-Injected: 1' WHERE id = 1")
            // A line break; a C1 control (an 8-bit CSI) and a bidi override; a stored space.
            try db.execute(sql: "UPDATE upstreams SET base_url = 'https://a' || char(13, 10) || 'b.example' WHERE id = 1")
            try db.execute(sql: "UPDATE upstreams SET base_url = 'https://other.example.com/' || char(155) || '31m' || char(8238) WHERE id = 2")
            try db.execute(sql: "UPDATE upstreams SET base_url = ' ' || base_url WHERE id = 3")
        }
        let keys = try await ws.run("keys", "list")
        #expect(keys.status == 0)
        let marked = keys.stdout.split(separator: "\n").filter { $0.contains("unused: stored secret is not a valid key") }
        #expect(marked.count == 1)
        #expect(marked.first?.contains(" ? ") == true, "the tail of a secret edited by hand is not shown")
        let upstreams = try await ws.run("upstreams", "list")
        #expect(upstreams.stdout.components(separatedBy: "unused: stored URL is not valid").count == 4, "\(upstreams.stdout)")
        #expect(upstreams.stdout.contains(#"https://a\u{d}\u{a}b.example"#), "escaped, not raw")
        #expect(upstreams.stdout.contains(#"https://other.example.com/\u{9b}31m\u{202e}"#))
        #expect(!upstreams.stdout.unicodeScalars.contains { $0 == "\r" || $0.value == 0x9b || $0.value == 0x202e })
        let json = try JSONSerialization.jsonObject(with: Data(try await ws.run("upstreams", "list", "--json").stdout.utf8)) as! [[String: Any]]
        #expect(json.map { $0["invalid_url"] as? Bool } == [true, true, true, false])
    }

    /// Tables show text others wrote (an upstream's error reason in a cooldown, a model name
    /// from a client's path): control sequences in it are printed escaped, never raw.
    @Test func tablesPrintOthersTextEscaped() async throws {
        let ws = Workspace()
        ws.write("api_keys.txt", secrets.joined(separator: "\n"))
        #expect(try await ws.run("import", "--keys", "api_keys.txt").status == 0)
        let queue = try DatabaseQueue(path: ws.path + "/gateway.db")
        try await queue.write { db in
            try db.execute(sql: """
                INSERT INTO key_cooldowns (key_id, model, until, reason, quota_id, created_at)
                VALUES (1, ?, ?, ?, NULL, ?)
                """, arguments: ["m\u{1b}[2J", Date().addingTimeInterval(3600), "QUOTA\u{1b}]0;pwned\u{7}", Date()])
        }
        let list = try await ws.run("keys", "list")
        #expect(list.status == 0)
        #expect(!list.stdout.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 }, "\(list.stdout)")
        #expect(list.stdout.contains(#"m\u{1b}[2J until"#))
        #expect(list.stdout.contains(#"QUOTA\u{1b}]0;pwned\u{7}"#))
    }

    @Test func crlfBomAndAHundredThousandLines() async throws {
        let ws = Workspace()
        var data = Data([0xEF, 0xBB, 0xBF])
        data.append(Data((0..<100_000).map { String(format: "AIzaCliGeneratedKey%017d  ", $0) }.joined(separator: "\r\n").utf8))
        ws.write("api_keys.txt", data)
        let started = Date()
        let result = try await ws.run("import", "--keys", "api_keys.txt")
        print("CLI import of 100000 keys: \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        #expect(result.status == 0)
        #expect(result.stdout.contains("100000 added, 0 already present, 0 invalid"))
        let status = try await ws.run("status", "--json")
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as! [String: Any]
        #expect(json["usable_keys"] as? Int == 100_000)
    }

    @Test func badLinesAreReportedAndTheRestImported() async throws {
        let ws = Workspace()
        var data = Data("\(secrets[0])\n".utf8)
        data.append(Data([0x00, 0xFF, 0xFE, 0x41, 0x0A]))
        data.append(Data(String(repeating: "A", count: 1 << 20).utf8 + [0x0A]))
        data.append(Data("AIza has spaces and more\n\(secrets[1])\n".utf8))
        ws.write("api_keys.txt", data)
        let result = try await ws.run("import", "--keys", "api_keys.txt")
        #expect(result.status == 0)
        #expect(result.stdout.contains("2 added"))
        #expect(result.stdout.contains("3 invalid"))
        #expect(result.stdout.contains("line 2: contains a control character"))
        #expect(result.stdout.contains("line 3: line is 1048576 bytes long"))
        #expect(result.stdout.contains("line 4:"))
    }
}

@Suite struct ExitCodeTests {
    @Test func aMissingFileIs66AndChangesNothing() async throws {
        let ws = Workspace()
        ws.write("proxy_urls.txt", "https://relay.example.com\n")
        let result = try await ws.run("import", "--keys", "missing.txt", "--upstreams", "proxy_urls.txt")
        #expect(result.status == 66)
        #expect(result.stderr == "error: cannot read keys file 'missing.txt': no such file\n")
        #expect(!FileManager.default.fileExists(atPath: ws.path + "/gateway.db"))
    }

    @Test func aDirectoryAsInputIs66() async throws {
        let ws = Workspace()
        try FileManager.default.createDirectory(atPath: ws.path + "/keys.d", withIntermediateDirectories: false)
        let result = try await ws.run("import", "--keys", "keys.d")
        #expect(result.status == 66)
        #expect(result.stderr.contains("is a directory"))
    }

    @Test func aFileWithNoValidLineIs65AndChangesNothing() async throws {
        let ws = Workspace()
        ws.write("api_keys.txt", "# only comments\n\nbad key here!\n")
        ws.write("proxy_urls.txt", "https://relay.example.com\n")
        let result = try await ws.run("import", "--upstreams", "proxy_urls.txt", "--keys", "api_keys.txt")
        #expect(result.status == 65)
        #expect(result.stderr.hasPrefix("error: keys file 'api_keys.txt' has no valid line (1 line rejected"))
        #expect(result.stderr.split(separator: "\n").count == 1)
        // The valid upstreams file was not imported either: nothing half-imported.
        #expect(!FileManager.default.fileExists(atPath: ws.path + "/gateway.db"))
        ws.write("empty.txt", "")
        #expect(try await ws.run("import", "--keys", "empty.txt").status == 65)
    }

    @Test func usageErrorsAre64() async throws {
        let ws = Workspace()
        #expect(try await ws.run("import").status == 64)
        #expect(try await ws.run("import", "--nonsense").status == 64)
        #expect(try await ws.run("keys", "frobnicate").status == 64)
        #expect(try await ws.run("status", "--busy-timeout", "-1").status == 64)
    }

    @Test func aDirectoryAsDatabaseIsRefused() async throws {
        let ws = Workspace()
        let result = try await ws.run("status", "--db", ws.path)
        #expect(result.status == 1)
        #expect(result.stderr == "error: database path '\(ws.path)' is a directory; give a file path such as '\(ws.path)/gateway.db'\n")
    }

    @Test func aReadOnlyPlaceIsRefused() async throws {
        let ws = Workspace()
        ws.write("proxy_urls.txt", "https://relay.example.com\n")
        let result = try await ws.run("import", "--upstreams", "proxy_urls.txt", "--db", "/proc/gateway.db")
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("error: cannot create database '/proc/gateway.db':"))
    }

    @Test func aNewerSchemaIsRefused() async throws {
        let ws = Workspace()
        ws.createDatabase()
        #expect(try await ws.run("status").status == 0)
        let queue = try DatabaseQueue(path: ws.path + "/gateway.db")
        try await queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('9000_future')") }
        let result = try await ws.run("status")
        #expect(result.status == 1)
        #expect(result.stderr.contains("newer gemini-gateway"))
        #expect(result.stderr.contains("9000_future"))
        // Nothing was changed: the unknown migration is still recorded.
        let identifiers = try await queue.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        #expect(identifiers.contains("9000_future"))
    }

    @Test func aLockedDatabaseWaitsThenFailsWith75() async throws {
        let ws = Workspace()
        ws.write("api_keys.txt", secrets[0])
        ws.createDatabase()
        #expect(try await ws.run("status").status == 0)
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = true
        let holder = try DatabaseQueue(path: ws.path + "/gateway.db", configuration: configuration)
        try holder.inDatabase { db in try db.execute(sql: "BEGIN IMMEDIATE") }
        let result = try await ws.run("import", "--keys", "api_keys.txt", "--busy-timeout", "0.5")
        try holder.inDatabase { db in try db.execute(sql: "ROLLBACK") }
        #expect(result.status == 75)
        #expect(result.stderr.contains("locked by another writer (waited 0.5 s)"))
        // Reading commands still work while a writer holds the lock (WAL), and nothing is corrupt.
        let after = try await ws.run("import", "--keys", "api_keys.txt")
        #expect(after.status == 0)
        #expect(after.stdout.contains("1 added"))
        let integrity = try await holder.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
        #expect(integrity == "ok")
    }

    @Test func theDatabaseComesFromTheEnvironment() async throws {
        let ws = Workspace()
        ws.write("api_keys.txt", secrets[0])
        let result = try await ws.run("import", "--keys", "api_keys.txt", environment: ["GEMINI_GATEWAY_DB": "custom.db"])
        #expect(result.status == 0)
        #expect(FileManager.default.fileExists(atPath: ws.path + "/custom.db"))
        #expect(!FileManager.default.fileExists(atPath: ws.path + "/gateway.db"))
    }

    @Test func everyCommandHasHelp() async throws {
        let ws = Workspace()
        for command in [[], ["import"], ["keys"], ["keys", "list"], ["keys", "disable"], ["keys", "restore"], ["keys", "delete"],
                        ["upstreams", "list"], ["upstreams", "add"], ["upstreams", "disable"], ["upstreams", "restore"],
                        ["clients", "add"], ["clients", "list"], ["clients", "revoke"], ["status"]] {
            let result = try await CLI.run(command + ["--help"], in: ws.path)
            #expect(result.status == 0, "\(command)")
            #expect(result.stdout.contains("USAGE:"), "\(command)")
        }
    }

    @Test func unknownKeyIsAnError() async throws {
        let ws = Workspace()
        ws.createDatabase()
        let result = try await ws.run("keys", "disable", "ffff")
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("error: no key matches 'ffff'"))
    }

    /// A misspelt --db is an error an operator sees, not a new empty database that the command
    /// reads or changes instead of the real one: only `import` and `serve` create the file.
    @Test func onlyImportAndServeCreateADatabase() async throws {
        let ws = Workspace()
        let commands: [[String]] = [
            ["status"], ["keys", "list"], ["keys", "disable", "0001"], ["keys", "restore", "0001"], ["keys", "delete", "0001"],
            ["keys", "check", "--all"], ["upstreams", "list"], ["upstreams", "add", "https://relay.example.com"],
            ["upstreams", "disable", "1"], ["upstreams", "restore", "1"], ["clients", "list"], ["clients", "add", "alice"],
            ["clients", "revoke", "alice"], ["report", "clients"], ["report", "models"], ["report", "keys"],
            ["report", "upstreams"], ["report", "health"],
        ]
        for command in commands {
            let result = try await CLI.run(command + ["--db", "misspelt.db"], in: ws.path)
            #expect(result.status == 66, "\(command): \(result.all)")
            #expect(result.stderr == "error: no database at 'misspelt.db' (give --db PATH or set GEMINI_GATEWAY_DB; 'import' or 'serve' creates one)\n", "\(command)")
            #expect(result.stdout.isEmpty, "\(command)")
        }
        // The environment's path is refused the same way.
        let fromEnvironment = try await ws.run("keys", "list", environment: ["GEMINI_GATEWAY_DB": "other.db"])
        #expect(fromEnvironment.status == 66)
        #expect(fromEnvironment.stderr.contains("'other.db'"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: ws.path).isEmpty, "nothing was created")

        // `import` creates it; then the others open it.
        ws.write("proxy_urls.txt", "https://relay.example.com\n")
        #expect(try await ws.run("import", "--upstreams", "proxy_urls.txt", "--db", "new.db").status == 0)
        #expect(try await ws.run("upstreams", "list", "--db", "new.db").stdout.contains("https://relay.example.com"))
    }
}

@Suite struct SecretsNeverShownTests {
    @Test func noCommandPrintsAWholeKeyOrToken() async throws {
        let ws = Workspace()
        ws.write("api_keys.txt", secrets.enumerated().map { "\($1) proj-\($0)" }.joined(separator: "\n") + "\n\(secrets[0])x!\n")
        ws.write("proxy_urls.txt", "https://relay.example.com\n")
        var outputs: [CLIResult] = []
        outputs.append(try await ws.run("import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt"))
        outputs.append(try await ws.run("import", "--keys", "api_keys.txt", "--json"))
        outputs.append(try await ws.run("keys", "delete", secrets[2]))                    // selected by the whole key
        outputs.append(try await ws.run("keys", "disable", "0002"))
        outputs.append(try await ws.run("keys", "restore", "0002"))
        outputs.append(try await ws.run("keys", "disable", secrets[0] + "-unknown"))      // an unknown whole key
        outputs.append(try await ws.run("import", "--keys", "api_keys.txt"))
        outputs.append(try await ws.run("keys", "list"))
        outputs.append(try await ws.run("keys", "list", "--json"))
        outputs.append(try await ws.run("status"))
        outputs.append(try await ws.run("upstreams", "list", "--json"))
        let created = try await ws.run("clients", "add", "alice")
        #expect(created.status == 0)
        let token = created.stdout.split(separator: "\n").last.map(String.init)!
        #expect(token.hasPrefix("gw-"))
        outputs.append(try await ws.run("clients", "list"))
        outputs.append(try await ws.run("clients", "list", "--json"))
        outputs.append(try await ws.run("clients", "revoke", "alice"))
        for output in outputs {
            for secret in secrets {
                #expect(!output.all.contains(secret), "a command printed a whole key: \(output.all)")
            }
            #expect(!output.all.contains(token), "a command printed a whole token")
        }
        // The listing still identifies keys: by fingerprint and tail.
        let list = try await ws.run("keys", "list")
        #expect(list.stdout.contains(Secret.fingerprint(secrets[0])))
        #expect(list.stdout.contains("…0001"))
        #expect(list.stdout.contains("deleted by operator"))
        // The token is stored as its hash only.
        let queue = try DatabaseQueue(path: ws.path + "/gateway.db")
        let hashes = try await queue.read { db in try String.fetchAll(db, sql: "SELECT token_hash FROM clients") }
        #expect(hashes == [Secret.tokenHash(token)])
    }
}
