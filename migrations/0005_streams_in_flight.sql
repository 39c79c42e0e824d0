-- gemini-gateway schema, version 5: streams are in the accounts from their first byte.
--
-- A stream's `requests` row is written when it ends (with its tokens, bytes and outcome). Until
-- then it has a row here, written (through the request log's batches) when its first byte goes to
-- the client and refreshed every few seconds while it runs, with what is known so far: its key,
-- upstream, model, client, bytes and the last running token total Google sent. A stream that ends
-- has its row here deleted in the transaction that inserts its `requests` row. Rows still here
-- when the gateway starts were left by a gateway that stopped without ending them (a crash, a
-- kill -9, a lost machine): at start each becomes a `requests` row with outcome 'interrupted'
-- (its attempts with it, through the same insert and daily fold as any row), and is deleted.
--   entry            the request's row so far, as JSON (the fields of the `requests` row and its
--                    attempts; what the gateway turns into the `requests` row at its next start)
--   updated_at       when the row was last refreshed: its bytes and tokens are those of then
-- The other columns repeat what an operator asks of a running stream, for plain queries:
--   SELECT request_id, client_name, model, key_fingerprint, response_bytes, total_tokens,
--          started_at, updated_at FROM streams_in_flight;
CREATE TABLE streams_in_flight (
    request_id      TEXT    PRIMARY KEY,
    started_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    client_name     TEXT,
    model           TEXT,
    key_fingerprint TEXT,
    upstream_url    TEXT,
    response_bytes  INTEGER NOT NULL DEFAULT 0,
    total_tokens    INTEGER NOT NULL DEFAULT 0,
    entry           TEXT    NOT NULL
) WITHOUT ROWID;

-- An interrupted stream broke off after its first byte, as a truncated one does (the gateway, not
-- the upstream, broke it off): it counts as truncated, not as an upstream error. The daily tables
-- fold rows as this view counts them.
--   truncated       the answer broke off after its first byte ('truncated', 'interrupted')
DROP VIEW request_facts;
CREATE VIEW request_facts AS
SELECT
    r.id,
    r.request_id,
    r.started_at,
    substr(r.started_at, 1, 10)                      AS day,
    COALESCE(r.client_name, '-')                     AS client,
    COALESCE(r.model, '-')                           AS model,
    r.key_id,
    r.upstream_id,
    1                                                AS requests,
    r.outcome = 'success'                            AS successful,
    r.outcome <> 'success'                           AS errors,
    r.outcome IN ('client_error', 'unauthorized', 'too_large') AS client_errors,
    r.outcome = 'throttled'                          AS throttled,
    r.outcome = 'no_capacity'                        AS no_capacity,
    r.outcome NOT IN ('success', 'client_error', 'unauthorized', 'too_large', 'throttled',
                      'no_capacity', 'cancelled', 'truncated', 'interrupted') AS upstream_errors,
    r.outcome = 'cancelled'                          AS cancelled,
    r.outcome IN ('truncated', 'interrupted')        AS truncated,
    r.is_stream <> 0                                 AS streamed,
    r.attempt_count                                  AS upstream_attempts,
    r.usage_status = 'missing'                       AS usage_missing,
    r.usage_status = 'truncated'                     AS usage_truncated,
    r.prompt_tokens,
    r.cached_tokens,
    r.candidates_tokens,
    r.thoughts_tokens,
    r.tool_use_tokens,
    r.total_tokens,
    r.request_bytes,
    r.response_bytes,
    COALESCE(r.latency_ms, 0)                        AS latency_ms,
    COALESCE(r.ttfb_ms, 0)                           AS ttfb_ms,
    r.ttfb_ms IS NOT NULL                            AS ttfb_requests
FROM requests r;
