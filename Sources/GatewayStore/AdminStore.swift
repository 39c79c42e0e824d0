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

    /// Marks the key `key`, or every key labelled `project`, free-tier or not; returns them.
    func setFreeTier(_ freeTier: Bool, key: String?, project: String?, now: Date) async throws -> [KeyRecord]
    /// Clears the active key's own cooldowns and throttle streak; nil when it is not active.
    func clearKeyCooldowns(id: Int64, now: Date) async throws -> Int?
    /// Changes the limits of the active client with this name or id.
    func setClientLimits(_ selector: String, _ change: ClientLimitsChange, now: Date) async throws -> ClientRecord
    /// Adds one upstream (already there: counted as present, or as disabled).
    func addUpstream(_ url: String, now: Date) async throws -> UpstreamImportSummary
    /// Disables or restores an upstream (restoring clears its cooldown and failure streak).
    func setUpstreamState(_ selector: String, to state: UpstreamRecord.State, now: Date) async throws -> UpstreamRecord
    /// Upserts prices; returns how many rows were written.
    func importPrices(_ prices: [ModelPrice], now: Date) async throws -> Int
}

/// What the operator's reads ask of a store: the reports, the lists and `status`, alike on
/// either store (the queries and the Swift around them are written once: ``ReportSpec``,
/// ``StoreLists``).
public protocol ReportStore: Sendable {
    func report(_ spec: ReportSpec) async throws -> ReportTable
    func status(now: Date) async throws -> StoreStatus
    func listKeys(now: Date, states: Set<KeyRecord.State>) async throws -> [KeyListing]
    func listClients(now: Date) async throws -> [ClientListing]
    func listUpstreams(now: Date) async throws -> [UpstreamListing]
    func listPrices() async throws -> [ModelPrice]
    /// The keys `keys check` probes, with their secrets (see ``AppDatabase/keysToCheck(selectors:all:now:)``).
    func keysToCheck(selectors: [String], all: Bool, now: Date) async throws -> [KeyCheckCandidate]
}

/// Every command's store: the operator's changes and reads.
public typealias OperatorStore = AdminStore & ReportStore

extension ListFile {
    /// `url` as a list of one upstream for an import, or an error saying why it is not one.
    package static func oneUpstream(_ url: String) throws -> Parsed<UpstreamEntry> {
        switch normalizeUpstreamURL(url) {
        case .failure(let error):
            throw StoreError.invalid("invalid upstream URL: \(error.message)")
        case .success(let normalized):
            var parsed = Parsed<UpstreamEntry>()
            parsed.entries = [UpstreamEntry(line: 1, baseURL: normalized)]
            return parsed
        }
    }
}

extension AppDatabase: ReportStore {}

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
