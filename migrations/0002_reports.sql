-- gemini-gateway schema, version 2: usage reports.
--
-- How it fits together
--   * `request_facts` and `attempt_facts` say, once, what each logged row counts as (a success,
--     a client error, a throttled try, ...). Everything below is built on them.
--   * The daily_* tables hold totals per UTC day. The log writer folds every batch of new
--     `requests` and `attempts` rows into them in the same transaction that inserts the batch
--     (the pending_daily_* views below compute what to add; `log_state` remembers the last row
--     folded), so they are always current and count every row exactly once.
--   * Retention (`serve --log-retention-days`) deletes old raw rows, after they are folded, but
--     never touches the daily_* tables: long-range reports survive pruning, and nothing is
--     counted twice because reports take totals only from the daily_* tables (raw rows are read
--     only for the part of a day that a report's range cuts, and only where they still exist).
--   * The usage_by_* views read the daily tables: filter them with `WHERE day BETWEEN ...`.
--   * The *_health views and `health` show the state right now.
-- Days are UTC dates 'YYYY-MM-DD', times UTC text 'YYYY-MM-DD HH:MM:SS.SSS', as in 0001.
-- A missing client or model is shown as '-'.

-- MARK: - What a raw row counts as

-- One row per request with its day and one 0/1 column per kind of outcome.
--   errors          every outcome but success (= client_errors + throttled + no_capacity
--                   + upstream_errors + cancelled + truncated)
--   client_errors   client_error (the upstream refused the request), unauthorized, too_large
--   throttled       every key cooling for the model, or the last try answered 429
--   no_capacity     no active key or no upstream at all
--   upstream_errors upstream_error, key_error, gateway_error and any other failure
--   cancelled       the client went away
--   truncated       the answer broke off after its first byte
--   usage_missing   a generate call that succeeded without usageMetadata
--   usage_truncated a generate call whose usage is the last running total seen before it broke off
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
                      'no_capacity', 'cancelled', 'truncated') AS upstream_errors,
    r.outcome = 'cancelled'                          AS cancelled,
    r.outcome = 'truncated'                          AS truncated,
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

-- Histogram buckets for attempt latency: each bucket holds latencies in (previous bound,
-- upper_ms]. Bounds follow the R10 series (1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8 per decade,
-- 0.1 ms to 1,000 s): a percentile read from the histogram is the upper bound of its bucket,
-- at most 28% above the exact value.
CREATE TABLE latency_buckets (
    upper_ms REAL PRIMARY KEY
) WITHOUT ROWID;
INSERT INTO latency_buckets (upper_ms)
WITH mantissa(m) AS (VALUES (1.0), (1.25), (1.6), (2.0), (2.5), (3.15), (4.0), (5.0), (6.3), (8.0)),
     decade(d) AS (VALUES (0.1), (1.0), (10.0), (100.0), (1000.0), (10000.0), (100000.0))
SELECT round(m * d, 3) FROM mantissa, decade;
INSERT INTO latency_buckets (upper_ms) VALUES (1000000.0), (1.0e15);

-- One row per upstream try with its day, the model and client of its request, and one 0/1
-- column per verdict family.
--   key_failures       key_dead, key_unusable: the key itself was refused
--   upstream_failures  upstream_failure, upstream_blocked, transient: the upstream (or Google
--                      behind it) failed
--   timed_attempts     tries with a latency, cancelled ones excluded; latency_bucket_ms is their
--                      histogram bucket
CREATE VIEW attempt_facts AS
SELECT
    a.id,
    a.request_id,
    a.attempt,
    a.started_at,
    substr(a.started_at, 1, 10)                      AS day,
    a.key_id,
    a.upstream_id,
    COALESCE(r.client_name, '-')                     AS client,
    COALESCE(r.model, '-')                           AS model,
    1                                                AS attempts,
    a.verdict = 'success'                            AS successful_attempts,
    a.verdict = 'throttled'                          AS throttled_attempts,
    a.verdict IN ('key_dead', 'key_unusable')        AS key_failures,
    a.verdict IN ('upstream_failure', 'upstream_blocked', 'transient') AS upstream_failures,
    a.verdict = 'client_error'                       AS client_error_attempts,
    a.verdict = 'cancelled'                          AS cancelled_attempts,
    a.latency_ms IS NOT NULL AND a.verdict <> 'cancelled' AS timed_attempts,
    CASE WHEN a.latency_ms IS NOT NULL AND a.verdict <> 'cancelled' THEN a.latency_ms ELSE 0 END AS latency_ms,
    CASE WHEN a.latency_ms IS NOT NULL AND a.verdict <> 'cancelled'
         THEN (SELECT MIN(b.upper_ms) FROM latency_buckets b WHERE b.upper_ms >= a.latency_ms) END AS latency_bucket_ms
