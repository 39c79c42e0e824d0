import Foundation
import GatewayCore
import GatewayStore
import Logging
import Synchronization

/// Who created each project-bound resource (see ``ProjectResource``), in memory for the request
/// path and in SQLite (`resource_owners`) so it survives restarts. Creations are rare (uploads,
/// caches, batches), so each is written at once, before the answer goes back to the client.
final class ResourceOwners: Sendable {
    private let owners = Mutex<[String: ResourceOwner]>([:])
    private let database: any ServingStore
    private let logger: Logger
    /// A store several instances share: another instance may have created a resource this one
    /// never saw (an upload begun through A whose chunks come to B), so a name not known here is
    /// looked up in the store (``lookUp(_:)``).
    let readsThrough: Bool
    /// Names looked up and not found, and when: asked again within ``negativeLifetime`` they are
    /// not looked up again (a client naming unknown resources costs one query a name, not one a
    /// request).
    private let unknown = Mutex<[String: ContinuousClock.Instant]>([:])
    private static let negativeLifetime: Duration = .seconds(2)

    init(database: any ServingStore, logger: Logger) {
        self.database = database
        self.logger = logger
        self.readsThrough = database.sharedChanges != nil
    }

    /// Loads the owners from the database (once, before serving).
    func load() async throws {
        let loaded = try await database.resourceOwners(now: Date())
        owners.withLock { $0 = loaded }
    }

    /// True when no resource can be known: the request path then skips looking for names.
    var isEmpty: Bool { !readsThrough && owners.withLock { $0.isEmpty } }

    func owner(of name: String) -> ResourceOwner? {
        owners.withLock { $0[name] }
    }

    /// The owner of `name`: from memory, else (a shared store) from the store, remembered when
    /// found. A failed read counts as unknown (and is logged): the request then goes unpinned.
    func lookUp(_ name: String) async -> ResourceOwner? {
        if let owner = owner(of: name) { return owner }
        guard readsThrough else { return nil }
        let now = ContinuousClock.now
        let recentlyUnknown = unknown.withLock { unknown -> Bool in
            if let since = unknown[name], now - since < Self.negativeLifetime { return true }
            if unknown.count > 10_000 { unknown = unknown.filter { now - $0.value < Self.negativeLifetime } }
            return false
        }
        if recentlyUnknown { return nil }
        do {
            if let owner = try await database.resourceOwner(named: name, now: Date()) {
                owners.withLock { $0[name] = owner }
                return owner
            }
        } catch {
            logger.error("could not read the owner of a resource from the store", metadata: ["resource": "\(name)", "error": "\(error)"])
        }
        unknown.withLock { $0[name] = now }
        return nil
    }

    /// Remembers `names` as created by `owner`. A failed write is logged; the names stay known in
    /// memory, so this process still routes them.
    func remember(_ names: [String], owner: ResourceOwner) async {
        guard !names.isEmpty else { return }
        owners.withLock { table in
            for name in names { table[name] = owner }
        }
        unknown.withLock { unknown in
            for name in names { unknown[name] = nil }
        }
        do {
            try await database.saveResourceOwners(names, owner: owner, now: Date())
        } catch {
            logger.error("could not write the owner of a resource", metadata: ["resources": "\(names)", "error": "\(error)"])
        }
    }

    /// Forgets a resource deleted through the gateway.
    func forget(_ name: String) async {
        guard owners.withLock({ $0.removeValue(forKey: name) }) != nil else { return }
        do {
            try await database.deleteResourceOwner(name)
        } catch {
            logger.error("could not delete the owner of a resource", metadata: ["resource": "\(name)", "error": "\(error)"])
        }
    }
}
