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

    init(database: any ServingStore, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// Loads the owners from the database (once, before serving).
    func load() async throws {
        let loaded = try await database.resourceOwners(now: Date())
        owners.withLock { $0 = loaded }
    }

    /// True when no resource is known: the request path then skips looking for names.
    var isEmpty: Bool { owners.withLock { $0.isEmpty } }

    func owner(of name: String) -> ResourceOwner? {
        owners.withLock { $0[name] }
    }

    /// Remembers `names` as created by `owner`. A failed write is logged; the names stay known in
    /// memory, so this process still routes them.
    func remember(_ names: [String], owner: ResourceOwner) async {
        guard !names.isEmpty else { return }
        owners.withLock { table in
            for name in names { table[name] = owner }
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
