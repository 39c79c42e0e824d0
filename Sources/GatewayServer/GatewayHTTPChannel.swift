import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Hummingbird's HTTP/1 child channel with the proxy's handler in front: each connection's
/// pipeline is ``ClientTimeouts`` (on the raw bytes), the HTTP/1 codec, then ``ProxyChannelHandler`` (which serves the proxied requests
/// on SwiftNIO's own HTTP/1 types), then what Hummingbird's `HTTP1Channel` sets up for the rest
/// (HTTPTypes conversion, connection state, its async channel and responder).
struct GatewayHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    typealias Value = NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>

    let responder: HTTPChannelHandler.Responder
    let proxyHandler: @Sendable () -> ProxyChannelHandler
    let timeouts: @Sendable () -> ClientTimeouts

    /// The server of the gateway: Hummingbird's, with this child channel.
    static func server(
        proxyHandler: @escaping @Sendable () -> ProxyChannelHandler, timeouts: @escaping @Sendable () -> ClientTimeouts
    ) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in GatewayHTTPChannel(responder: responder, proxyHandler: proxyHandler, timeouts: timeouts) }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // As Hummingbird's HTTP1Channel: its decoder limits, its own error handling and
            // pipelining (one request after another), no header validation on the way out (the
            // values come from parsed heads). The proxy writes its answers from the wire, below
            // the encoder, which therefore is not told the requests' methods
            // (`configureHTTPServerPipeline` would queue every request's method in it, for
            // responses the proxy does not pass through it): it frames Hummingbird's responses
            // by their status and headers, and Hummingbird answers `HEAD` itself without a body.
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = 80 * 1024
            limits.maxHeaderListSize = 80 * 1024
            limits.maxHeaderFieldCount = 1000
            let sync = channel.pipeline.syncOperations
            let timeouts = timeouts()
            try sync.addHandler(timeouts)
            let wire = HTTPWire()
            try sync.addHandler(wire)
            try sync.addHandler(HTTPResponseEncoder())
            try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: limits)))
            let proxy = proxyHandler()
            proxy.wire = wire
            proxy.timeouts = timeouts
            try sync.addHandler(proxy)
            try sync.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try sync.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
            return try NIOAsyncChannel(wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
        }
    }

    func handle(value asyncChannel: Value, logger: Logger) async {
        await handleHTTP(asyncChannel: asyncChannel, logger: logger)
    }
}
