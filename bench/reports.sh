#!/usr/bin/env bash
# Times every usage report and view on a big request log.
#
#   bench/reports.sh                 # 1,000,000 requests over 30 days, 200 keys
#   ROWS=200000 KEYS=10000 bench/reports.sh
#
# 1. Makes a scratch database at schema 0001 (the raw log only) and fills it with ROWS synthetic
#    requests (plus ~1.1 attempts each) over DAYS days with sqlite3 (bench/reports-data.sql).
# 2. Opens it with `gemini-gateway status`, which applies migration 0002: that folds every row into
#    the daily tables, as an upgrade of a big existing database would (timed).
# 3. Times each `gemini-gateway report` (the whole process, wall clock), each view and
#    etc/reports/*.sql file (sqlite3), and one retention batch.
# 4. With WRITER=1, also what folding costs the log writer (a Swift benchmark test; builds tests).
# Needs sqlite3 and a built binary (GATEWAY_BIN, default .build/debug/gemini-gateway; built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
DAYS=${DAYS:-30}
CLIENTS=${CLIENTS:-20}
MODELS=${MODELS:-6}
KEYS=${KEYS:-200}
UPSTREAMS=${UPSTREAMS:-4}
BIN=${GATEWAY_BIN:-.build/debug/gemini-gateway}
[ -x "$BIN" ] || swift build --product gemini-gateway
command -v sqlite3 >/dev/null || { echo "bench/reports.sh needs sqlite3 (apt-get install sqlite3)" >&2; exit 1; }

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
DB=$SCRATCH/gateway.db
export GEMINI_GATEWAY_DB=$DB

# Seconds since the epoch with milliseconds, and a timer around a command.
now() { date +%s.%N; }
timed() {  # timed LABEL COMMAND...: runs it, prints the wall time
    local label=$1; shift
    local start end
    start=$(now)
    "$@" >/dev/null
    end=$(now)
    printf '  %-58s %8.3f s\n' "$label" "$(awk "BEGIN { print $end - $start }")"
}

echo "generating $ROWS requests over $DAYS days ($CLIENTS clients, $MODELS models, $KEYS keys, $UPSTREAMS upstreams)"
sqlite3 "$DB" <<EOF >/dev/null
PRAGMA journal_mode = WAL;
.read migrations/0001_initial.sql
CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
INSERT INTO grdb_migrations VALUES ('0001_initial');
EOF
timed "sqlite3: insert the raw rows" sh -c "{ echo 'CREATE TEMP TABLE bench_params AS SELECT $ROWS AS rows, $DAYS AS days, $CLIENTS AS clients, $MODELS AS models, $KEYS AS keys, $UPSTREAMS AS upstreams;'; cat bench/reports-data.sql; } | sqlite3 '$DB'"
timed "migration 0002: fold every row into the daily tables" "$BIN" status
sqlite3 "$DB" "SELECT printf('  %d requests, %d attempts; daily_usage %d rows, daily_key_usage %d, daily_upstream_usage %d, daily_upstream_latency %d; file %.0f MB',
    (SELECT COUNT(*) FROM requests), (SELECT COUNT(*) FROM attempts), (SELECT COUNT(*) FROM daily_usage),
    (SELECT COUNT(*) FROM daily_key_usage), (SELECT COUNT(*) FROM daily_upstream_usage),
    (SELECT COUNT(*) FROM daily_upstream_latency), page_count * page_size / 1e6) FROM pragma_page_count, pragma_page_size"
sqlite3 "$DB" "PRAGMA optimize; ANALYZE;" >/dev/null

echo "gemini-gateway report (whole process: start, open, query, print)"
timed "status (baseline: process start and open)" "$BIN" status
for range in "" "--since 24h" "--since ${DAYS}d" "--since $(date -u -d "-$((DAYS - 1)) days" +%F)"; do
    timed "report clients $range" "$BIN" report clients $range
done
timed "report clients --totals --since ${DAYS}d --format json" "$BIN" report clients --totals --since "${DAYS}d" --format json
timed "report clients --client client-3 --since ${DAYS}d --format csv" "$BIN" report clients --client client-3 --since "${DAYS}d" --format csv
timed "report models" "$BIN" report models
timed "report models --totals --since ${DAYS}d" "$BIN" report models --totals --since "${DAYS}d"
timed "report models --model gemini-model-2 --since ${DAYS}d" "$BIN" report models --model gemini-model-2 --since "${DAYS}d"
timed "report keys" "$BIN" report keys
timed "report keys --since ${DAYS}d --format csv" "$BIN" report keys --since "${DAYS}d" --format csv
timed "report keys --since 24h" "$BIN" report keys --since 24h
timed "report upstreams" "$BIN" report upstreams
timed "report upstreams --since ${DAYS}d" "$BIN" report upstreams --since "${DAYS}d"
timed "report upstreams --since 1h --model gemini-model-1" "$BIN" report upstreams --since 1h --model gemini-model-1
timed "report health" "$BIN" report health
timed "report health --problems --format json" "$BIN" report health --problems --format json

echo "views and etc/reports (sqlite3, whole result read)"
for view in usage_by_client_day usage_by_model_day usage_by_key_day usage_by_upstream_day key_cooldowns_in_force key_health upstream_health health; do
    timed "SELECT * FROM $view" sqlite3 "$DB" "SELECT * FROM $view"
done
for file in etc/reports/*.sql; do
    timed "sqlite3 < $file" sh -c "sqlite3 '$DB' < '$file'"
done
timed "for comparison, without daily tables: GROUP BY day, client over requests" \
    sqlite3 "$DB" "SELECT substr(started_at, 1, 10) AS day, COALESCE(client_name, '-'), COUNT(*), SUM(outcome <> 'success'), SUM(total_tokens) FROM requests GROUP BY 1, 2"

echo "retention"
cutoff=$(date -u -d "-$((DAYS / 2)) days" '+%F 00:00:00.000')
timed "retention: one batch (1000 attempts + 1000 requests)" sqlite3 "$DB" "
    BEGIN;
    DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE started_at < '$cutoff' ORDER BY started_at LIMIT 1000);
    DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE started_at < '$cutoff' ORDER BY started_at LIMIT 1000);
    COMMIT;"

# What folding costs the log writer (the real AppDatabase.insert, prepared statements): an opt-in
# Swift benchmark, as it builds the tests.
if [ "${WRITER:-0}" = 1 ]; then
    echo "log writer: insert with and without folding into the daily tables"
    GATEWAY_BENCH=1 swift test --filter WriterCostBenchmark 2>&1 | grep -E '^ +batches|passed|failed' || true
fi
