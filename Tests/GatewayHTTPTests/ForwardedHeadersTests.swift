@testable import GatewayHTTP
import NIOHTTP1
import Testing

/// Which headers cross the gateway, each way, on their own (the proxy tests see them end to end).
@Suite struct ForwardedHeadersTests {
    private func pairs(_ headers: HTTPHeaders) -> [String] {
        headers.map { "\($0.name): \($0.value)" }
    }

    @Test func towardTheClientHopByHopHeadersAndTheLengthAreDropped() {
        let upstream = HTTPHeaders([
            ("Content-Type", "application/json; charset=UTF-8"), ("Vary", "Origin"),
            ("Connection", "keep-alive, X-Relay-Hop"), ("x-relay-hop", "1"), ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"), ("content-length", "12"), ("Server-Timing", "gfet4t7; dur=812"),
            ("TE", "trailers"), ("Trailer", "x"), ("Upgrade", "h2c"), ("Proxy-Authenticate", "Basic"), ("X-Cloud-Trace", "a"),
        ])
        // The wire writes the framing itself (HTTPWire); everything else keeps its order and case.
        #expect(pairs(ForwardedHeaders.toClient(upstream)) == [
            "Content-Type: application/json; charset=UTF-8", "Vary: Origin", "Server-Timing: gfet4t7; dur=812", "X-Cloud-Trace: a",
        ])
    }

    @Test func towardTheUpstreamOnlyThePoolKeyIsACredential() {
        let client = HTTPHeaders([
            ("Host", "gateway.local"), ("Content-Type", "application/json"), ("Content-Length", "42"),
            ("X-Goog-Api-Key", "gateway-token"), ("Authorization", "Bearer gateway-token"), ("Cookie", "a=b"),
            ("Accept-Encoding", "gzip"), ("Expect", "100-continue"), ("Connection", "close, X-Trace"), ("x-trace", "1"),
            ("User-Agent", "google-genai-sdk/1.0"), ("x-goog-api-client", "genai-py/1.0"),
        ])
        #expect(pairs(ForwardedHeaders.toUpstream(client, credential: "AIzaKEY", bearer: false)) == [
            "Content-Type: application/json", "User-Agent: google-genai-sdk/1.0", "x-goog-api-client: genai-py/1.0",
            "x-goog-api-key: AIzaKEY",
        ])
        // The OpenAI-compatible endpoints take the key as a bearer token.
        #expect(pairs(ForwardedHeaders.toUpstream(client, credential: "AIzaKEY", bearer: true)).last == "Authorization: Bearer AIzaKEY")
    }

    @Test func theClientsAddressGoesUpstreamOnlyWhenTheOperatorKeepsIt() {
        let address = [
            ("X-Forwarded-For", "203.0.113.7"), ("x-forwarded-proto", "https"), ("X-FORWARDED-HOST", "gw.example"),
            ("X-Real-IP", "203.0.113.7"), ("Forwarded", "for=203.0.113.7"), ("Via", "1.1 lb"),
            ("CF-Connecting-IP", "203.0.113.7"), ("True-Client-IP", "203.0.113.7"),
        ]
        let client = HTTPHeaders([("Content-Type", "application/json")] + address + [("X-Forwarded", "not an address header")])
        #expect(pairs(ForwardedHeaders.toUpstream(client, credential: "AIzaKEY", bearer: false)) == [
            "Content-Type: application/json", "X-Forwarded: not an address header", "x-goog-api-key: AIzaKEY",
        ])
        #expect(pairs(ForwardedHeaders.toUpstream(client, credential: "AIzaKEY", bearer: false, keepClientAddress: true)) ==
            ["Content-Type: application/json"] + address.map { "\($0.0): \($0.1)" } + ["X-Forwarded: not an address header", "x-goog-api-key: AIzaKEY"])
    }
}
