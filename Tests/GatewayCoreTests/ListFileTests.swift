import Foundation
import GatewayCore
import Testing
import TestSupport

@Suite struct KeyFileTests {
    func parse(_ text: String) -> ListFile.Parsed<ListFile.KeyEntry> {
        ListFile.parseKeys(Array(text.utf8))
    }

    @Test func commentsBlankLinesWhitespaceAndLabels() {
        let parsed = parse("""
            # production keys
            AIzaKeyNumberOne0000000000000000000001

              AIzaKeyNumberTwo0000000000000000000002   project-a
            AQ.KeyNumberThree_000000000000000000003,project-b
            AIzaKeyNumberFour000000000000000000004 , project-c   # trailing comment
            """)
        #expect(parsed.rejected == [])
        #expect(parsed.entries.map(\.secret) == [
            "AIzaKeyNumberOne0000000000000000000001", "AIzaKeyNumberTwo0000000000000000000002",
            "AQ.KeyNumberThree_000000000000000000003", "AIzaKeyNumberFour000000000000000000004",
        ])
        #expect(parsed.entries.map(\.project) == [nil, "project-a", "project-b", "project-c"])
        #expect(parsed.entries.map(\.line) == [2, 4, 5, 6])
    }

    @Test func crlfBomAndTrailingSpaces() {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("AIzaFirstKey0000000001  \r\nAIzaSecondKey000000002\t\r\n\r\n".utf8)
        let parsed = ListFile.parseKeys(bytes)
        #expect(parsed.rejected == [])
        #expect(parsed.entries.map(\.secret) == ["AIzaFirstKey0000000001", "AIzaSecondKey000000002"])
    }

    @Test func duplicatesInTheFileAreCountedOnce() {
        let parsed = parse("AIzaSameKey00000000001\nAIzaSameKey00000000001 label\nAIzaOtherKey0000000002\n")
        #expect(parsed.entries.map(\.secret) == ["AIzaSameKey00000000001", "AIzaOtherKey0000000002"])
        #expect(parsed.duplicatesInFile == 1)
    }

    @Test func badLinesAreRejectedWithLineNumbersAndTheRestKept() {
        var bytes = Array("AIzaGoodKey00000000001\n".utf8)
        bytes += Array("AIza\u{01}ControlChar000001\n".utf8)              // line 2: control character
        bytes += [0xFF, 0xFE, 0x00, 0x41, 0x0A]                             // line 3: binary garbage
        bytes += [UInt8](repeating: 0x41, count: 1 << 20) + [0x0A]         // line 4: a 1 MB line
        bytes += Array("AIza key with spaces?!\n".utf8)                    // line 5: too many fields
        bytes += Array("AIzaBad$Character00001\n".utf8)                    // line 6: a character no key has
        bytes += Array("short\n".utf8)                                     // line 7: too short
        bytes += Array("AIzaGoodKey00000000002 bad|label\n".utf8)          // line 8: bad label
        bytes += Array("AIzaGoodKey00000000003".utf8)                      // line 9: no final newline
        let parsed = ListFile.parseKeys(bytes)
        #expect(parsed.entries.map(\.secret) == ["AIzaGoodKey00000000001", "AIzaGoodKey00000000003"])
        #expect(parsed.entries.map(\.line) == [1, 9])
        #expect(parsed.rejected.map(\.line) == [2, 3, 4, 5, 6, 7, 8])
        let reasons = parsed.rejected.map(\.reason)
        #expect(reasons[0].contains("control character"))
        #expect(reasons[1].contains("control character") || reasons[1].contains("UTF-8"))
        #expect(reasons[2].contains("1048576 bytes"))
        #expect(reasons[3].contains("fields"))
        #expect(reasons[4].contains("'$'"))
        #expect(reasons[5].contains("8 to 256"))
        #expect(reasons[6].contains("project label"))
    }

    @Test func invalidUTF8IsRejected() {
        let parsed = ListFile.parseKeys([0x41, 0x49, 0x7A, 0x61, 0xC3, 0x28, 0x41, 0x41, 0x41, 0x41, 0x41, 0x0A])
        #expect(parsed.entries.isEmpty)
        #expect(parsed.rejected.first?.reason.contains("UTF-8") == true)
    }

    @Test func rejectionsNeverQuoteTheKey() {
        let secret = "AIzaSecretThatMustNotLeak000000000000"
        let parsed = parse("\(secret) label extra\n\(secret)#\n\(secret)$\n")
        #expect(!parsed.rejected.isEmpty)
        #expect(parsed.rejected.allSatisfy { !$0.reason.contains(secret) && !$0.reason.contains("MustNotLeak") })
    }

    @Test func aHundredThousandLines() async throws {
        let parsed = try await onOwnThread {
            let text = (0..<100_000).map { String(format: "AIzaGeneratedKey%020d", $0) }.joined(separator: "\r\n")
            return ListFile.parseKeys(Array(text.utf8))
        }
        #expect(parsed.entries.count == 100_000)
        #expect(parsed.rejected.isEmpty)
    }
}

@Suite struct UpstreamFileTests {
    @Test("normalised URLs", arguments: [
        ("https://generativelanguage.googleapis.com/", "https://generativelanguage.googleapis.com"),
        ("HTTPS://Relay.Example.COM:8443/gemini//", "https://relay.example.com:8443/gemini"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://[::1]:8080/v", "http://[::1]:8080/v"),
        ("http://relay_1.internal", "http://relay_1.internal"),
        ("https://xn--bcher-kva.example/g", "https://xn--bcher-kva.example/g"),
        ("https://Bücher.example/g", "https://xn--bcher-kva.example/g"),
    ])
    func normalised(input: String, expected: String) throws {
        #expect(try ListFile.normalizeUpstreamURL(input).get() == expected)
    }

    @Test("rejected URLs", arguments: [
        ("ftp://example.com", "scheme"),
        ("https://", "host"),
        ("example.com", "URL"),
        ("https://example.com/?key=1", "query"),
        ("https://example.com/#frag", "fragment"),
        ("https://user:pass@example.com", "credentials"),
        ("https://exa mple.com", "spaces"),
        ("https://example.com/\u{9b}31m", "control"),
        ("https://example.com/\u{202e}x", "control"),
        ("https://exa\u{a0}mple.com", "spaces"),
        // Percent-encoding in a host would be decoded on the way to the connection: a line
        // break in the Host header, or another host than the one written.
        ("https://a%0d%0ax.example", "not a host name"),
        ("https://exa%2Fmple.com", "not a host name"),
        ("http://[fe80::1%25eth0]/", "not a host name"),
    ])
    func rejected(input: String, expected: String) {
        guard case .failure(let error) = ListFile.normalizeUpstreamURL(input) else {
            Issue.record("\(input) was accepted")
            return
        }
        #expect(error.message.contains(expected))
    }

    @Test func fileWithCommentsDuplicatesAndBadLines() {
        let parsed = ListFile.parseUpstreams(Array("""
            # relays
            https://relay-one.example.com/
            https://relay-one.example.com
            not a url
            https://relay-two.example.com/v1proxy  # second relay
            """.utf8))
        #expect(parsed.entries.map(\.baseURL) == ["https://relay-one.example.com", "https://relay-two.example.com/v1proxy"])
        #expect(parsed.duplicatesInFile == 1)
        #expect(parsed.rejected.map(\.line) == [4])
    }
}
