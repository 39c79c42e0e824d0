-- What went wrong in the last hour, from the raw log: failed upstream tries by upstream, verdict,
-- status and reason, then failed client requests by outcome.
--   psql "postgres://USER@HOST/DB" -f etc/reports/postgres/failures-last-hour.sql
SELECT u.base_url, a.verdict, a.status, a.google_status, a.reason, COUNT(*) AS tries,
       round(AVG(a.latency_ms)::numeric, 1) AS avg_latency_ms
FROM attempts a
LEFT JOIN upstreams u ON u.id = a.upstream_id
WHERE a.started_at >= now() - interval '1 hour' AND a.verdict <> 'success'
GROUP BY u.base_url, a.verdict, a.status, a.google_status, a.reason
ORDER BY tries DESC;

SELECT COALESCE(client_name, '-') AS client, model, outcome, status, error_status, COUNT(*) AS requests
FROM requests
WHERE started_at >= now() - interval '1 hour' AND outcome <> 'success'
GROUP BY 1, model, outcome, status, error_status
ORDER BY requests DESC;
