-- Requests, errors and tokens per client per day, the last 7 UTC days (today included).
--   psql "postgres://USER@HOST/DB" -f etc/reports/postgres/clients-daily.sql
-- The PostgreSQL store's twin of etc/reports/clients-daily.sql (days are UTC dates).
SELECT day, client, requests, errors, throttled, cancelled,
       prompt_tokens, cached_tokens, candidates_tokens, thoughts_tokens, total_tokens,
       avg_latency_ms
FROM usage_by_client_day
WHERE day >= (now() AT TIME ZONE 'UTC')::date - 6
ORDER BY day, client;
