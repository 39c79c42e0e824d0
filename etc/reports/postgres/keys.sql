-- Keys used in the last 7 UTC days (fingerprint and last 4 characters, never the key): the
-- requests they served, their tries, throttles and failures. Busiest first.
--   psql "postgres://USER@HOST/DB" -f etc/reports/postgres/keys.sql
SELECT MIN(fingerprint) AS fingerprint, MIN(tail) AS tail, MIN(project) AS project, MIN(state) AS state,
       SUM(requests) AS requests, SUM(errors) AS errors, SUM(attempts) AS attempts,
       SUM(throttled_attempts) AS throttled_attempts, SUM(key_failures) AS key_failures,
       SUM(upstream_failures) AS upstream_failures, SUM(total_tokens) AS total_tokens
FROM usage_by_key_day
WHERE day >= (now() AT TIME ZONE 'UTC')::date - 6
GROUP BY key_id
ORDER BY requests DESC, attempts DESC, key_id;
