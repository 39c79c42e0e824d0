-- gemini-gateway schema, version 7: limits per client and what every request cost.
--
-- (Numbered 0007: 0006 is taken by another change. The migrator applies migrations by name, in
-- order, and does not need the numbers to be contiguous.)

-- MARK: - Limits per gateway token
-- Each NULL when the client has no such limit (`clients add/set --rpm ... --no-rpm`).
--   rpm, rpd              requests a minute (the last 60 s, to the second) and a UTC day
--   tpm, tpd              tokens (prompt + candidates + thoughts, as used) a minute and a UTC day
--   daily_budget_micros, monthly_budget_micros  US dollars a UTC day and a UTC month, in
--                         micro-dollars (1 USD = 1,000,000), judged on `requests.cost_micros`
--   max_concurrent        requests (streams included) answered at once
--   models                allowed models: names or globs ('gemini-2.5-*'), one per line
--   expires_at            the token stops working at this time (UTC)
--   updated_at            the last change by `clients add/set`: the running gateway reloads then
ALTER TABLE clients ADD COLUMN rpm INTEGER;
ALTER TABLE clients ADD COLUMN rpd INTEGER;
ALTER TABLE clients ADD COLUMN tpm INTEGER;
ALTER TABLE clients ADD COLUMN tpd INTEGER;
ALTER TABLE clients ADD COLUMN daily_budget_micros INTEGER;
ALTER TABLE clients ADD COLUMN monthly_budget_micros INTEGER;
ALTER TABLE clients ADD COLUMN max_concurrent INTEGER;
ALTER TABLE clients ADD COLUMN models TEXT;
ALTER TABLE clients ADD COLUMN expires_at TEXT;
ALTER TABLE clients ADD COLUMN updated_at TEXT;

-- MARK: - Free-tier keys
-- A free-tier key's requests cost 0; their list price is still recorded (`list_cost_micros`).
ALTER TABLE keys ADD COLUMN free_tier INTEGER NOT NULL DEFAULT 0;

-- MARK: - Prices
-- US dollars per 1,000,000 tokens, held as micro-dollars per 1,000,000 tokens (an integer: $0.30
-- is 300000), per model and kind of token (`gemini-gateway prices import`, etc/prices.csv).
-- `model` is a name or a glob ending in '*' (the longest matching glob wins, a name first).
--   input, cached_input, output, thinking  prompts up to long_context_threshold tokens
--   *_long                 prompts over long_context_threshold tokens (NULL: same as short)
--   audio_input            the prompt's audio tokens not from a cache (NULL: same as input)
--   source, taken_on       where and when the figures were read
CREATE TABLE prices (
    model                  TEXT    PRIMARY KEY,
    input                  INTEGER NOT NULL,
    cached_input           INTEGER NOT NULL,
    output                 INTEGER NOT NULL,
    thinking               INTEGER NOT NULL,
    long_context_threshold INTEGER,
    input_long             INTEGER,
    cached_input_long      INTEGER,
    output_long            INTEGER,
    thinking_long          INTEGER,
    audio_input            INTEGER,
    source                 TEXT,
    taken_on               TEXT,
    updated_at             TEXT    NOT NULL
) WITHOUT ROWID;

-- MARK: - Cost per request
--   cost_micros       what the request cost, micro-dollars (0 on a free-tier key)
--   list_cost_micros  what it would have cost at list price (the same but on free-tier keys)
--   price_status      priced | free_tier | unpriced (tokens of a model without a price: cost 0)
--                     | none (no tokens)
ALTER TABLE requests ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN list_cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN price_status TEXT NOT NULL DEFAULT 'none';

ALTER TABLE daily_usage ADD COLUMN client_limited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily_usage ADD COLUMN unpriced_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily_usage ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily_usage ADD COLUMN list_cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily_key_usage ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE daily_key_usage ADD COLUMN list_cost_micros INTEGER NOT NULL DEFAULT 0;

-- MARK: - What a raw row counts as (0005's, plus refusals by a client's limits and cost)
--   client_limited  refused by one of the client's own limits (outcome 'client_limit'; which one
--                   is error_reason: rpm, rpd, tpm, tpd, daily-budget, monthly-budget,
--                   max-concurrent, models, expires); an error, but no upstream's
--   unpriced_requests  tokens of a model the price table does not know (counted at 0)
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
                      'no_capacity', 'cancelled', 'truncated', 'interrupted', 'client_limit') AS upstream_errors,
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
    r.ttfb_ms IS NOT NULL                            AS ttfb_requests,
    r.outcome = 'client_limit'                       AS client_limited,
    r.price_status = 'unpriced'                      AS unpriced_requests,
    r.cost_micros,
    r.list_cost_micros
