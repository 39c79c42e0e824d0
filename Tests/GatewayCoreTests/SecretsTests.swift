import GatewayCore
import Testing

@Suite struct SHA256Tests {
    @Test("NIST test vectors", arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func vectors(input: String, expected: String) {
        #expect(SHA256.hex(input) == expected)
    }

    @Test func millionAs() {
        let digest = SHA256.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
        #expect(hexString(digest) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func paddingBoundaries() {
        // Lengths around the 55/56/64-byte padding edges must all differ and be 32 bytes.
        let digests = (50...70).map { SHA256.digest([UInt8](repeating: 0x61, count: $0)) }
        #expect(digests.allSatisfy { $0.count == 32 })
        #expect(Set(digests.map { hexString($0) }).count == digests.count)
    }
}

@Suite struct SecretTests {
    let key = "AIzaSyD-fake-key-for-tests-0000000abcd"

    @Test func fingerprintIsStableShortAndRevealsNothing() {
        let fingerprint = Secret.fingerprint(key)
        #expect(fingerprint.count == 12)
        #expect(fingerprint == String(SHA256.hex(key).prefix(12)))
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
