import FakeGemini
import Foundation
import GatewayCore
@testable import GatewayHTTP
import NIOCore
import NIOHTTP1
import NIOSSL
import Testing
import TestSupport

/// The upstream transport on its own, against the fake: keep-alive reuse, upstream closes,
/// timeouts, large and streamed bodies.
@Suite struct TransportTests {
    static func transport(configure: (inout UpstreamTimeouts) -> Void = { _ in }) throws -> NIOHTTP1Transport {
        var configuration = UpstreamTimeouts()
        // Loopback connects are immediate, but a loop busy with the whole suite may see the
        // completion seconds late: a short timeout here turned a busy machine into 502s.
        configuration.connectTimeout = .seconds(30)
        configure(&configuration)
        return try NIOHTTP1Transport(timeouts: configuration)
    }

    static func request(_ fake: FakeGemini, _ target: String, key: String = testKey("a"), body: String = #"{"contents":[]}"#) -> UpstreamRequest {
        var headers = HTTPHeaders()
        headers.add(name: "x-goog-api-key", value: key)
        headers.add(name: "Content-Type", value: "application/json")
        return UpstreamRequest(method: .POST, baseURL: fake.baseURL, target: target, headers: headers, body: ByteBuffer(string: body))
    }

    /// Runs `body` with a transport and a fake, and always shuts both down.
    static func withTransport(
        configure: (inout UpstreamTimeouts) -> Void = { _ in },
        _ body: (NIOHTTP1Transport, FakeGemini) async throws -> Void
    ) async throws {
        let fake = try await FakeGemini.start()
        let transport = try Self.transport(configure: configure)
        do {
            try await body(transport, fake)
        } catch {
            await transport.shutdown()
            await fake.stop()
            throw error
        }
        await transport.shutdown()
        await fake.stop()
    }

    static func readAll(_ response: UpstreamResponse) async throws -> [UInt8] {
        var body = response.body
        var bytes: [UInt8] = []
        while let chunk = try await body.next() { bytes += Array(buffer: chunk) }
        return bytes
    }

    /// Where the transport connects and what it sends as Host, from a stored base URL.
    @Test("base URLs become endpoints", arguments: [
        ("http://[::1]:8080/g", "::1", 8080, "[::1]:8080", "/g"),
        ("http://[::1]", "::1", 80, "[::1]", ""),
        ("https://Relay.Example/gemini/", "relay.example", 443, "relay.example", "/gemini"),
        ("https://bücher.example", "xn--bcher-kva.example", 443, "xn--bcher-kva.example", ""),
        ("http://127.0.0.1:9000/p%20q", "127.0.0.1", 9000, "127.0.0.1:9000", "/p%20q"),
    ])
    func endpoints(url: String, host: String, port: Int, authority: String, prefix: String) throws {
        let endpoint = try NIOHTTP1Transport.parse(url)
        #expect(endpoint.host.lowercased() == host)
        #expect(endpoint.port == port)
        #expect(endpoint.authority.lowercased() == authority)
        #expect(endpoint.pathPrefix == prefix)
        #expect(throws: UpstreamTransportError.self) { try NIOHTTP1Transport.parse("http://a%0d%0ax.example") }
    }

    @Test("many concurrent exchanges all complete")
    func concurrentExchanges() async throws {
        // All of them complete, however long 200 exchanges take on a busy machine (a head
        // deadline of 20 s was not enough in a full run).
        try await Self.withTransport(configure: { $0.responseHeadTimeout = .seconds(300) }) { transport, fake in
            let results = try await withTimeout(400) {
                try await withThrowingTaskGroup(of: String.self) { group in
                    for index in 0..<200 {
                        group.addTask {
                            do {
                                let response = try await transport.send(Self.request(fake, "/v1beta/models/m\(index % 7):generateContent"))
                                let body = try await Self.readAll(response)
                                return body.isEmpty ? "empty" : String(response.status)
                            } catch {
                                return String(describing: error)
                            }
                        }
                    }
                    var counts: [String: Int] = [:]
                    for try await result in group { counts[result, default: 0] += 1 }
                    return counts
                }
            }
            #expect(results == ["200": 200], "\(results)")
            #expect(fake.received().count == 200)
        }
    }