FROM requests r;

DROP VIEW pending_daily_usage;
CREATE VIEW pending_daily_usage AS
SELECT day, client, model, SUM(requests) AS requests, SUM(successful) AS successful,
       SUM(errors) AS errors, SUM(client_errors) AS client_errors, SUM(throttled) AS throttled,
       SUM(no_capacity) AS no_capacity, SUM(upstream_errors) AS upstream_errors,
       SUM(cancelled) AS cancelled, SUM(truncated) AS truncated, SUM(streamed) AS streamed,
       SUM(upstream_attempts) AS upstream_attempts, SUM(usage_missing) AS usage_missing,
       SUM(usage_truncated) AS usage_truncated, SUM(prompt_tokens) AS prompt_tokens,
       SUM(cached_tokens) AS cached_tokens, SUM(candidates_tokens) AS candidates_tokens,
       SUM(thoughts_tokens) AS thoughts_tokens, SUM(tool_use_tokens) AS tool_use_tokens,
       SUM(total_tokens) AS total_tokens, SUM(request_bytes) AS request_bytes,
       SUM(response_bytes) AS response_bytes, SUM(latency_ms) AS latency_ms_sum,
       SUM(ttfb_ms) AS ttfb_ms_sum, SUM(ttfb_requests) AS ttfb_requests,
       SUM(client_limited) AS client_limited, SUM(unpriced_requests) AS unpriced_requests,
       SUM(cost_micros) AS cost_micros, SUM(list_cost_micros) AS list_cost_micros
FROM request_facts
WHERE id > (SELECT requests_folded_through FROM log_state)
GROUP BY day, client, model;

DROP VIEW pending_daily_key_usage;
CREATE VIEW pending_daily_key_usage AS
SELECT day, key_id, SUM(requests) AS requests, SUM(successful) AS successful,
       SUM(errors) AS errors, SUM(total_tokens) AS total_tokens, SUM(attempts) AS attempts,
       SUM(successful_attempts) AS successful_attempts, SUM(throttled_attempts) AS throttled_attempts,
       SUM(key_failures) AS key_failures, SUM(upstream_failures) AS upstream_failures,
       SUM(cost_micros) AS cost_micros, SUM(list_cost_micros) AS list_cost_micros
FROM (
    SELECT day, key_id, requests, successful, errors, total_tokens, 0 AS attempts,
           0 AS successful_attempts, 0 AS throttled_attempts, 0 AS key_failures, 0 AS upstream_failures,
           cost_micros, list_cost_micros
    FROM request_facts
    WHERE id > (SELECT requests_folded_through FROM log_state) AND key_id IS NOT NULL
    UNION ALL
    SELECT day, key_id, 0, 0, 0, 0, attempts, successful_attempts, throttled_attempts,
           key_failures, upstream_failures, 0, 0
    FROM attempt_facts
    WHERE id > (SELECT attempts_folded_through FROM log_state) AND key_id IS NOT NULL
)
GROUP BY day, key_id;

-- MARK: - Usage views, with refusals by limits and cost
--   client_limited     requests refused by the client's own limits
--   unpriced_requests  requests with tokens of a model without a price (their cost counts 0)
--   cost_usd           what the requests cost, US dollars (free-tier keys count 0)
--   list_cost_usd      the same at list price (free-tier keys included): list - cost = saved
DROP VIEW usage_by_client_day;
CREATE VIEW usage_by_client_day AS
SELECT day, client,
       SUM(requests) AS requests, SUM(successful) AS successful, SUM(errors) AS errors,
       round(1.0 * SUM(errors) / SUM(requests), 4) AS error_rate,
       SUM(client_errors) AS client_errors, SUM(throttled) AS throttled,
       SUM(no_capacity) AS no_capacity, SUM(upstream_errors) AS upstream_errors,
       SUM(cancelled) AS cancelled, SUM(truncated) AS truncated, SUM(streamed) AS streamed,
       SUM(upstream_attempts) AS upstream_attempts,
       SUM(usage_missing) AS usage_missing, SUM(usage_truncated) AS usage_truncated,
       SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,
       SUM(candidates_tokens) AS candidates_tokens, SUM(thoughts_tokens) AS thoughts_tokens,
       SUM(tool_use_tokens) AS tool_use_tokens, SUM(total_tokens) AS total_tokens,
       SUM(request_bytes) AS request_bytes, SUM(response_bytes) AS response_bytes,
       round(SUM(latency_ms_sum) / SUM(requests), 1) AS avg_latency_ms,
       round(SUM(ttfb_ms_sum) / NULLIF(SUM(ttfb_requests), 0), 1) AS avg_ttfb_ms,
       SUM(client_limited) AS client_limited, SUM(unpriced_requests) AS unpriced_requests,
       SUM(cost_micros) / 1000000.0 AS cost_usd, SUM(list_cost_micros) / 1000000.0 AS list_cost_usd
