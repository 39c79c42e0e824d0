import Foundation

/// A whole HTTP answer as a test reads it.
public struct Answer: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The first value of the header `name` (any case).
    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The body as a JSON object; throws when it is not one.
    public func json() throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(body))
        guard let dictionary = object as? [String: Any] else { throw NotAJSONObject(text: text) }
        return dictionary
    }

    public struct NotAJSONObject: Error, CustomStringConvertible {
        public let text: String
        public var description: String { "not a JSON object: \(text)" }
    }
}
