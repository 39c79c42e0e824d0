import NIOCore
import NIOHTTP1

extension NIOHTTP1Transport {
    /// A request as it goes out: its head serialised (with a small body behind it), what the
    /// response decoder needs to know of it, and whether the connection is kept alive after it.
    struct OutgoingRequest {
        /// The head, and the body when it is small.
        var bytes: ByteBuffer
        /// A large body, written after the head as it is.
        var body: ByteBuffer?
        /// For the response decoder, which reads the answer to a `HEAD` without a body.
        var head: HTTPRequestHead
        var keepAlive: Bool

        private static let allocator = ByteBufferAllocator()
        private static let postHead = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")
        private static let getHead = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")

        /// The head as SwiftNIO's encoder would write it for these headers: the client's (the
        /// filter has dropped `Host`, `Content-Length` and `Transfer-Encoding`), then `Host`, then
        /// `Content-Length` when a body goes out.
        init(_ request: UpstreamRequest, endpoint: Endpoint) {
            let sendsBody = request.sendsBody
            let length = request.body.readableBytes
            let copied = sendsBody && length <= HTTPWire.copiedBody
            var bytes = Self.allocator.buffer(capacity: 512 + (copied ? length : 0))
            HTTPWire.writeRequestLine(method: request.method, prefix: endpoint.pathPrefix, target: request.target, into: &bytes)
            var keepAlive = true
            for (name, value) in request.headers {
                if ForwardedHeaders.equalsIgnoringCase(name.utf8, "host") { continue }
                if ForwardedHeaders.equalsIgnoringCase(name.utf8, "connection"),
                   value.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() == "close" }) {
                    keepAlive = false
                }
                HTTPWire.write(name: name, value: value, into: &bytes)
            }
            HTTPWire.write(name: "Host", value: endpoint.authority, into: &bytes)
            if sendsBody {
                bytes.writeStaticString("Content-Length: ")
                HTTPWire.writeDecimal(length, into: &bytes)
                bytes.writeStaticString("\r\n")
            }
            bytes.writeStaticString("\r\n")
            if copied {
                var body = request.body
                bytes.writeBuffer(&body)
                self.body = nil
            } else {
                self.body = sendsBody && length > 0 ? request.body : nil
            }
            self.bytes = bytes
            self.keepAlive = keepAlive
            switch request.method {
            case .POST: head = Self.postHead
            case .GET: head = Self.getHead
            default: head = HTTPRequestHead(version: .http1_1, method: request.method, uri: "/")
            }
        }
    }
}