FROM daily_usage
GROUP BY day, client;

DROP VIEW usage_by_model_day;
CREATE VIEW usage_by_model_day AS
SELECT day, model,
       SUM(requests) AS requests, SUM(successful) AS successful, SUM(errors) AS errors,
       round(1.0 * SUM(errors) / SUM(requests), 4) AS error_rate,
       SUM(client_errors) AS client_errors, SUM(throttled) AS throttled,
       SUM(no_capacity) AS no_capacity, SUM(upstream_errors) AS upstream_errors,
       SUM(cancelled) AS cancelled, SUM(truncated) AS truncated, SUM(streamed) AS streamed,
       SUM(upstream_attempts) AS upstream_attempts,
       SUM(usage_missing) AS usage_missing, SUM(usage_truncated) AS usage_truncated,
       SUM(prompt_tokens) AS prompt_tokens, SUM(cached_tokens) AS cached_tokens,
       SUM(candidates_tokens) AS candidates_tokens, SUM(thoughts_tokens) AS thoughts_tokens,
       SUM(tool_use_tokens) AS tool_use_tokens, SUM(total_tokens) AS total_tokens,
       SUM(request_bytes) AS request_bytes, SUM(response_bytes) AS response_bytes,
       round(SUM(latency_ms_sum) / SUM(requests), 1) AS avg_latency_ms,
       round(SUM(ttfb_ms_sum) / NULLIF(SUM(ttfb_requests), 0), 1) AS avg_ttfb_ms,
       SUM(client_limited) AS client_limited, SUM(unpriced_requests) AS unpriced_requests,
       SUM(cost_micros) / 1000000.0 AS cost_usd, SUM(list_cost_micros) / 1000000.0 AS list_cost_usd
FROM daily_usage
GROUP BY day, model;

DROP VIEW usage_by_key_day;
CREATE VIEW usage_by_key_day AS
SELECT d.day, d.key_id, k.fingerprint, k.tail, k.project, k.state,
       d.requests, d.successful, d.errors, d.attempts, d.successful_attempts, d.throttled_attempts,
       d.key_failures, d.upstream_failures, d.total_tokens,
       k.free_tier, d.cost_micros / 1000000.0 AS cost_usd, d.list_cost_micros / 1000000.0 AS list_cost_usd
FROM daily_key_usage d
LEFT JOIN keys k ON k.id = d.key_id;

-- MARK: - Spend (what `gemini-gateway report spend` reads)
-- spend_by_day: one row per UTC day, client and model (from the daily totals, kept by
-- retention): requests, tokens, cost_usd and list_cost_usd, cost_micros and list_cost_micros
-- (exact), unpriced_requests (a model without a price: its cost counts 0).
CREATE VIEW spend_by_day AS
SELECT day, client, model, requests, client_limited,
       prompt_tokens, cached_tokens, candidates_tokens, thoughts_tokens, total_tokens,
       unpriced_requests, cost_micros, list_cost_micros,
       cost_micros / 1000000.0 AS cost_usd, list_cost_micros / 1000000.0 AS list_cost_usd
FROM daily_usage;

-- spend_by_project_day: one row per UTC day and Google project label of the keys ('-' for keys
-- without one): what the requests served by its keys cost.
CREATE VIEW spend_by_project_day AS
SELECT d.day, COALESCE(k.project, '-') AS project, SUM(d.requests) AS requests,
       SUM(d.total_tokens) AS total_tokens, SUM(d.cost_micros) AS cost_micros,
       SUM(d.list_cost_micros) AS list_cost_micros,
       SUM(d.cost_micros) / 1000000.0 AS cost_usd, SUM(d.list_cost_micros) / 1000000.0 AS list_cost_usd
FROM daily_key_usage d
LEFT JOIN keys k ON k.id = d.key_id
GROUP BY d.day, COALESCE(k.project, '-');
