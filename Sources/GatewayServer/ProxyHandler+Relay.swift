import Foundation
import GatewayCore
import GatewayHTTP
import NIOCore
import NIOHTTP1

// MARK: - Relaying a success

extension ProxyHandler {
    /// The answer to the client: the upstream's status and headers, and its body passed through
    /// chunk by chunk as it arrives (never re-framed; a known length is kept).
    func relay(_ response: UpstreamResponse, first: ByteBuffer?, _ exchange: Exchange) -> ProxyAnswer {
        let head = Self.head(status: response.status, headers: ForwardedHeaders.toClient(response.headers))
        let relay = Relay(
            first: first, upstream: response.body, length: response.headers.first(name: "content-length").flatMap(Int.init),
            recorder: exchange.recorder, expectsUsage: Self.expectsUsage(exchange.route.endpoint)
        )
        return ProxyAnswer(head: head, body: .relay(relay))
    }

    /// The answer for a body already read in full: head and body go out in one write.
    /// (A client that vanishes during that write is logged as served: the answer was complete.)
    func relayWhole(_ response: UpstreamResponse, body: ByteBuffer, _ exchange: Exchange) -> ProxyAnswer {
        var scanner = UsageScanner()
        scanner.feed(body.readableBytesView)
        let sawError = scanner.sawErrorEvent
        let recorder = exchange.recorder
        recorder.served(
            sawError ? .truncated : .success, reason: sawError ? "ERROR_EVENT_IN_STREAM" : nil,
            bytes: body.readableBytes, ttfb: recorder.elapsedMilliseconds(),
            usage: AnswerUsage(scanner, expectsUsage: Self.expectsUsage(exchange.route.endpoint), truncated: sawError)
        )
        return ProxyAnswer(
            head: Self.head(status: response.status, headers: ForwardedHeaders.toClient(response.headers)),
            body: .whole(body)
        )
    }

    /// A success answer's body still arriving from upstream, with the request's row to complete.
    struct Relay: RelayedBody {
        var first: ByteBuffer?
        var upstream: any UpstreamBodyStream
        /// The upstream's `Content-Length`, kept for the client (the channel handler frames the
        /// body by it); nil when the body's end is the end of the upstream's chunks.
        let length: Int?
        let recorder: RequestRecorder
        let expectsUsage: Bool
        /// A stream's row is in `streams_in_flight` from its first byte to its end, refreshed
        /// this often while bytes flow (``RequestRecorder/snapshotStream(bytes:ttfb:usage:)``).
        static let snapshotInterval: Duration = .seconds(2)

        /// Passes the body to `write` chunk by chunk and completes the row. A failure of the
        /// upstream after the first byte is thrown, for the caller to abort the client's
        /// connection (the client then sees an error, never a clean but truncated answer); a
        /// `write` that throws (the client went away) stops the upstream read.
        mutating func run(write: (ByteBuffer) async throws -> Void) async throws {
            var scanner = UsageScanner()
            var bytes = 0
            var ttfb: Double?
            var next = first
            first = nil
            let isStream = recorder.isStream
            var nextSnapshot = ContinuousClock.now
            while let chunk = next {
                scanner.feed(chunk.readableBytesView)
                bytes += chunk.readableBytes
                do {
                    try await write(chunk)
                } catch {
                    finishCancelled(bytes: bytes, ttfb: ttfb, scanner: scanner)
                    throw error
                }
                if ttfb == nil { ttfb = recorder.elapsedMilliseconds() }
                if isStream, ContinuousClock.now >= nextSnapshot {
                    recorder.snapshotStream(bytes: bytes, ttfb: ttfb, usage: usage(scanner, truncated: true))
                    nextSnapshot = .now + Self.snapshotInterval
                }
                do {
                    next = try await upstream.next()
                } catch {
                    if Task.isCancelled {
                        // The client went away while the upstream was quiet: the read stopped.
                        finishCancelled(bytes: bytes, ttfb: ttfb, scanner: scanner)
                    } else {
                        let reason = (error as? UpstreamTransportError)?.failure.rawValue ?? "UPSTREAM_BODY_FAILED"
                        recorder.served(.truncated, reason: reason, bytes: bytes, ttfb: ttfb, usage: usage(scanner, truncated: true))
                    }
                    throw error
                }
            }
            if Task.isCancelled {
                // The client went away: a stream ends its read early without an error.
                finishCancelled(bytes: bytes, ttfb: ttfb, scanner: scanner)
                throw CancellationError()
            }
            let sawError = scanner.sawErrorEvent
            recorder.served(
                sawError ? .truncated : .success, reason: sawError ? "ERROR_EVENT_IN_STREAM" : nil,
                bytes: bytes, ttfb: ttfb ?? recorder.elapsedMilliseconds(), usage: usage(scanner, truncated: sawError)
            )
        }

        /// The client went away before the answer could be sent.
        func abandon() {
            finishCancelled(bytes: 0, ttfb: nil, scanner: UsageScanner())
        }

        /// The client went away during the answer: 499, its usage as far as it was read.
        private func finishCancelled(bytes: Int, ttfb: Double?, scanner: UsageScanner) {
            recorder.served(.cancelled, status: 499, bytes: bytes, ttfb: ttfb, usage: usage(scanner, truncated: true))
        }

        private func usage(_ scanner: UsageScanner, truncated: Bool) -> AnswerUsage {
            AnswerUsage(scanner, expectsUsage: expectsUsage, truncated: truncated)
        }
    }

    /// A response head to the client (HTTP/1.1; the channel handler sets the version it speaks).
    static func head(status: Int, headers: HTTPHeaders) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)
    }

    /// Whether the endpoint's answers carry token usage to account (countTokens, embeddings and
    /// the rest do not, an OpenAI-style embeddings `usage` object included: their rows keep 0
    /// tokens and usage_status 'none').
    private static func expectsUsage(_ endpoint: GeminiRoute.Endpoint) -> Bool {
        switch endpoint {
        case .generateContent, .streamGenerateContent, .openAIChatCompletions: true
        default: false
        }
    }
}