FROM attempts a
LEFT JOIN requests r ON r.request_id = a.request_id;

-- MARK: - Daily totals (kept by retention)

-- Requests per UTC day, client and model: the source of usage_by_client_day and
-- usage_by_model_day. Columns as in request_facts, summed; latency_ms_sum / requests is the
-- average latency, ttfb_ms_sum / ttfb_requests the average time to first byte.
CREATE TABLE daily_usage (
    day               TEXT    NOT NULL,
    client            TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    requests          INTEGER NOT NULL DEFAULT 0,
    successful        INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    client_errors     INTEGER NOT NULL DEFAULT 0,
    throttled         INTEGER NOT NULL DEFAULT 0,
    no_capacity       INTEGER NOT NULL DEFAULT 0,
    upstream_errors   INTEGER NOT NULL DEFAULT 0,
    cancelled         INTEGER NOT NULL DEFAULT 0,
    truncated         INTEGER NOT NULL DEFAULT 0,
    streamed          INTEGER NOT NULL DEFAULT 0,
    upstream_attempts INTEGER NOT NULL DEFAULT 0,
    usage_missing     INTEGER NOT NULL DEFAULT 0,
    usage_truncated   INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    candidates_tokens INTEGER NOT NULL DEFAULT 0,
    thoughts_tokens   INTEGER NOT NULL DEFAULT 0,
    tool_use_tokens   INTEGER NOT NULL DEFAULT 0,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    request_bytes     INTEGER NOT NULL DEFAULT 0,
    response_bytes    INTEGER NOT NULL DEFAULT 0,
    latency_ms_sum    REAL    NOT NULL DEFAULT 0,
    ttfb_ms_sum       REAL    NOT NULL DEFAULT 0,
    ttfb_requests     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, client, model)
) WITHOUT ROWID;
CREATE INDEX daily_usage_client_day ON daily_usage(client, day);
CREATE INDEX daily_usage_model_day ON daily_usage(model, day);

-- Per UTC day and key: the requests whose final try used the key (requests, successful, errors,
-- total_tokens) and every try made with it (attempts, successful_attempts, throttled_attempts,
-- key_failures, upstream_failures). Not split by model: with 10,000 keys that would make it as
-- big as the raw log (per-key per-model detail is in the raw rows; cooldowns per model are in
-- key_cooldowns_in_force).
CREATE TABLE daily_key_usage (
    day                 TEXT    NOT NULL,
    key_id              INTEGER NOT NULL,
    requests            INTEGER NOT NULL DEFAULT 0,
    successful          INTEGER NOT NULL DEFAULT 0,
    errors              INTEGER NOT NULL DEFAULT 0,
    total_tokens        INTEGER NOT NULL DEFAULT 0,
    attempts            INTEGER NOT NULL DEFAULT 0,
    successful_attempts INTEGER NOT NULL DEFAULT 0,
    throttled_attempts  INTEGER NOT NULL DEFAULT 0,
    key_failures        INTEGER NOT NULL DEFAULT 0,
    upstream_failures   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key_id)
) WITHOUT ROWID;

