-- Upstreams over the last 7 UTC days: tries, failure rate, average and slowest latency, and
-- p50/p95 read from the latency histogram (the upper bound of the bucket holding the
-- percentile: at most 28% above the exact value).
--   psql "postgres://USER@HOST/DB" -f etc/reports/postgres/upstreams.sql
WITH range AS (SELECT (now() AT TIME ZONE 'UTC')::date - 6 AS first_day),
buckets AS (
    SELECT upstream_id, bucket_ms, SUM(attempts) AS n
    FROM daily_upstream_latency, range WHERE day >= first_day
    GROUP BY upstream_id, bucket_ms
),
running AS (
    SELECT upstream_id, bucket_ms,
           SUM(n) OVER (PARTITION BY upstream_id ORDER BY bucket_ms) AS running,
           SUM(n) OVER (PARTITION BY upstream_id) AS total
    FROM buckets
),
percentiles AS (
    SELECT upstream_id,
           MIN(CASE WHEN running >= 0.50 * total THEN bucket_ms END) AS p50,
           MIN(CASE WHEN running >= 0.95 * total THEN bucket_ms END) AS p95
    FROM running GROUP BY upstream_id
)
SELECT MIN(u.base_url) AS base_url, MIN(u.state) AS state, SUM(d.requests) AS requests, SUM(d.attempts) AS attempts,
       SUM(d.upstream_failures) AS upstream_failures,
       round(1.0 * SUM(d.upstream_failures) / NULLIF(SUM(d.attempts), 0), 4) AS failure_rate,
       round((SUM(d.latency_ms_sum) / NULLIF(SUM(d.timed_attempts), 0))::numeric, 1) AS avg_latency_ms,
       MIN(p.p50) AS p50_latency_ms_approx, MIN(p.p95) AS p95_latency_ms_approx,
       round(MAX(d.latency_ms_max)::numeric, 1) AS max_latency_ms
FROM daily_upstream_usage d
JOIN range ON d.day >= range.first_day
LEFT JOIN upstreams u ON u.id = d.upstream_id
LEFT JOIN percentiles p ON p.upstream_id = d.upstream_id
GROUP BY d.upstream_id
ORDER BY d.upstream_id;
