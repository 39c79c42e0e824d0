-- gemini-gateway schema, version 3: a cheaper request log.
--
-- Every request row and try row was inserted into five secondary indexes by client, model, key
-- and upstream. Since 0002 the reports and listings read those dimensions from the daily tables,
-- so these indexes only made every insert dearer (about 23 us and 12 KB written per request
-- instead of 8 us and 1.3 KB, bench/log_insert_cost.py). Kept: requests(started_at) and
-- attempts(started_at) for ranges and retention, requests(client_id, started_at) for the last
-- request of each client, and the unique request ids.
DROP INDEX requests_model_started;
DROP INDEX requests_key_started;
DROP INDEX requests_upstream_started;
DROP INDEX attempts_key_started;
DROP INDEX attempts_upstream_started;
