import Foundation
import GatewayCore
import GRDB

// MARK: - The price table (`prices import`, `prices list`)

extension AppDatabase {
    /// The price table shipped with the binary (`etc/prices.csv`, embedded at build time).
    public static var shippedPriceFile: String { embeddedPriceFile }

    /// Upserts `prices` (a model imported again is replaced; models not in `prices` stay).
    /// Returns how many rows were written.
    @discardableResult
    public func importPrices(_ prices: [ModelPrice], now: Date = Date()) throws -> Int {
        try write { db in try Self.importPrices(prices, db, now: now) }
    }

    /// Imports the shipped price table when the `prices` table is empty (a new database, or one
    /// from before migration 0007): what `serve` does at start. Returns the rows imported (0 when
    /// the operator's table was there).
    @discardableResult
    public func importShippedPricesIfEmpty(now: Date = Date()) throws -> Int {
        guard case .success(let prices) = PriceFile.parse(Self.shippedPriceFile) else { return 0 }
        return try write { db in
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM prices") == 0 else { return 0 }
            return try Self.importPrices(prices, db, now: now)
        }
    }

    private static func importPrices(_ prices: [ModelPrice], _ db: Database, now: Date) throws -> Int {
        let statement = try db.makeStatement(sql: """
            INSERT INTO prices (model, input, cached_input, output, thinking, long_context_threshold, input_long,
                                cached_input_long, output_long, thinking_long, audio_input, source, taken_on, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (model) DO UPDATE SET
                input = excluded.input, cached_input = excluded.cached_input, output = excluded.output,
                thinking = excluded.thinking, long_context_threshold = excluded.long_context_threshold,
                input_long = excluded.input_long, cached_input_long = excluded.cached_input_long,
                output_long = excluded.output_long, thinking_long = excluded.thinking_long,
                audio_input = excluded.audio_input, source = excluded.source, taken_on = excluded.taken_on, updated_at = excluded.updated_at
            """)
        for p in prices {
            try statement.execute(arguments: [
                p.model, p.input, p.cachedInput, p.output, p.thinking, p.longContextThreshold, p.inputLong,
                p.cachedInputLong, p.outputLong, p.thinkingLong, p.audioInput, p.source, p.takenOn, now,
            ])
        }
        return prices.count
    }

    /// Every price, by model.
    public func listPrices() throws -> [ModelPrice] {
        try read { db in try Self.prices(db) }
    }

    static func prices(_ db: Database) throws -> [ModelPrice] {
        StoreLists.prices(try db.table(StoreQuery(.sqlite, sql: StoreLists.pricesSQL(.sqlite))))
    }
}
