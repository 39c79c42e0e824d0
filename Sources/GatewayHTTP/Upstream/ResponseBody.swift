import NIOCore
import NIOHTTP1

/// The request waiting for its response head.
typealias ResponseWaiter = UnsafeContinuation<ResponseStart, any Error>

/// Names one exchange on a connection, for a cancellation that may come after it has ended
/// (and the connection has gone on to another request).
final class ExchangeTicket: Sendable {}

/// The response head and its body, handed from the event loop to the proxy loop.
struct ResponseStart: Sendable {
    var head: HTTPResponseHead
    var body: NIOHTTP1Transport.Body
}

extension NIOHTTP1Transport {
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDelegate
    >

    /// The response body as the proxy loop reads it: in hand when the whole answer came with
    /// its head (a plain JSON answer, nearly always), else a back-pressured stream.
    struct Body: UpstreamBodyStream, @unchecked Sendable {
        // Sendable only to cross from the event loop to the one task that reads it.
        private var complete: ByteBuffer?
        private var iterator: Producer.AsyncIterator?

        /// A body that arrived whole with its head.
        init(complete: ByteBuffer?) {
            self.complete = complete
        }

        /// A body still arriving, its first parts already yielded to the producer.
        init(streaming iterator: Producer.AsyncIterator) {
            self.iterator = iterator
        }

        mutating func next() async throws -> ByteBuffer? {
            guard iterator != nil else {
                defer { complete = nil }
                return complete
            }
            do {
                return try await iterator!.next()
            } catch {
                throw UpstreamTransportError(error)
            }
        }
    }

    /// Tells the connection when the reader wants more, or has gone.
    /// Its calls name the exchange they belong to: a connection back in the pool may already
    /// carry the next request when the last reader of the previous one lets go.
    struct BodyDelegate: NIOAsyncSequenceProducerDelegate {
        let loop: any EventLoop
        let handler: NIOLoopBound<UpstreamConnectionHandler>
        let exchange: Int

        func produceMore() {
            loop.execute { handler.value.readerWantsMore(exchange: exchange) }
        }

        func didTerminate() {
            loop.execute { handler.value.readerStopped(exchange: exchange) }
        }
    }
}