-- Per UTC day, upstream and model: the requests whose final try went there, and every try sent
-- there with its latency (latency_ms_sum / timed_attempts is the average, latency_ms_max the
-- slowest).
CREATE TABLE daily_upstream_usage (
    day                 TEXT    NOT NULL,
    upstream_id         INTEGER NOT NULL,
    model               TEXT    NOT NULL,
    requests            INTEGER NOT NULL DEFAULT 0,
    successful          INTEGER NOT NULL DEFAULT 0,
    errors              INTEGER NOT NULL DEFAULT 0,
    attempts            INTEGER NOT NULL DEFAULT 0,
    successful_attempts INTEGER NOT NULL DEFAULT 0,
    throttled_attempts  INTEGER NOT NULL DEFAULT 0,
    key_failures        INTEGER NOT NULL DEFAULT 0,
    upstream_failures   INTEGER NOT NULL DEFAULT 0,
    timed_attempts      INTEGER NOT NULL DEFAULT 0,
    latency_ms_sum      REAL    NOT NULL DEFAULT 0,
    latency_ms_max      REAL,
    PRIMARY KEY (day, upstream_id, model)
) WITHOUT ROWID;

-- Per UTC day, upstream and model: how many timed tries fell into each latency bucket (see
-- latency_buckets). Percentiles over any range are read from the sums of these rows.
CREATE TABLE daily_upstream_latency (
    day         TEXT    NOT NULL,
    upstream_id INTEGER NOT NULL,
    model       TEXT    NOT NULL,
    bucket_ms   REAL    NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, upstream_id, model, bucket_ms)
) WITHOUT ROWID;

-- Retention deletes attempts by their own start time; reports cut days by it too.
CREATE INDEX attempts_started_at ON attempts(started_at);

-- MARK: - Folding raw rows into the daily tables

-- The log's bookkeeping (one row).
--   requests_folded_through, attempts_folded_through  the highest `id` already counted in the
--                       daily tables; rows above it are pending. (Retention never deletes the
--                       row with the highest id, so ids only grow.)
--   pruned_before       raw rows that started before this UTC midnight have been deleted by
--                       retention; reports show whole-day totals for the days before it
--   last_pruned_at, requests_pruned, attempts_pruned  what retention did so far
CREATE TABLE log_state (
    id                      INTEGER PRIMARY KEY CHECK (id = 1),
    requests_folded_through INTEGER NOT NULL DEFAULT 0,
    attempts_folded_through INTEGER NOT NULL DEFAULT 0,
    pruned_before           TEXT,
    last_pruned_at          TEXT,
    requests_pruned         INTEGER NOT NULL DEFAULT 0,
    attempts_pruned         INTEGER NOT NULL DEFAULT 0
);
INSERT INTO log_state (id) VALUES (1);

-- What folding adds to each daily table: the pending rows (above the bookmark), summed. The log
-- writer runs `INSERT INTO daily_x SELECT * FROM pending_daily_x ... ON CONFLICT DO UPDATE`
-- adding each column, then moves the bookmarks to the highest ids (AppDatabase+DailyTotals.swift).
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
       SUM(ttfb_ms) AS ttfb_ms_sum, SUM(ttfb_requests) AS ttfb_requests
FROM request_facts
WHERE id > (SELECT requests_folded_through FROM log_state)
GROUP BY day, client, model;

CREATE VIEW pending_daily_key_usage AS
SELECT day, key_id, SUM(requests) AS requests, SUM(successful) AS successful,
       SUM(errors) AS errors, SUM(total_tokens) AS total_tokens, SUM(attempts) AS attempts,
       SUM(successful_attempts) AS successful_attempts, SUM(throttled_attempts) AS throttled_attempts,
       SUM(key_failures) AS key_failures, SUM(upstream_failures) AS upstream_failures
FROM (
    SELECT day, key_id, requests, successful, errors, total_tokens, 0 AS attempts,
           0 AS successful_attempts, 0 AS throttled_attempts, 0 AS key_failures, 0 AS upstream_failures
    FROM request_facts
    WHERE id > (SELECT requests_folded_through FROM log_state) AND key_id IS NOT NULL
    UNION ALL
    SELECT day, key_id, 0, 0, 0, 0, attempts, successful_attempts, throttled_attempts,
           key_failures, upstream_failures
    FROM attempt_facts
    WHERE id > (SELECT attempts_folded_through FROM log_state) AND key_id IS NOT NULL
)
GROUP BY day, key_id;

