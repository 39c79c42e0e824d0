import GatewayCore
import GatewayHTTP
import GatewayStore
import NIOHTTP1
import Synchronization

/// Who is calling: a client from `clients add`, or the static `--proxy-key`.
public struct ClientIdentity: Sendable, Equatable {
    public var id: Int64?
    public var name: String
}

/// Checks gateway tokens without touching SQLite: the static token by a constant-time compare,
/// the tokens from `clients add` by their SHA-256 in an in-memory table that the reloader keeps
/// current.
public final class ClientAuthenticator: Sendable {
    /// The static token (`--proxy-key`), which SIGHUP may change.
    private let staticTokenState: Mutex<String?>
    private let clients = Mutex(Clients())

    /// The tokens from `clients add` by their SHA-256, and the tokens already seen that matched
    /// one: SHA-256 runs once per token, not once per request. The tokens seen are forgotten
    /// whenever the table changes (a revoked token fails at once), and when there are too many.
    private struct Clients {
        var byHash: [String: ClientIdentity] = [:]
        var seen: [String: ClientIdentity] = [:]
    }

    private static let maximumSeen = 4096

    public init(staticToken: String?) {
        self.staticTokenState = Mutex(staticToken.flatMap { $0.isEmpty ? nil : $0 })
    }

    private var staticToken: String? { staticTokenState.withLock { $0 } }

    /// Replaces the static token (nil: none).
    public func replaceStaticToken(_ token: String?) {
        staticTokenState.withLock { $0 = token.flatMap { $0.isEmpty ? nil : $0 } }
    }

    /// Replaces the table of hashed tokens (after `clients add` or `revoke`).
    public func replaceClients(_ records: [ClientRecord]) {
        var table: [String: ClientIdentity] = [:]
        for client in records where client.revokedAt == nil {
            table[client.tokenHash] = ClientIdentity(id: client.id, name: client.name)
        }
        clients.withLock { $0 = Clients(byHash: table) }
    }

    /// Whether any token is configured at all.
    public var hasAnyToken: Bool {
        staticToken != nil || clients.withLock { !$0.byHash.isEmpty }
    }

    /// The identity behind the token the client presented, or nil.
    public func authenticate(_ token: String?) -> ClientIdentity? {
        guard let token, !token.isEmpty else { return nil }
        if let staticToken, Secret.constantTimeEquals(token, staticToken) {
            return ClientIdentity(id: nil, name: "proxy-key")
        }
        if let known = clients.withLock({ $0.seen[token] }) { return known }
        let hash = Secret.tokenHash(token)
        return clients.withLock { clients in
            // Only tokens that matched are kept: invalid ones cannot crowd them out.
            guard let identity = clients.byHash[hash] else { return nil }
            if clients.seen.count >= Self.maximumSeen { clients.seen.removeAll(keepingCapacity: true) }
            clients.seen[token] = identity
            return identity
        }
    }

    /// The identity of a client by id (nil: the static token), for requests that a resource
    /// authorizes instead of a token; nil when that client was revoked since.
    func identity(clientID: Int64?) -> ClientIdentity? {
        guard let clientID else { return staticToken == nil ? nil : ClientIdentity(id: nil, name: "proxy-key") }
        return clients.withLock { clients in clients.byHash.values.first { $0.id == clientID } }
    }

    /// The token a request carries: `x-goog-api-key`, then `Authorization: Bearer`, then `?key=`.
    static func token(headers: HTTPHeaders, keyParameter: String?) -> String? {
        if let value = headers.first(name: ForwardedHeaders.apiKey), !value.isEmpty { return value }
        if let value = headers.first(name: "authorization") {
            let parts = value.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]) }
        }
        return keyParameter
    }
}
