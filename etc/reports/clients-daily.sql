-- Requests, errors and tokens per client per day, the last 7 UTC days (today included).
--   sqlite3 gateway.db < etc/reports/clients-daily.sql
-- Reads the daily totals (view usage_by_client_day), so days pruned from the raw log still count.
.headers on
.mode column
SELECT day, client, requests, errors, throttled, cancelled,
       prompt_tokens, cached_tokens, candidates_tokens, thoughts_tokens, total_tokens,
       avg_latency_ms
FROM usage_by_client_day
WHERE day >= date('now', '-6 days')
ORDER BY day, client;
