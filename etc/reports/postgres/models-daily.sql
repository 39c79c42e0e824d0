-- Requests, errors and tokens per model per day, the last 7 UTC days (today included).
--   psql "postgres://USER@HOST/DB" -f etc/reports/postgres/models-daily.sql
SELECT day, model, requests, errors, error_rate, streamed, upstream_attempts,
       prompt_tokens, candidates_tokens, thoughts_tokens, total_tokens, avg_latency_ms, avg_ttfb_ms
FROM usage_by_model_day
WHERE day >= (now() AT TIME ZONE 'UTC')::date - 6
ORDER BY day, model;