CREATE VIEW pending_daily_upstream_usage AS
SELECT day, upstream_id, model, SUM(requests) AS requests, SUM(successful) AS successful,
       SUM(errors) AS errors, SUM(attempts) AS attempts, SUM(successful_attempts) AS successful_attempts,
       SUM(throttled_attempts) AS throttled_attempts, SUM(key_failures) AS key_failures,
       SUM(upstream_failures) AS upstream_failures, SUM(timed_attempts) AS timed_attempts,
       SUM(latency_ms) AS latency_ms_sum, MAX(latency_ms_max) AS latency_ms_max
FROM (
    SELECT day, upstream_id, model, requests, successful, errors, 0 AS attempts,
           0 AS successful_attempts, 0 AS throttled_attempts, 0 AS key_failures,
           0 AS upstream_failures, 0 AS timed_attempts, 0 AS latency_ms, NULL AS latency_ms_max
    FROM request_facts
    WHERE id > (SELECT requests_folded_through FROM log_state) AND upstream_id IS NOT NULL
    UNION ALL
    SELECT day, upstream_id, model, 0, 0, 0, attempts, successful_attempts, throttled_attempts,
           key_failures, upstream_failures, timed_attempts, latency_ms,
           CASE WHEN timed_attempts THEN latency_ms END
    FROM attempt_facts
    WHERE id > (SELECT attempts_folded_through FROM log_state) AND upstream_id IS NOT NULL
)
GROUP BY day, upstream_id, model;

CREATE VIEW pending_daily_upstream_latency AS
SELECT day, upstream_id, model, latency_bucket_ms AS bucket_ms, COUNT(*) AS attempts
FROM attempt_facts
WHERE id > (SELECT attempts_folded_through FROM log_state)
  AND upstream_id IS NOT NULL AND latency_bucket_ms IS NOT NULL
GROUP BY day, upstream_id, model, latency_bucket_ms;

-- Rows logged before this migration: fold them all now.
INSERT INTO daily_usage SELECT * FROM pending_daily_usage;
INSERT INTO daily_key_usage SELECT * FROM pending_daily_key_usage;
INSERT INTO daily_upstream_usage SELECT * FROM pending_daily_upstream_usage;
INSERT INTO daily_upstream_latency SELECT * FROM pending_daily_upstream_latency;
UPDATE log_state SET requests_folded_through = COALESCE((SELECT MAX(id) FROM requests), 0),
                     attempts_folded_through = COALESCE((SELECT MAX(id) FROM attempts), 0);

-- MARK: - Usage views (filter with WHERE day BETWEEN 'YYYY-MM-DD' AND 'YYYY-MM-DD')

-- usage_by_client_day: one row per UTC day and client (the gateway token's name; 'proxy-key'
-- for the static --proxy-key, '-' for unauthenticated requests). Counts as in request_facts;
-- error_rate = errors / requests; avg_latency_ms is the whole request, avg_ttfb_ms the time to
-- the first byte sent to the client.
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
       round(SUM(ttfb_ms_sum) / NULLIF(SUM(ttfb_requests), 0), 1) AS avg_ttfb_ms
FROM daily_usage
GROUP BY day, client;

-- usage_by_model_day: one row per UTC day and model ('-' for calls that name none, such as
-- models.list). Columns as in usage_by_client_day.
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
       round(SUM(ttfb_ms_sum) / NULLIF(SUM(ttfb_requests), 0), 1) AS avg_ttfb_ms
FROM daily_usage
GROUP BY day, model;

