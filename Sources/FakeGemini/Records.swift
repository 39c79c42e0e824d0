import Foundation

extension FakeGemini {
    /// One header line as the fake received it.
    public struct Header: Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
        public var description: String { "\(name): \(value)" }
    }

    /// Where the request's API key came from.
    public enum KeySource: String, Sendable, Equatable {
        case header = "x-goog-api-key"
        case query = "?key="
        case bearer = "Authorization: Bearer"
    }

    /// A request as the fake received it.
    public struct ReceivedRequest: Sendable {
        /// A sequence number, unique within this fake, counting every request since start (not reset by
        /// ``FakeGemini/clearReceived()``); also sent back in the `x-fake-request` response header and used
        /// by ``SentEvent/requestIndex``.
        public var index: Int
        /// HTTP method, e.g. `"POST"`.
        public var method: String
        /// The path without the query, as received (not percent-decoded).
        public var path: String
        /// The raw query string without `?` (empty when none).
        public var query: String
        /// Every header line in the order received. `Host` comes first (HTTP/1 parsing hands it over
        /// separately); all others, including hop-by-hop ones, are kept as they arrived.
        public var headers: [Header]
        /// The request body.
        public var body: [UInt8]
        /// The API key the request carried, if any (x-goog-api-key first, then `?key=`, then Bearer).
        public var key: String?
        public var keySource: KeySource?
        /// `MODEL` of `/models/MODEL:method`, or the OpenAI body's `model` without `models/`.
        public var model: String?
        /// The Gemini method after the colon, e.g. `"streamGenerateContent"`.
        public var rpcMethod: String?
        /// When the request (with its body) had been read.
        public var time: Date
        public var instant: ContinuousClock.Instant

        /// The body as UTF-8 text.
        public var bodyText: String { String(decoding: body, as: UTF8.self) }

        /// The values of the query parameter `name` (percent-decoded), in order.
        public func queryValues(_ name: String) -> [String] {
            parseQuery(query).filter { $0.0 == name }.map(\.1)
        }

        /// The first value of the query parameter `name`.
        public func queryValue(_ name: String) -> String? { queryValues(name).first }

        /// The values of every header named `name` (case-insensitive), in order.
        public func headerValues(_ name: String) -> [String] {
            let lower = name.lowercased()
            return headers.filter { $0.name.lowercased() == lower }.map(\.value)
        }

        /// The first value of the header `name` (case-insensitive).
        public func header(_ name: String) -> String? { headerValues(name).first }

        /// Whether any header named `name` (case-insensitive) was received.
        public func hasHeader(_ name: String) -> Bool { !headerValues(name).isEmpty }
    }

    /// The fake wrote (and flushed) event `eventIndex` (0-based) of the streamed answer to request
    /// `requestIndex`. For `.jsonStream` the events are the array elements; for the OpenAI stream they
    /// include the final `data: [DONE]`.
    /// How a streamed answer ended.
    public enum StreamEnd: Sendable, Equatable {
        /// Every piece written and the body ended.
        case completed
        /// Cut on purpose (`failAfter`).
        case aborted
        /// A write or the wait before one failed: the client closed the connection.
        case clientGone
    }

    public struct SentEvent: Sendable, Equatable {
        public var requestIndex: Int
        public var eventIndex: Int
        public var time: Date
        /// On `ContinuousClock`, comparable with `ContinuousClock.now` taken in the test.
        public var instant: ContinuousClock.Instant
    }
}

/// Splits a raw query string into percent-decoded (name, value) pairs.
func parseQuery(_ query: String) -> [(String, String)] {
    guard !query.isEmpty else { return [] }
    return query.split(separator: "&", omittingEmptySubsequences: true).map { item in
        let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let name = percentDecode(String(parts[0]))
        let value = parts.count > 1 ? percentDecode(String(parts[1])) : ""
        return (name, value)
    }
}

func percentDecode(_ s: String) -> String {
    let plusFixed = s.replacingOccurrences(of: "+", with: " ")
    return plusFixed.removingPercentEncoding ?? plusFixed
}
