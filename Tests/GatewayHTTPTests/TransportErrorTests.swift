import Foundation
import Glibc
import GatewayCore
@testable import GatewayHTTP
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing

/// The one classifier of transport errors (`Upstream/TransportError.swift`): each error a
/// connection to an upstream can end with, and the failure it is classified as, by its type and
/// errno, never by its text.
@Suite struct TransportErrorTests {
    typealias Failure = OutcomeClassifier.TransportFailure

    /// An error of a type the classifier does not know, whose text names every failure.
    struct Unknown: Error, CustomStringConvertible {
        var description: String { "Connection refused: connection reset, SSL certificate handshake timed out, getaddrinfo failed" }
    }

    static let table: [(any Error, Failure)] = [
        // The transport's own, made where they happen (head and read timeouts, early closes).
        (UpstreamTransportError(failure: .timeout, detail: "no response head within 0.5 s"), .timeout),
        (UpstreamTransportError(failure: .connectionReset, detail: "connection closed mid-body"), .connectionReset),
        // System errors, by errno.
        (IOError(errnoCode: ECONNREFUSED, reason: "connect"), .connectionRefused),
        (IOError(errnoCode: ECONNRESET, reason: "read"), .connectionReset),
        (IOError(errnoCode: EPIPE, reason: "write"), .connectionReset),
        (IOError(errnoCode: ECONNABORTED, reason: "read"), .connectionReset),
        (IOError(errnoCode: ETIMEDOUT, reason: "connect"), .timeout),
        (IOError(errnoCode: EHOSTUNREACH, reason: "connect"), .hostUnreachable),
        (IOError(errnoCode: EHOSTDOWN, reason: "connect"), .hostUnreachable),
        (IOError(errnoCode: ENETUNREACH, reason: "connect"), .networkUnreachable),
        (IOError(errnoCode: ENETDOWN, reason: "connect"), .networkUnreachable),
        (IOError(errnoCode: EMFILE, reason: "socket"), .localResources),
        (IOError(errnoCode: ENFILE, reason: "socket"), .localResources),
        (IOError(errnoCode: ENOBUFS, reason: "connect"), .localResources),
        (IOError(errnoCode: ENOMEM, reason: "socket"), .localResources),
        (IOError(errnoCode: EADDRNOTAVAIL, reason: "connect"), .localResources),
        (IOError(errnoCode: EACCES, reason: "connect"), .other),
        // SwiftNIO's channel errors.
        (ChannelError.connectTimeout(.milliseconds(500)), .timeout),
        (ChannelError.eof, .connectionReset),
        (ChannelError.ioOnClosedChannel, .connectionReset),
        (ChannelError.alreadyClosed, .connectionReset),
        (ChannelError.outputClosed, .connectionReset),
        // TLS.
        (NIOSSLError.handshakeFailed(.sslError([])), .tls),
        (NIOSSLError.uncleanShutdown, .tls),
        (BoringSSLError.syscallError, .tls),
        (NIOSSLExtraError.failedToValidateHostname, .tls),
        (NIOTLSUnwrappingError.alreadyClosed, .tls),
        // (NIOSSLCloseTimedOutError, also .tls, has no public initialiser.)
        // A wait given up because the request's task was cancelled (its client went away).
        (CancellationError(), .cancelled),
        // Anything else: a malformed answer, a type never seen.
        (HTTPParserError.invalidStatus, .other),
        (Unknown(), .other),
    ]

    @Test("each error is classified by its type and errno", arguments: table)
    func classification(error: any Error, failure: Failure) {
        #expect(Failure(classifying: error) == failure, "\(error)")
        #expect(UpstreamTransportError(error).failure == failure, "\(error)")
    }