-- usage_by_key_day: one row per UTC day and key, named by fingerprint and tail (never the key).
--   requests, successful, errors, total_tokens  requests whose final try used the key
--   attempts             every upstream try made with the key (retries included)
--   throttled_attempts   tries answered 429
--   key_failures         tries refused because of the key (dead, suspended, not enabled)
--   upstream_failures    tries that failed because of the upstream, not the key
CREATE VIEW usage_by_key_day AS
SELECT d.day, d.key_id, k.fingerprint, k.tail, k.project, k.state,
       d.requests, d.successful, d.errors, d.attempts, d.successful_attempts, d.throttled_attempts,
       d.key_failures, d.upstream_failures, d.total_tokens
FROM daily_key_usage d
LEFT JOIN keys k ON k.id = d.key_id;

-- usage_by_upstream_day: one row per UTC day and upstream.
--   requests, successful, errors  requests whose final try went to the upstream
--   attempts, successful_attempts, throttled_attempts, key_failures, upstream_failures  its tries
--   failure_rate        upstream_failures / attempts (throttles and dead keys are not its fault)
--   avg_latency_ms, max_latency_ms  over its timed tries (head and first chunk, or the whole
--                       error answer; cancelled tries excluded)
--   p50_latency_ms_approx, p95_latency_ms_approx  from the latency histogram: the upper bound
--                       of the bucket holding the percentile (at most 28% above the exact value)
CREATE VIEW usage_by_upstream_day AS
WITH latency AS (
    SELECT day, upstream_id, bucket_ms,
           SUM(SUM(attempts)) OVER (PARTITION BY day, upstream_id ORDER BY bucket_ms) AS running,
           SUM(SUM(attempts)) OVER (PARTITION BY day, upstream_id) AS total
    FROM daily_upstream_latency
    GROUP BY day, upstream_id, bucket_ms
), percentiles AS (
    SELECT day, upstream_id,
           MIN(CASE WHEN running >= 0.50 * total THEN bucket_ms END) AS p50,
           MIN(CASE WHEN running >= 0.95 * total THEN bucket_ms END) AS p95
    FROM latency GROUP BY day, upstream_id
)
SELECT d.day, d.upstream_id, u.base_url, u.state,
       SUM(d.requests) AS requests, SUM(d.successful) AS successful, SUM(d.errors) AS errors,
       SUM(d.attempts) AS attempts, SUM(d.successful_attempts) AS successful_attempts,
       SUM(d.throttled_attempts) AS throttled_attempts, SUM(d.key_failures) AS key_failures,
       SUM(d.upstream_failures) AS upstream_failures,
       round(1.0 * SUM(d.upstream_failures) / NULLIF(SUM(d.attempts), 0), 4) AS failure_rate,
       round(SUM(d.latency_ms_sum) / NULLIF(SUM(d.timed_attempts), 0), 1) AS avg_latency_ms,
       round(MAX(d.latency_ms_max), 1) AS max_latency_ms,
       p.p50 AS p50_latency_ms_approx, p.p95 AS p95_latency_ms_approx
FROM daily_upstream_usage d
LEFT JOIN upstreams u ON u.id = d.upstream_id
LEFT JOIN percentiles p ON p.day = d.day AND p.upstream_id = d.upstream_id
GROUP BY d.day, d.upstream_id;

-- MARK: - Health right now

-- key_cooldowns_in_force: every cooldown in force now, one row per key and model ('*' = every
-- model). applies_via is 'key' for the key's own cooldown, 'project' for one on its project
-- (quotas are per project). Deleted keys are left out.
CREATE VIEW key_cooldowns_in_force AS
SELECT k.id AS key_id, k.fingerprint, k.tail, k.project, c.model, c.until, c.reason, c.quota_id,
       'key' AS applies_via
FROM key_cooldowns c
JOIN keys k ON k.id = c.key_id
WHERE c.until > strftime('%Y-%m-%d %H:%M:%f', 'now') AND k.state <> 'deleted'
UNION ALL
SELECT k.id, k.fingerprint, k.tail, k.project, p.model, p.until, p.reason, p.quota_id, 'project'
FROM project_cooldowns p
JOIN keys k ON k.project = p.project
WHERE p.until > strftime('%Y-%m-%d %H:%M:%f', 'now') AND k.state <> 'deleted';

