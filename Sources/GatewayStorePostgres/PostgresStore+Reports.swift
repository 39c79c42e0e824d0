import Foundation
import GatewayCore
import GatewayStore
import PostgresNIO

// MARK: - The operator's reads: the queries SQLite's store runs, in PostgreSQL's dialect

/// The reports, lists, `status` and the status page are built once in `GatewayStore`
/// (`ReportSpec`, `StoreLists`, `StatusPageQueries`) for either dialect; here they run, each in one
/// read-only snapshot (as SQLite's read transaction), and their cells come back as SQLite's store
/// gives them (``reportValue(_:)``), so the same Swift makes the same tables and listings of them.
extension PostgresStore: ReportStore {
    public func report(_ spec: ReportSpec) async throws -> ReportTable {
        try await snapshot { connection in
            let pruned = try await self.table(StoreQuery(.postgres, sql: ReportSpec.prunedBeforeSQL), connection)
            let prunedBefore = pruned.rows.first?.first?.storedDate
            let built = spec.query(.postgres, prunedBefore: prunedBefore)
            return built.report(try await self.table(built.query, connection, columnsWhenEmpty: true))
        }
    }

    public func status(now: Date) async throws -> StoreStatus {
        try await snapshot { StoreLists.status(try await self.table(StoreLists.statusQuery(.postgres, now: now), $0)) }
    }

    public func listKeys(now: Date, states: Set<KeyRecord.State>) async throws -> [KeyListing] {
        try await snapshot { StoreLists.keys(try await self.tables(StoreLists.keyQueries(.postgres, now: now), $0), states: states) }
    }

    public func listClients(now: Date) async throws -> [ClientListing] {
        let usage = try await clientUsage(now: now).usage
        return try await snapshot { StoreLists.clients(try await self.table(StoreQuery(.postgres, sql: StoreLists.clientsSQL), $0), usage: usage) }
    }

    public func listUpstreams(now: Date) async throws -> [UpstreamListing] {
        try await snapshot {
            StoreLists.upstreams(try await self.table(StoreQuery(.postgres, sql: StoreLists.upstreamsSQL(.postgres)), $0), now: now)
        }
    }

    public func listPrices() async throws -> [ModelPrice] {
        try await snapshot { StoreLists.prices(try await self.table(StoreQuery(.postgres, sql: StoreLists.pricesSQL(.postgres)), $0)) }
    }

    public func keysToCheck(selectors: [String], all: Bool, now: Date) async throws -> [KeyCheckCandidate] {
        try await snapshot { connection in
            var chosen: Set<Int64>?
            if !selectors.isEmpty {
                chosen = []
                for selector in selectors { chosen?.insert(try await self.resolveKey(selector, connection).id ?? 0) }
            }
            let listed = StoreLists.keys(
                try await self.tables(StoreLists.keyQueries(.postgres, now: now), connection), states: Set(KeyRecord.State.allCases))
            let secrets = try await self.table(StoreQuery(.postgres, sql: StoreLists.secretsQuery), connection)
            return StoreLists.keysToCheck(listed, secrets: secrets, chosen: chosen, all: all)
        }
    }

    // MARK: The status page and /metrics

    public func statusPageData(now: Date) async throws -> StatusPageData {
        let page = StatusPageQueries(now: now)
        return try await snapshot { page.data(try await self.tables(page.queries(.postgres), $0)) }
    }

    public func keyCounts(now: Date) async throws -> StatusPageData.KeyCounts {
        StatusPageQueries.keyCounts(try await snapshot { try await self.table(StatusPageQueries.keyCountsQuery(.postgres, now: now), $0) })
    }

    // MARK: - Running a StoreQuery

    /// `body` in one read-only transaction that sees one snapshot of the store.
    func snapshot<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await transaction { connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: self.logger)
            return try await body(connection)
        }
    }

    func tables(_ queries: [StoreQuery], _ connection: PostgresConnection) async throws -> [ReportTable] {
        var answers: [ReportTable] = []
        for query in queries { answers.append(try await table(query, connection)) }
        return answers
    }

    /// Every row of `query`. postgres-nio names the columns only with the rows: with
    /// `columnsWhenEmpty`, an empty answer is asked again as one row of NULLs (the query
    /// left-joined to a single row), so that a report without rows still has its columns
    /// (CSV prints them as its header).
    func table(_ query: StoreQuery, _ connection: PostgresConnection, columnsWhenEmpty: Bool = false) async throws -> ReportTable {
        precondition(query.dialect == .postgres)
        var table = try await self.table(Self.postgresQuery(query), connection)
        if table.rows.isEmpty, columnsWhenEmpty {
            var probe = Self.postgresQuery(query)
            probe.sql = "SELECT q.* FROM (SELECT 1) AS one LEFT JOIN (\(query.sql)) AS q ON true"
            table.columns = try await self.table(probe, connection).columns
        }
        return table
    }

    /// Every row of `query`, its cells as SQLite's store gives them.
    func table(_ query: PostgresQuery, _ connection: PostgresConnection) async throws -> ReportTable {
        var columns: [String] = []
        var rows: [[ReportValue]] = []
        for try await row in try await connection.query(query, logger: logger) {
            if columns.isEmpty { columns = row.map(\.columnName) }
            rows.append(try row.map(Self.reportValue))
        }
        return ReportTable(columns: columns, rows: rows)
    }

    static func postgresQuery(_ query: StoreQuery) -> PostgresQuery {
        var bindings = PostgresBindings()
        for value in query.values {
            switch value {
            case .int(let number): bindings.append(number)
            case .double(let number): bindings.append(number)
            case .text(let text), .day(let text): bindings.append(text)
            case .time(let date): bindings.append(date)
            case .null: bindings.appendNull()
            }
        }
        return PostgresQuery(unsafeSQL: query.sql, binds: bindings)
    }

    /// A cell as SQLite's store gives it: integers (and booleans, as 0/1), doubles, text; times
    /// and days as SQLite's text. A `numeric` is read as a double: the shared queries cast their
    /// sums (`SQLDialect.int`), so one showing up here is a query to fix (the parity test sees it
    /// as a double where SQLite has an integer).
    static func reportValue(_ cell: PostgresCell) throws -> ReportValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .numeric: return .real(NSDecimalNumber(decimal: try cell.decode(Decimal.self)).doubleValue)
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .timestamptz, .timestamp: return .storedTime(try cell.decode(Date.self))
        case .date: return .storedDay(try cell.decode(Date.self))
        default: return .text(try cell.decode(String.self))
        }
    }
}
