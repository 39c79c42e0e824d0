-- Fills a gateway database with synthetic traffic for bench/reports.sh: keys, upstreams, clients,
-- `rows` requests spread over the last `days` days with their attempts, and some cooldowns.
-- Parameters come from the temp table `bench_params` (rows, days, clients, models, keys,
-- upstreams) that the script creates first. Secrets are fake.
PRAGMA synchronous = OFF;

-- Keys, upstreams and clients to point at (fake secrets: never real keys).
INSERT INTO keys (secret, fingerprint, tail, project, state, created_at, updated_at)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < (SELECT keys FROM bench_params))
SELECT printf('AIzaBENCH-%032d', i), printf('%012x', i * 2654435761 % 281474976710656), printf('%04d', i % 10000),
       'project-' || (i % 10), CASE WHEN i % 50 = 0 THEN 'deleted' ELSE 'active' END,
       strftime('%Y-%m-%d %H:%M:%f', 'now', '-60 days'), strftime('%Y-%m-%d %H:%M:%f', 'now', '-60 days')
FROM n;
INSERT INTO upstreams (base_url, created_at, updated_at)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < (SELECT upstreams FROM bench_params))
SELECT 'https://relay-' || i || '.example.com', strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;
INSERT INTO clients (name, token_hash, token_tail, created_at)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < (SELECT clients FROM bench_params))
SELECT 'client-' || i, printf('%064x', i), printf('%04d', i), strftime('%Y-%m-%d %H:%M:%f', 'now') FROM n;

-- Requests: spread over the last `days` days; ~90% success, the rest spread over the outcomes.
CREATE TEMP TABLE bench_requests AS
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < (SELECT rows FROM bench_params))
SELECT i,
       abs(random()) % 1000 AS dice,
       abs(random()) % ((SELECT days FROM bench_params) * 86400000) AS age_ms,
       1 + abs(random()) % (SELECT clients FROM bench_params) AS client,
       abs(random()) % (SELECT models FROM bench_params) AS model,
       1 + abs(random()) % (SELECT keys FROM bench_params) AS key,
       1 + abs(random()) % (SELECT upstreams FROM bench_params) AS upstream,
       5 + abs(random()) % 5000 AS latency
FROM n;

INSERT INTO requests (request_id, started_at, client_id, client_name, method, endpoint, api_version, model,
                      is_stream, status, outcome, attempt_count, key_id, key_fingerprint, upstream_id, upstream_url,
                      latency_ms, ttfb_ms, request_bytes, response_bytes, prompt_tokens, cached_tokens,
                      candidates_tokens, thoughts_tokens, tool_use_tokens, total_tokens, usage_status,
                      error_status, error_reason)
SELECT printf('%016x', i),
       strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', age_ms / 1000.0)),
       client, 'client-' || client, 'POST',
       CASE WHEN dice % 7 = 0 THEN 'streamGenerateContent' WHEN dice % 31 = 0 THEN 'countTokens' ELSE 'generateContent' END,
       'v1beta', 'gemini-model-' || model, dice % 7 = 0,
       CASE WHEN dice < 900 THEN 200 WHEN dice < 930 THEN 400 WHEN dice < 960 THEN 429 WHEN dice < 980 THEN 502
            WHEN dice < 990 THEN 499 ELSE 200 END,
       CASE WHEN dice < 900 THEN 'success' WHEN dice < 930 THEN 'client_error' WHEN dice < 960 THEN 'throttled'
            WHEN dice < 980 THEN 'upstream_error' WHEN dice < 990 THEN 'cancelled' ELSE 'truncated' END,
       1 + (dice % 10 = 0), key, printf('%012x', key * 2654435761 % 281474976710656), upstream,
       'https://relay-' || upstream || '.example.com',
       latency, latency / 3.0, 200 + dice, 1000 + dice * 3,
       CASE WHEN dice < 900 OR dice >= 990 THEN 100 + dice ELSE 0 END, 0,
       CASE WHEN dice < 900 OR dice >= 990 THEN 20 + dice % 50 ELSE 0 END,
       CASE WHEN dice < 900 OR dice >= 990 THEN dice % 13 ELSE 0 END, 0,
       CASE WHEN dice < 900 OR dice >= 990 THEN 120 + dice + dice % 50 + dice % 13 ELSE 0 END,
       CASE WHEN dice < 900 THEN 'complete' WHEN dice >= 990 THEN 'truncated' ELSE 'none' END,
       CASE WHEN dice >= 900 AND dice < 990 THEN 'SOME_STATUS' END, NULL
FROM bench_requests ORDER BY age_ms DESC;

-- Attempts: one per request, a failed first try before it for one request in ten.
INSERT INTO attempts (request_id, attempt, started_at, key_id, upstream_id, status, verdict, google_status,
                      reason, quota_id, latency_ms)
SELECT printf('%016x', i), 1, strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', age_ms / 1000.0)),
       1 + (key % (SELECT keys FROM bench_params)), upstream, 429, 'throttled', 'RESOURCE_EXHAUSTED',
       'RATE_LIMIT_PER_MINUTE', 'GenerateRequestsPerMinutePerProjectPerModel', 40 + dice % 100
FROM bench_requests WHERE dice % 10 = 0 ORDER BY age_ms DESC;
INSERT INTO attempts (request_id, attempt, started_at, key_id, upstream_id, status, verdict, google_status,
                      reason, quota_id, latency_ms)
SELECT printf('%016x', i), 1 + (dice % 10 = 0), strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%.3f seconds', age_ms / 1000.0)),
       key, upstream,
       CASE WHEN dice < 900 THEN 200 WHEN dice < 930 THEN 400 WHEN dice < 960 THEN 429 WHEN dice < 980 THEN 502 ELSE 200 END,
       CASE WHEN dice < 900 THEN 'success' WHEN dice < 930 THEN 'client_error' WHEN dice < 960 THEN 'throttled'
            WHEN dice < 980 THEN 'upstream_failure' WHEN dice < 990 THEN 'cancelled' ELSE 'success' END,
       NULL, NULL, NULL, latency * 0.8
FROM bench_requests ORDER BY age_ms DESC;

-- State for the health report: deleted keys say why; some keys and one upstream are cooling.
UPDATE keys SET deleted_at = created_at, deleted_reason = 'API_KEY_INVALID' WHERE state = 'deleted';
INSERT INTO key_cooldowns (key_id, model, until, reason, quota_id, created_at)
SELECT id, 'gemini-model-1', strftime('%Y-%m-%d %H:%M:%f', 'now', '+30 minutes'), 'RATE_LIMIT_PER_MINUTE',
       'GenerateRequestsPerMinutePerProjectPerModel', strftime('%Y-%m-%d %H:%M:%f', 'now')
FROM keys WHERE id % 17 = 0 AND state = 'active';
UPDATE upstreams SET cooldown_until = strftime('%Y-%m-%d %H:%M:%f', 'now', '+5 minutes'), failure_streak = 3,
                     last_failure_at = strftime('%Y-%m-%d %H:%M:%f', 'now'), last_failure_reason = 'CONNECTION_REFUSED'
WHERE id = 1;
