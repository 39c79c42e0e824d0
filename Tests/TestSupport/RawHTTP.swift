// A blocking TCP client for bytes no HTTP client would send, and for reading exactly what a
// server wrote: each answer is read whole by its own framing (its head, then its length, its
// chunks or the close), never by a pause, so that a busy machine only makes it slower.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP answer as it came off the wire.
public struct RawAnswer: Sendable, CustomStringConvertible {
    /// The status line and the header lines, without the blank line that ends them.
    public let head: String
    public let version: String
    public let status: Int
    public let headers: [(String, String)]
    /// The body as framed on the wire (chunk sizes included for a chunked one).
    public let body: [UInt8]

    /// Head and body as the server sent them.
    public var text: String { head + "\r\n\r\n" + bodyText }
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
    public var description: String { String(text.prefix(600)) }

    /// The first value of header `name` (any case).
    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// How many times header `name` (any case) is present.
    public func count(of name: String) -> Int {
        headers.filter { $0.0.lowercased() == name.lowercased() }.count
    }
}

/// A read that ended before what it waited for: says why, and what had been read.
public struct RawReadError: Error, CustomStringConvertible {
    public let reason: String
    public let received: [UInt8]
    public var description: String {
        "\(reason); read \(received.count) bytes: \(String(decoding: received.prefix(600), as: UTF8.self))"
    }
}

/// A blocking TCP connection to 127.0.0.1. Use it inside ``withRawConnection(port:_:)``, which
/// runs it on a thread of its own, off the few threads the servers' tasks need.
public final class RawConnection: @unchecked Sendable {
    private var fd: Int32
    /// Bytes read past the end of the last answer (the start of a pipelined one).
    private var pending: [UInt8] = []
    /// The server closed its side (or reset the connection).
    public private(set) var closedByServer = false

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let failure = errno
            Glibc.close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: failure) ?? .ECONNREFUSED)
        }
    }

    deinit { close() }

    public func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    /// Sends all of `bytes` (a server that closed early makes the rest fail silently: what it
    /// answered is still there to read).
    public func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }

    public func send(_ text: String) { send(Array(text.utf8)) }

    /// Shuts the sending side down (what `nc` does at the end of its input): the server reads
    /// the end of the stream, and can still answer.
    public func shutdownSending() {
        guard fd >= 0 else { return }
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads one whole answer to a request of `method`: an interim (1xx) head, a head alone (HEAD,
    /// 204, 304), a body of its Content-Length, a chunked body to its last chunk, or (neither) a
    /// body that ends with the connection. Throws ``RawReadError`` when the connection ends first
    /// or `timeout` seconds pass.
    public func readAnswer(to method: String = "POST", timeout: Double = patience) throws -> RawAnswer {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1_000))
        var headEnd: Int?
        while true {
            if headEnd == nil, let end = pending.firstRange(of: [13, 10, 13, 10]) { headEnd = end.lowerBound }
            if let headEnd {
                let head = String(decoding: pending[..<headEnd], as: UTF8.self)
                let (version, status, headers) = try Self.parse(head: head, received: pending)
                let bodyStart = headEnd + 4
                let available = pending[bodyStart...]
                let length: Int?
                if (100..<200).contains(status) || method == "HEAD" || status == 204 || status == 304 {
                    length = 0
                } else if headers.contains(where: { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased().contains("chunked") }) {
                    length = try Self.chunkedLength(available, received: pending)
                } else if let value = headers.first(where: { $0.0.lowercased() == "content-length" })?.1 {
                    guard let declared = Int(value.trimmingCharacters(in: .whitespaces)) else {
                        throw RawReadError(reason: "a Content-Length that is not a number", received: pending)
                    }
                    length = available.count >= declared ? declared : nil
                } else {
                    length = closedByServer ? available.count : nil
                }
                if let length {
                    let answer = RawAnswer(head: head, version: version, status: status, headers: headers, body: Array(available.prefix(length)))
                    pending.removeFirst(bodyStart + length)
                    return answer
                }
            }
            if closedByServer {
                throw RawReadError(reason: "the server closed the connection before the answer was complete", received: pending)
            }
            try readMore(until: deadline, waitingFor: "a complete answer")
        }
    }

    /// Reads until the server closes the connection; returns what came after the last answer
    /// read. Throws ``RawReadError`` when it is still open after `timeout` seconds.
    public func readToClose(timeout: Double = patience) throws -> [UInt8] {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1_000))
        while !closedByServer { try readMore(until: deadline, waitingFor: "the server to close the connection") }
        defer { pending.removeAll() }
        return pending
    }

    private func readMore(until deadline: ContinuousClock.Instant, waitingFor what: String) throws {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                throw RawReadError(reason: "no \(what) within the deadline", received: pending)
            }
            let milliseconds = Int32(min(left / .milliseconds(1) + 1, 1_000))
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { break }
            if ready < 0 && errno != EINTR {
                throw RawReadError(reason: "poll failed (errno \(errno))", received: pending)
            }
        }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let count = recv(fd, &buffer, buffer.count, 0)
        if count > 0 {
            pending += buffer[0..<count]
        } else if count == 0 || errno == ECONNRESET {
            // 0: the server closed; ECONNRESET: it closed with bytes of ours unread.
            closedByServer = true
        } else if errno != EINTR && errno != EAGAIN {
            throw RawReadError(reason: "recv failed (errno \(errno))", received: pending)
        }
    }

    private static func parse(head: String, received: [UInt8]) throws -> (String, Int, [(String, String)]) {
        let lines = head.components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let status = Int(statusLine[1]) else {
            throw RawReadError(reason: "not an HTTP status line", received: received)
        }
        let headers = lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return (String(statusLine[0]), status, headers)
    }

    /// The length of a complete chunked body at the start of `bytes` (its last chunk and the
    /// blank line after it included), or nil while it is incomplete.
    private static func chunkedLength(_ bytes: ArraySlice<UInt8>, received: [UInt8]) throws -> Int? {
        var index = bytes.startIndex
        while true {
            guard let lineEnd = bytes[index...].firstRange(of: [13, 10]) else { return nil }
            let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else {
                throw RawReadError(reason: "a chunk size that is not hexadecimal: \(sizeText)", received: received)
            }
            index = lineEnd.upperBound
            if size == 0 {
                // Trailer lines, then the blank line.
                while true {
                    guard let end = bytes[index...].firstRange(of: [13, 10]) else { return nil }
                    let empty = end.lowerBound == index
                    index = end.upperBound
                    if empty { return index - bytes.startIndex }
                }
            }
            guard bytes.endIndex - index >= size + 2 else { return nil }
            guard bytes[index + size] == 13, bytes[index + size + 1] == 10 else {
                throw RawReadError(reason: "a chunk not followed by CRLF", received: received)
            }
            index += size + 2
        }
    }
}

/// Opens a raw connection to 127.0.0.1:port and runs `body` with it on a thread of its own
/// (blocking reads must not hold one of the few threads the servers' tasks need); closes it after.
public func withRawConnection<T: Sendable>(port: Int, _ body: @escaping @Sendable (RawConnection) throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result {
                let connection = try RawConnection(port: port)
                defer { connection.close() }
                return try body(connection)
            })
        }
    }
}