-- key_health: every key now.
--   condition      usable | cooling (some cooldown in force: see cooldowns) | disabled | deleted
--   cooldowns      'model until TIME (REASON)' for each cooldown in force, '; '-separated
--   cooling_until  when the last cooldown in force ends
--   why            the reason it was deleted, or its cooldowns
--   since          when it was deleted or disabled
CREATE VIEW key_health AS
WITH cooling AS (
    SELECT key_id, MAX(until) AS cooling_until, COUNT(*) AS cooldowns_in_force,
           group_concat(model || ' until ' || substr(until, 1, 19) || ' (' || reason || ')', '; ') AS cooldowns
    FROM (SELECT * FROM key_cooldowns_in_force ORDER BY key_id, until, model)
    GROUP BY key_id
)
SELECT k.id AS key_id, k.fingerprint, k.tail, k.project, k.state,
       CASE WHEN k.state <> 'active' THEN k.state
            WHEN c.key_id IS NOT NULL THEN 'cooling'
            ELSE 'usable' END AS condition,
       COALESCE(c.cooldowns_in_force, 0) AS cooldowns_in_force,
       c.cooldowns, c.cooling_until,
       CASE k.state WHEN 'deleted' THEN k.deleted_reason
                    WHEN 'disabled' THEN 'disabled by operator'
                    ELSE c.cooldowns END AS why,
       CASE k.state WHEN 'deleted' THEN k.deleted_at WHEN 'disabled' THEN k.disabled_at END AS since,
       k.last_used_at, k.last_throttled_at, k.throttle_streak
FROM keys k
LEFT JOIN cooling c ON c.key_id = k.id;

-- upstream_health: every upstream now.
--   condition            usable | cooling (after failures, until cooling_until) | disabled
--   why                  the last failure's reason while cooling
--   attempts_last_hour, upstream_failures_last_hour  tries sent there in the last hour (raw rows)
CREATE VIEW upstream_health AS
SELECT u.id AS upstream_id, u.base_url, u.state,
       CASE WHEN u.state <> 'active' THEN u.state
            WHEN u.cooldown_until > strftime('%Y-%m-%d %H:%M:%f', 'now') THEN 'cooling'
            ELSE 'usable' END AS condition,
       CASE WHEN u.cooldown_until > strftime('%Y-%m-%d %H:%M:%f', 'now') THEN u.cooldown_until END AS cooling_until,
       CASE WHEN u.state = 'disabled' THEN 'disabled by operator'
            WHEN u.cooldown_until > strftime('%Y-%m-%d %H:%M:%f', 'now') THEN u.last_failure_reason END AS why,
       u.failure_streak, u.last_failure_at, u.last_failure_reason, u.last_used_at,
       (SELECT COUNT(*) FROM attempts a WHERE a.upstream_id = u.id
           AND a.started_at >= strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 hour')) AS attempts_last_hour,
       (SELECT COUNT(*) FROM attempts a WHERE a.upstream_id = u.id
           AND a.started_at >= strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 hour')
           AND a.verdict IN ('upstream_failure', 'upstream_blocked', 'transient')) AS upstream_failures_last_hour
FROM upstreams u;

-- health: keys and upstreams in one list (what `report health` prints, ordered there: upstreams,
-- then keys, what is not usable first; add ORDER BY kind = 'key', condition = 'usable', id).
--   kind 'key' (name = fingerprint, tail = last 4 characters) or 'upstream' (name = base URL);
--   condition, cooling_until, why, since as in key_health and upstream_health.
CREATE VIEW health AS
SELECT 'key' AS kind, key_id AS id, fingerprint AS name, tail, project, state, condition,
       cooling_until, why, since, last_used_at
FROM key_health
UNION ALL
SELECT 'upstream', upstream_id, base_url, NULL, NULL, state, condition, cooling_until, why,
       CASE WHEN condition = 'cooling' THEN last_failure_at END, last_used_at
FROM upstream_health;