    /// A host whose every address failed (`NIOConnectionError`), by its attempts.
    @Test("every address failed: a local shortage first, else the first named failure, no address at all is DNS", arguments: [
        ([], .dns),
        ([IOError(errnoCode: ECONNREFUSED, reason: "connect")], .connectionRefused),
        ([IOError(errnoCode: ECONNREFUSED, reason: "connect"), IOError(errnoCode: EMFILE, reason: "socket")], .localResources),
        ([IOError(errnoCode: EACCES, reason: "connect"), IOError(errnoCode: ENETUNREACH, reason: "connect")], .networkUnreachable),
        ([ChannelError.connectTimeout(.seconds(1)), IOError(errnoCode: ECONNREFUSED, reason: "connect")], .timeout),
        ([IOError(errnoCode: EACCES, reason: "connect")], .other),
    ] as [([any Error], Failure)])
    func attempts(errors: [any Error], failure: Failure) {
        #expect(Failure(attempts: errors) == failure, "\(errors)")
    }

    @Test func anErrorOfAnUnknownTypeSaysItsTypeButNotItsFailure() {
        let error = UpstreamTransportError(Unknown())
        #expect(error.failure == .other)
        #expect(error.detail.hasPrefix("GatewayHTTPTests.TransportErrorTests.Unknown: "), "\(error.detail)")
    }

    @Test func aLocalShortageIsTheGatewaysFailureNotTheUpstreams() {
        for (error, failure) in Self.table {
            let verdict = OutcomeClassifier.classify(transport: UpstreamTransportError(error).failure)
            #expect((verdict == .localFailure(reason: "LOCAL_RESOURCES")) == (failure == .localResources), "\(error): \(verdict)")
        }
    }

    // MARK: The errors SwiftNIO really makes

    /// Every address of a name refused (SwiftNIO's happy eyeballs): a `NIOConnectionError`.
    @Test func aNameWhoseEveryAddressRefusesIsRefused() async throws {
        try await Self.withRefusingPort { port in
            let error = await #expect(throws: NIOConnectionError.self) {
                try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            }
            #expect(error.map { Failure(classifying: $0) } == .connectionRefused, "\(String(describing: error))")
        }
    }

    /// A name that does not resolve (no resolver is asked: this one fails every query).
    @Test func aNameThatDoesNotResolveIsDNS() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let error = await #expect(throws: NIOConnectionError.self) {
            try await ClientBootstrap(group: loop).resolver(Unresolving(loop: loop)).connect(host: "upstream.invalid", port: 443).get()
        }
        #expect(error.map { Failure(classifying: $0) } == .dns, "\(String(describing: error))")
    }

    /// The transport itself, to an address where nothing listens.
    @Test func theTransportSaysRefused() async throws {
        let transport = try NIOHTTP1Transport()
        try await Self.withRefusingPort { port in
            let request = UpstreamRequest(
                method: .GET, baseURL: "http://127.0.0.1:\(port)", target: "/v1beta/models", headers: [:], body: ByteBuffer()
            )
            let error = await #expect(throws: UpstreamTransportError.self) { try await transport.send(request) }
            #expect(error?.failure == .connectionRefused, "\(String(describing: error))")
        }
        await transport.shutdown()
    }

    /// Runs `body` with a port of 127.0.0.1 that refuses connections: a socket bound to it that
    /// never listens, and holds the port meanwhile (a port merely closed again may be handed to
    /// another test's listener at once).
    static func withRefusingPort(_ body: (Int) async throws -> Void) async throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
        guard bound == 0 else { throw IOError(errnoCode: errno, reason: "bind") }
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        guard named == 0 else { throw IOError(errnoCode: errno, reason: "getsockname") }
        try await body(Int(UInt16(bigEndian: address.sin_port)))
    }

    /// A resolver whose every query fails.
    struct Unresolving: Resolver, Sendable {
        let loop: any EventLoop
        func initiateAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> {
            loop.makeFailedFuture(SocketAddressError.unsupported)
        }
        func initiateAAAAQuery(host: String, port: Int) -> EventLoopFuture<[SocketAddress]> {
            loop.makeFailedFuture(SocketAddressError.unsupported)
        }
        func cancelQueries() {}
    }
}
