import Foundation
import GatewayCore

// MARK: - What the admin commands and `serve`'s start ask of a store

/// The operator's changes that work on either store (SQLite's ``AppDatabase`` and the shared
/// PostgreSQL store). A running gateway picks each up within its reload interval; with
/// PostgreSQL every instance does.
public protocol AdminStore: Sendable {
    var displayName: String { get }

    /// Imports keys and upstreams together in one transaction (idempotent).
    func importLists(
        keys: ListFile.Parsed<ListFile.KeyEntry>?, upstreams: ListFile.Parsed<ListFile.UpstreamEntry>?, now: Date
    ) async throws -> (keys: KeyImportSummary?, upstreams: UpstreamImportSummary?)
    /// Sets a key's state (`deleted` is a soft delete; `active` clears its cooldowns).
    func setKeyState(_ selector: String, to state: KeyRecord.State, reason: String?, now: Date) async throws -> KeyRecord
    /// A new client and its token, shown only now.
    func addClient(name: String, limits: ClientLimits, now: Date) async throws -> (client: ClientRecord, token: String)
    /// Revokes the active client with this name or id.
    func revokeClient(_ selector: String, now: Date) async throws -> ClientRecord
    /// What `serve` makes of an empty store, in one transaction (several instances starting
    /// together on one store make it once): Google as the upstream when there is none, and when
    /// `token` a client "default" when there is none, whose token is returned (to be shown once).
    func bootstrap(defaultUpstream: String, token: Bool, now: Date) async throws -> Bootstrap
}

/// What ``AdminStore/bootstrap(defaultUpstream:token:now:)`` made.
public struct Bootstrap: Sendable {
    public var addedUpstream: Bool
    public var client: (record: ClientRecord, token: String)?

    public init(addedUpstream: Bool, client: (record: ClientRecord, token: String)?) {
        self.addedUpstream = addedUpstream
        self.client = client
    }
}

extension AppDatabase: AdminStore {
    public func bootstrap(defaultUpstream: String, token: Bool, now: Date) async throws -> Bootstrap {
        var added = false
        if try listUpstreams(now: now).isEmpty {
            _ = try addUpstream(defaultUpstream, now: now)
            added = true
        }
        guard token, try activeClients().isEmpty else { return Bootstrap(addedUpstream: added, client: nil) }
        let client = try addClient(name: "default", now: now)
        return Bootstrap(addedUpstream: added, client: (client.client, client.token))
    }
}
