-- What cannot serve right now, and why: cooling, disabled or deleted keys and upstreams, then
-- every cooldown in force (model '*' = every model; applies_via 'project' = the key's project
-- ran out of quota).
--   sqlite3 gateway.db < etc/reports/health.sql
.headers on
.mode column --wrap 0
SELECT kind, name, tail, project, condition, substr(cooling_until, 1, 19) AS cooling_until, why,
       substr(since, 1, 19) AS since
FROM health
WHERE condition <> 'usable'
ORDER BY kind = 'key', id;

SELECT fingerprint, tail, model, substr(until, 1, 19) AS until, reason, quota_id, applies_via
FROM key_cooldowns_in_force
ORDER BY until;