    @Test("a request that waits too long for its head times out")
    func headTimeout() async throws {
        try await Self.withTransport(configure: { $0.responseHeadTimeout = .milliseconds(500) }) { transport, fake in
            fake.setRules([.init(reply: .delay(.seconds(120), then: .ok))])
            // Without the timeout the answer would come, after two minutes.
            do {
                _ = try await transport.send(Self.request(fake, "/v1beta/models/m:generateContent"))
                Issue.record("expected a timeout")
            } catch let error as UpstreamTransportError {
                #expect(error.failure == .timeout, "\(error)")
                // Said as Swift's Duration says it (not rounded to whole seconds).
                #expect(error.detail == "no response head within 0.5 seconds", "\(error)")
            }
        }
    }

    /// The transport's connection timer is armed for the pool's 60 s when a request starts on
    /// a reused connection: the head's shorter deadline must still hold.
    @Test("a request on a reused connection times out waiting for its head too")
    func headTimeoutOnAPooledConnection() async throws {
        // Long enough that the answered request before it never hits it on a loaded machine, far
        // below the pool's 60 s and the two minutes the slow answer takes.
        try await Self.withTransport(configure: { $0.responseHeadTimeout = .seconds(15) }) { transport, fake in
            // A first exchange leaves the connection in the pool (its idle timer armed for 60 s).
            let first = try await transport.send(Self.request(fake, "/v1beta/models/m:generateContent"))
            #expect(first.status == 200)
            _ = try await Self.readAll(first)
            fake.setRules([.init(reply: .delay(.seconds(120), then: .ok))])
            let started = ContinuousClock.now
            do {
                _ = try await transport.send(Self.request(fake, "/v1beta/models/m:generateContent"))
                Issue.record("expected a timeout")
            } catch let error as UpstreamTransportError {
                #expect(error.failure == .timeout, "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(55), "the 15 s head timeout, not the 60 s pool timer or the slow answer")
            // And the pool goes on: the next request gets its answer.
            fake.clearRules()
            let next = try await transport.send(Self.request(fake, "/v1beta/models/m:generateContent"))
            #expect(next.status == 200)
            _ = try await Self.readAll(next)
        }
    }

    @Test("a stream that goes silent times out")
    func readIdleTimeout() async throws {
        // A read timeout with room for a loaded machine (10 s was not enough in full runs), and a
        // silence much longer.
        try await Self.withTransport(configure: { $0.readIdleTimeout = .seconds(30) }) { transport, fake in
            fake.setRules([.init(reply: .sse(events: ["{}", "{}", "{}"], interval: .seconds(600)))])
            let response = try await transport.send(Self.request(fake, "/v1beta/models/m:streamGenerateContent?alt=sse"))
            #expect(response.status == 200)
            let started = ContinuousClock.now
            do {
                _ = try await Self.readAll(response)
                Issue.record("expected a timeout")
            } catch let error as UpstreamTransportError {
                #expect(error.failure == .timeout, "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(300), "the 30 s read timeout, not the ten minutes of silence")
        }
    }

    @Test("an upstream that closes fails the exchange")
    func upstreamCloses() async throws {
        try await Self.withTransport { transport, fake in
            // Warm a keep-alive connection, then have the upstream hang up on the next request.
            #expect(try await Self.readAll(transport.send(Self.request(fake, "/v1beta/models/m:generateContent"))).count > 0)
            fake.setRules([.init(times: 1, reply: .closeConnection)])
            await #expect(throws: UpstreamTransportError.self) {
                _ = try await transport.send(Self.request(fake, "/v1beta/models/m:generateContent"))
            }
            // Mid-body: the body stream fails instead of ending cleanly.
            fake.setRules([.init(reply: .sse(events: ["{}", "{}", "{}", "{}"], failAfter: 2))])
            let response = try await transport.send(Self.request(fake, "/v1beta/models/m:streamGenerateContent?alt=sse"))
            await #expect(throws: UpstreamTransportError.self) { _ = try await Self.readAll(response) }
            // And the transport still works afterwards.
            fake.clearRules()
            #expect(try await transport.send(Self.request(fake, "/v1beta/models/m:generateContent")).status == 200)
        }
    }

    @Test("large bodies go both ways intact")
    func largeBodies() async throws {
        try await Self.withTransport { transport, fake in
            let big = String(repeating: "x", count: 5 << 20)
            let events = (0..<200).map { #"{"text":"\#(String(repeating: "y", count: 20_000))-\#($0)"}"# }
            fake.setRules([.init(reply: .sse(events: events, interval: .zero))])
            let response = try await transport.send(Self.request(fake, "/v1beta/models/m:streamGenerateContent?alt=sse", body: big))
            let received = try await Self.readAll(response)
            let expected = events.map { "data: \($0)\r\n\r\n" }.joined()
            #expect(received.count == expected.utf8.count)
            #expect(received == Array(expected.utf8))
            #expect(fake.received().first?.body.count == big.utf8.count)
        }
    }

    @Test func httpsUpstreamsAreVerifiedAgainstTheTrustedCA() async throws {
        let pki = try await TestPKI()
        let server = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(pki.serverCertificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: pki.serverKey, format: .pem))
        )
        let fake = try await FakeGemini.start(host: "localhost", tls: server)
        #expect(fake.baseURL.hasPrefix("https://localhost:"))
        // Trusting the test CA: the exchange works over TLS.
        let trusting = try NIOHTTP1Transport(trustRoots: pki.caCertificate)
        let answer = try await trusting.send(Self.request(fake, "/v1beta/models/m:generateContent"))
        #expect(answer.status == 200)
        #expect(try await Self.readAll(answer).count > 0)
        // By its IP address (connected to without the resolver, no SNI): the certificate's
        // IP:127.0.0.1 is checked.
        var byAddress = Self.request(fake, "/v1beta/models/m:generateContent")
        byAddress.baseURL = fake.baseURL.replacingOccurrences(of: "localhost", with: "127.0.0.1")
        let viaIP = try await trusting.send(byAddress)
        #expect(viaIP.status == 200)
        #expect(try await Self.readAll(viaIP).count > 0)
        // Not trusting it: the certificate is refused, as a TLS failure.
        let strict = try NIOHTTP1Transport()
        do {
            _ = try await strict.send(Self.request(fake, "/v1beta/models/m:generateContent"))
            Issue.record("an untrusted certificate was accepted")
        } catch let error as UpstreamTransportError {
            #expect(error.failure == .tls, "\(error)")
        }
        #expect(fake.received().count == 2)
        await trusting.shutdown()
        await strict.shutdown()
        await fake.stop()
        pki.remove()
    }
}

/// A throwaway certificate authority and a server certificate for localhost/127.0.0.1, made with
/// the openssl command.
struct TestPKI {
    let directory: String
    var caCertificate: String { directory + "/ca.pem" }
    var serverCertificate: String { directory + "/server.pem" }
    var serverKey: String { directory + "/server.key" }

    init() async throws {
        directory = NSTemporaryDirectory() + "gateway-pki-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n".utf8)
            .write(to: URL(fileURLWithPath: directory + "/ext.cnf"))
        try await Self.openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                          "-days", "2", "-subj", "/CN=gateway test CA"], in: directory)
        try await Self.openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                          "-subj", "/CN=localhost"], in: directory)
        try await Self.openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                          "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"], in: directory)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }

    private static func openssl(_ arguments: [String], in directory: String) async throws {
        let openssl = try await ChildProcess("/usr/bin/openssl", arguments, directory: directory, environment: ProcessInfo.processInfo.environment)
        guard await openssl.waitForExit(timeout: patience) == 0 else { throw POSIXError(.EINVAL) }
    }
}
