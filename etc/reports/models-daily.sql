-- Requests, errors and tokens per model per day, the last 7 UTC days (today included).
--   sqlite3 gateway.db < etc/reports/models-daily.sql
.headers on
.mode column
SELECT day, model, requests, errors, error_rate, streamed, upstream_attempts,
       prompt_tokens, candidates_tokens, thoughts_tokens, total_tokens, avg_latency_ms, avg_ttfb_ms
FROM usage_by_model_day
WHERE day >= date('now', '-6 days')
ORDER BY day, model;
