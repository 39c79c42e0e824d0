-- Keys used in the last 7 UTC days (fingerprint and last 4 characters, never the key): the
-- requests they served, their tries, throttles and failures. Busiest first.
--   sqlite3 gateway.db < etc/reports/keys.sql
.headers on
.mode column
SELECT fingerprint, tail, project, state,
       SUM(requests) AS requests, SUM(errors) AS errors, SUM(attempts) AS attempts,
       SUM(throttled_attempts) AS throttled_attempts, SUM(key_failures) AS key_failures,
       SUM(upstream_failures) AS upstream_failures, SUM(total_tokens) AS total_tokens
FROM usage_by_key_day
WHERE day >= date('now', '-6 days')
GROUP BY key_id
ORDER BY requests DESC, attempts DESC, key_id;
