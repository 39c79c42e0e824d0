import NIOCore
import NIOHTTP1

/// The place in a pipeline, next to the socket (or TLS), where the proxy writes HTTP/1.1 bytes it
/// has framed itself: a request to an upstream, an answer to a client.
///
/// SwiftNIO's way is to write a head, body parts and an end as `HTTPPart`s, which its encoder
/// frames; each part passes every outbound handler on the way, as an `NIOAny` each of them casts.
/// That was about a tenth of the instructions of a proxied request (bench/RESULTS.md). A head the
/// proxy serialises itself, with a small body in the same buffer, goes out in one write from here.
///
/// It lends its context, whose writes go on toward the socket, and passes every outbound event
/// on unchanged (SwiftNIO admits no handler that is neither inbound nor outbound).
final class HTTPWire: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Bodies up to this size are copied behind their head, so that both go out as one buffer;
    /// larger ones are written as they are, after it.
    static let copiedBody = 16 * 1024

    /// How a response's body goes out (what SwiftNIO's encoder would make of its head).
    enum Framing {
        /// No body: the answer to a `HEAD`, or a status that has none (1xx, 204, 304).
        case none
        /// As it is: its length is in the head, or (HTTP/1.0) the connection's close ends it.
        case plain
        case chunked
    }

    /// Serialises a response head as SwiftNIO's encoder would, and returns how its body is to be
    /// framed: the status line in `version`, the headers except `Content-Length` and
    /// `Transfer-Encoding` (the framing is written here, once), `Connection: <connection>` if
    /// given, then the body's length when it is known, else chunks (HTTP/1.1) or nothing (the
    /// connection's close ends the body). A status without a body gets no framing headers at all;
    /// the answer to a `HEAD` (`headOnly`) keeps those of its `GET` but has no body.
    static func writeResponseHead(
        _ head: HTTPResponseHead, version: HTTPVersion, connection: StaticString?, contentLength: Int?, headOnly: Bool,
        into bytes: inout ByteBuffer
    ) -> Framing {
        writeStatusLine(version: version, status: head.status, into: &bytes)
        for (name, value) in head.headers {
            let length = name.utf8.count
            if length == 14, ForwardedHeaders.equalsIgnoringCase(name.utf8, "content-length") { continue }
            if length == 17, ForwardedHeaders.equalsIgnoringCase(name.utf8, "transfer-encoding") { continue }
            write(name: name, value: value, into: &bytes)
        }
        if let connection {
            bytes.writeStaticString("Connection: ")
            bytes.writeStaticString(connection)
            bytes.writeStaticString("\r\n")
        }
        var framing = Framing.none
        if head.status.mayHaveResponseBody {
            if let contentLength {
                bytes.writeStaticString("Content-Length: ")
                writeDecimal(contentLength, into: &bytes)
                bytes.writeStaticString("\r\n")
                framing = .plain
            } else if version.major == 1, version.minor >= 1 {
                bytes.writeStaticString("Transfer-Encoding: chunked\r\n")
                framing = .chunked
            } else {
                framing = .plain
            }
        }
        bytes.writeStaticString("\r\n")
        return headOnly ? .none : framing
    }

    /// `name: value` and CRLF, copied in one write (four `ByteBuffer` writes a header cost
    /// about three times as many instructions).
    static func write(name: String, value: String, into buffer: inout ByteBuffer) {
        var name = name, value = value  // native strings: `withUTF8` reads them in place
        name.withUTF8 { name in
            value.withUTF8 { value in
                let count = name.count + value.count + 4
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
                    UnsafeMutableRawBufferPointer(rebasing: out[0..<name.count]).copyMemory(from: UnsafeRawBufferPointer(name))
                    out[name.count] = UInt8(ascii: ":")
                    out[name.count + 1] = UInt8(ascii: " ")
                    let end = name.count + 2 + value.count
                    UnsafeMutableRawBufferPointer(rebasing: out[(name.count + 2)..<end]).copyMemory(from: UnsafeRawBufferPointer(value))
                    out[end] = UInt8(ascii: "\r")
                    out[end + 1] = UInt8(ascii: "\n")
                    return count
                }
            }
        }
    }

    static func writeDecimal(_ value: Int, into buffer: inout ByteBuffer) {
        // Digit by digit: no String for a length.
        guard value > 0 else {
            buffer.writeInteger(UInt8(ascii: "0"))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for 24 digits, written from the end
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { bytes in
            while rest > 0 {
                count += 1
                bytes[bytes.count - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - count)...]))
        }
    }

    /// A request line, `METHOD target HTTP/1.1`.
    static func writeRequestLine(method: HTTPMethod, prefix: String, target: String, into buffer: inout ByteBuffer) {
        buffer.writeString(method.rawValue)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(prefix)
        buffer.writeString(target)
        buffer.writeStaticString(" HTTP/1.1\r\n")
    }

    /// A status line as SwiftNIO's encoder writes it: `HTTP/1.1 429 Too Many Requests`.
    static func writeStatusLine(version: HTTPVersion, status: HTTPResponseStatus, into buffer: inout ByteBuffer) {
        if version.major == 1, version.minor == 1, status == .ok {
            buffer.writeStaticString("HTTP/1.1 200 OK\r\n")  // nearly every answer
            return
        }
        if version.major == 1, version.minor == 1 {
            buffer.writeStaticString("HTTP/1.1 ")
        } else {
            buffer.writeStaticString("HTTP/")
            writeDecimal(version.major, into: &buffer)
            buffer.writeInteger(UInt8(ascii: "."))
            writeDecimal(version.minor, into: &buffer)
            buffer.writeInteger(UInt8(ascii: " "))
        }
        writeDecimal(Int(status.code), into: &buffer)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(status.reasonPhrase)
        buffer.writeStaticString("\r\n")
    }

    /// A chunk of a chunked body: its size in hex, the bytes, CRLF. A small chunk is copied into
    /// one buffer with its framing; a large one goes as it is between two small ones.
    static func writeChunk(_ chunk: ByteBuffer, on context: ChannelHandlerContext) {
        guard chunk.readableBytes > 0 else { return }  // an empty chunk would end the body
        let copied = chunk.readableBytes <= copiedBody
        var frame = context.channel.allocator.buffer(capacity: 20 + (copied ? chunk.readableBytes : 0))
        writeHex(chunk.readableBytes, into: &frame)
        frame.writeStaticString("\r\n")
        if copied {
            var chunk = chunk
            frame.writeBuffer(&chunk)
            frame.writeStaticString("\r\n")
            context.write(NIOAny(frame), promise: nil)
        } else {
            // The size line and, after the chunk, its CRLF from the same buffer (as SwiftNIO does).
            frame.writeStaticString("\r\n")
            context.write(NIOAny(frame.getSlice(at: frame.readerIndex, length: frame.readableBytes - 2)!), promise: nil)
            context.write(NIOAny(chunk), promise: nil)
            frame.moveReaderIndex(forwardBy: frame.readableBytes - 2)
            context.write(NIOAny(frame), promise: nil)
        }
    }

    private static func writeHex(_ value: Int, into buffer: inout ByteBuffer) {
        let digits: StaticString = "0123456789abcdef"
        var shift = (Int.bitWidth - value.leadingZeroBitCount + 3) / 4 * 4
        repeat {
            shift -= 4
            buffer.writeInteger(digits.utf8Start[(value >> shift) & 0xF])
        } while shift > 0
    }
}
