-- What cannot serve right now, and why: cooling, disabled or deleted keys and upstreams, then
-- every cooldown in force (model '*' = every model; applies_via 'project' = the key's project
-- ran out of quota). Times in UTC.
--   psql "postgres://USER@HOST/DB" -f etc/reports/postgres/health.sql
SELECT kind, name, tail, project, condition,
       to_char(cooling_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS cooling_until, why,
       to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS since
FROM health
WHERE condition <> 'usable'
ORDER BY kind = 'key', id;

SELECT fingerprint, tail, model, to_char(until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS until,
       reason, quota_id, applies_via
FROM key_cooldowns_in_force
ORDER BY key_cooldowns_in_force.until;
