import Testing
@testable import GatewayCore

@Suite struct SettingsFileTests {
    @Test func readsTheEnvironmentFileFormat() throws {
        let text = "\u{FEFF}# comment\r\n; also a comment\n\nGW_PORT=8001\r\nexport GW_HOST = 127.0.0.1 \nGW_TOKEN=\"a \\\"quoted\\\" value\"\nGW_NOTE='single # not a comment'\nGW_EMPTY=\n"
        let file = try SettingsFile.parse(text, prefix: "GW_")
        #expect(file.values == [
            "GW_PORT": "8001", "GW_HOST": "127.0.0.1", "GW_TOKEN": #"a "quoted" value"#,
            "GW_NOTE": "single # not a comment", "GW_EMPTY": "",
        ])
    }

    @Test(arguments: [
        ("GW_PORT 8001", 1, "expected NAME=VALUE"),
        ("# ok\nOTHER=1", 2, "unknown setting OTHER"),
        ("GW_PROT=1", 1, "unknown setting GW_PROT"),
        ("GW-PORT=1", 1, "'GW-PORT' is not a variable name"),
        ("GW_PORT=\"8001", 1, "the value's closing \" is missing"),
    ])
    func namesTheLineOfAProblem(text: String, line: Int, message: String) {
        #expect(throws: SettingsFile.Problem(line: line, message: message)) {
            try SettingsFile.parse(text, prefix: "GW_", known: ["GW_PORT", "GW_HOST"])
        }
    }
}
