import Foundation
import GatewayCore
import GRDB

// MARK: - Gateway tokens (clients)

/// One client in `clients list`: the token's last 4 characters only.
public struct ClientListing: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var tokenTail: String
    public var createdAt: Date
    public var revokedAt: Date?
    public var requests: Int
    public var lastRequestAt: Date?
}

extension AppDatabase {
    /// Creates a client with a fresh token, stores only the token's hash, and returns the token:
    /// the one time it is ever shown.
    public func addClient(name: String, now: Date = Date()) throws -> (client: ClientRecord, token: String) {
        let name = name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 100, name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f }) else {
            throw StoreError.invalid("a client name is 1 to 100 printable characters")
        }
        let token = Secret.newToken()
        let client = try write { db in
            if try ClientRecord.filter(ClientRecord.Columns.name == name && ClientRecord.Columns.revokedAt == nil).fetchCount(db) > 0 {
                throw StoreError.invalid("a client named '\(name)' exists already (revoke it first, or pick another name)")
            }
            var client = ClientRecord(
                id: nil, name: name, tokenHash: Secret.tokenHash(token), tokenTail: Secret.tail(token),
                createdAt: now, revokedAt: nil
            )
            try client.insert(db)
            return client
        }
        return (client, token)
    }

    /// The active client whose token hashes to `tokenHash`, if any.
    public func client(tokenHash: String) throws -> ClientRecord? {
        try read { db in
            try ClientRecord.filter(ClientRecord.Columns.tokenHash == tokenHash && ClientRecord.Columns.revokedAt == nil).fetchOne(db)
        }
    }

    /// Every client that is not revoked: (id, name, token hash).
    public func activeClients() throws -> [ClientRecord] {
        try read { db in try ClientRecord.filter(ClientRecord.Columns.revokedAt == nil).fetchAll(db) }
    }

    public func listClients() throws -> [ClientListing] {
        try read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT c.*, COALESCE(r.requests, 0) AS requests, r.last_request_at
                FROM clients c
                LEFT JOIN (SELECT client_id, COUNT(*) AS requests, MAX(started_at) AS last_request_at
                           FROM requests GROUP BY client_id) r ON r.client_id = c.id
                ORDER BY c.id
                """)
            return try rows.map { row in
                let client = try ClientRecord(row: row)
                return ClientListing(
                    id: client.id!, name: client.name, tokenTail: client.tokenTail, createdAt: client.createdAt,
                    revokedAt: client.revokedAt, requests: row["requests"], lastRequestAt: row["last_request_at"]
                )
            }
        }
    }

    /// Revokes the active client with this name or id. Its rows in the request log stay.
    @discardableResult
    public func revokeClient(_ selector: String, now: Date = Date()) throws -> ClientRecord {
        try write { db in
            let active = ClientRecord.filter(ClientRecord.Columns.revokedAt == nil)
            let found = try Int64(selector).flatMap { try active.filter(key: $0).fetchOne(db) }
                ?? active.filter(ClientRecord.Columns.name == selector).fetchOne(db)
            guard var client = found else {
                throw StoreError.notFound("no active client named '\(selector)' (see 'gemini-gateway clients list')")
            }
            client.revokedAt = now
            try client.update(db)
            return client
        }
    }
}
