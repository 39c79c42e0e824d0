import Foundation
import GRDB

// MARK: - What is written per request

/// One upstream try of a request: a row of `attempts`.
public struct AttemptRow: Sendable, Equatable {
    public var attempt: Int
    public var startedAt: Date
    public var keyId: Int64?
    public var upstreamId: Int64?
    public var status: Int?
    public var verdict: String
    public var googleStatus: String?
    public var reason: String?
    public var quotaId: String?
    public var latencyMs: Double?

    public init(
        attempt: Int, startedAt: Date, keyId: Int64?, upstreamId: Int64?, status: Int?, verdict: String,
        googleStatus: String? = nil, reason: String? = nil, quotaId: String? = nil, latencyMs: Double? = nil
    ) {
        self.attempt = attempt
        self.startedAt = startedAt
        self.keyId = keyId
        self.upstreamId = upstreamId
        self.status = status
        self.verdict = verdict
        self.googleStatus = googleStatus
        self.reason = reason
        self.quotaId = quotaId
        self.latencyMs = latencyMs
    }
}

/// One client request with its attempts: a row of `requests` and its rows of `attempts`.
public struct RequestLogEntry: Sendable, Equatable {
    public var requestId: String
    public var startedAt: Date
    public var clientId: Int64?
    public var clientName: String?
    public var method: String
    public var endpoint: String
    public var apiVersion: String?
    public var model: String?
    public var isStream: Bool
    public var status: Int
    public var outcome: String
    public var keyId: Int64?
    public var keyFingerprint: String?
    public var upstreamId: Int64?
    public var upstreamUrl: String?
    public var latencyMs: Double?
    public var ttfbMs: Double?
    public var requestBytes: Int
    public var responseBytes: Int
    public var promptTokens: Int
    public var cachedTokens: Int
    public var candidatesTokens: Int
    public var thoughtsTokens: Int
    public var toolUseTokens: Int
    public var totalTokens: Int
    public var usageStatus: String
    public var errorStatus: String?
    public var errorReason: String?
    public var attempts: [AttemptRow]

    public init(requestId: String, startedAt: Date, method: String, endpoint: String) {
        self.requestId = requestId
        self.startedAt = startedAt
        self.method = method
        self.endpoint = endpoint
        isStream = false
        status = 0
        outcome = "gateway_error"
        requestBytes = 0
        responseBytes = 0
        promptTokens = 0
        cachedTokens = 0
        candidatesTokens = 0
        thoughtsTokens = 0
        toolUseTokens = 0
        totalTokens = 0
        usageStatus = "none"
        attempts = []
    }
}

extension AppDatabase {
    /// Writes a batch of request rows and their attempts in ONE transaction, and folds them into
    /// the daily totals (migration 0002) in the same transaction.
    public func insert(_ entries: [RequestLogEntry]) async throws {
        try await writer.write { db in
            try Self.lowerFoldBookmarks(db)
            try Self.insertRows(entries, db)
            try Self.foldPendingRows(db)
        }
    }

    /// The rows alone, without folding (the benchmark of folding compares with this).
    static func insertRows(_ entries: [RequestLogEntry], _ db: Database) throws {
        let request = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO requests (
                request_id, started_at, client_id, client_name, method, endpoint, api_version, model,
                is_stream, status, outcome, attempt_count, key_id, key_fingerprint, upstream_id, upstream_url,
                latency_ms, ttfb_ms, request_bytes, response_bytes, prompt_tokens, cached_tokens,
                candidates_tokens, thoughts_tokens, tool_use_tokens, total_tokens, usage_status,
                error_status, error_reason)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let attempt = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO attempts (
                request_id, attempt, started_at, key_id, upstream_id, status, verdict, google_status,
                reason, quota_id, latency_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for e in entries {
            let values: [(any DatabaseValueConvertible)?] = [
                e.requestId, e.startedAt, e.clientId, e.clientName, e.method, e.endpoint, e.apiVersion, e.model,
                e.isStream, e.status, e.outcome, e.attempts.count, e.keyId, e.keyFingerprint, e.upstreamId,
                e.upstreamUrl, e.latencyMs, e.ttfbMs, e.requestBytes, e.responseBytes, e.promptTokens,
                e.cachedTokens, e.candidatesTokens, e.thoughtsTokens, e.toolUseTokens, e.totalTokens,
                e.usageStatus, e.errorStatus, e.errorReason,
            ]
            try request.execute(arguments: StatementArguments(values))
            for a in e.attempts {
                let values: [(any DatabaseValueConvertible)?] = [
                    e.requestId, a.attempt, a.startedAt, a.keyId, a.upstreamId, a.status, a.verdict,
                    a.googleStatus, a.reason, a.quotaId, a.latencyMs,
                ]
                try attempt.execute(arguments: StatementArguments(values))
            }
        }
    }
}
