import GatewayCore
import Testing

/// Stored token hashes and key fingerprints are lowercase hex SHA-256 of the UTF-8 bytes: databases
/// made by earlier versions keep working only while that stays so.
@Suite struct SHA256Tests {
    @Test("NIST test vectors", arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("é", "4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c"),
    ])
    func vectors(input: String, expected: String) {
        #expect(Secret.sha256Hex(input) == expected)
        #expect(Secret.tokenHash(input) == expected)
    }
}

@Suite struct SecretTests {
    let key = "AIzaSyD-fake-key-for-tests-0000000abcd"

    @Test func fingerprintIsStableShortAndRevealsNothing() {
        let fingerprint = Secret.fingerprint(key)
        #expect(fingerprint.count == 12)
        #expect(fingerprint == String(Secret.sha256Hex(key).prefix(12)))
        #expect(!key.contains(fingerprint))
        #expect(Secret.fingerprint(key + "x") != fingerprint)
    }

    @Test func redactedShowsOnlyTheTail() {
        #expect(Secret.redacted(key) == "…abcd")
        #expect(Secret.tail(key) == "abcd")
    }

    @Test func newTokensAreLongAndDistinct() {
        let tokens = (0..<200).map { _ in Secret.newToken() }
        #expect(Set(tokens).count == 200)
        #expect(tokens.allSatisfy { $0.hasPrefix("gw-") && $0.count == 43 })
    }

    @Test func constantTimeEquals() {
        #expect(Secret.constantTimeEquals("gw-abc", "gw-abc"))
        #expect(!Secret.constantTimeEquals("gw-abc", "gw-abd"))
        #expect(!Secret.constantTimeEquals("gw-abc", "gw-ab"))
        #expect(!Secret.constantTimeEquals("", "x"))
        #expect(Secret.constantTimeEquals("", ""))
    }
}
