-- gemini-gateway schema, version 6: the time a request waited for a key to come back.
--
-- With `serve --max-queue-wait`, a request that finds every key cooling for its model (per-minute
-- or bare 429s only) waits for the first to come back instead of getting 429 at once.
--   queue_wait_ms   milliseconds it waited in all (it may wait more than once, within the limit);
--                   NULL when it never waited. Its latency_ms includes them.
-- Waits that ran out end as before: outcome 'throttled', status 429 (with queue_wait_ms set).
--   SELECT count(*), avg(queue_wait_ms), max(queue_wait_ms) FROM requests
--   WHERE queue_wait_ms IS NOT NULL AND started_at >= date('now', '-1 day');
ALTER TABLE requests ADD COLUMN queue_wait_ms REAL;
