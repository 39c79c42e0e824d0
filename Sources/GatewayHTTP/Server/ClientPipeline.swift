import NIOCore
import NIOHTTP1

/// Each client connection's pipeline, from the socket up:
///
/// 1. ``ClientTimeouts``, on the raw bytes: the head, body and keep-alive timeouts, and the
///    connection's standing for ``ConnectionCap``;
/// 2. ``HTTPWire``, where answers framed by the gateway itself go out (no response encoder);
/// 3. SwiftNIO's HTTP/1 request decoder, with limits on the head;
/// 4. ``ClientConnectionHandler``, which answers every request, proxied or local, through the
///    policy's ``Responder``.
public enum ClientPipeline {
    /// The decoder's limits: a head of up to 80 KiB in up to 1,000 fields (beyond them the
    /// decoder fails, and the client gets a bare 400). ``RequestHeadCheck`` holds proxied heads to
    /// less.
    static var decoderLimits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 80 * 1024
        limits.maxHeaderListSize = 80 * 1024
        limits.maxHeaderFieldCount = 1000
        return limits
    }

    public static func configure(_ channel: any Channel, handler: ClientConnectionHandler, timeouts: ClientTimeouts) throws {
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(timeouts)
        let wire = HTTPWire()
        try sync.addHandler(wire)
        try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: decoderLimits)))
        handler.wire = wire
        handler.timeouts = timeouts
        try sync.addHandler(handler)
    }
}
