#!/usr/bin/env bash
# Several gateways on one PostgreSQL store against one gateway on SQLite (issue 25): the same
# fake upstream (nginx, as in bench/run.sh), default settings (a log line per request), loopback.
#   sqlite-1  one gateway, --db (SQLite): wrk -c64
#   pg-1      one gateway, --store postgres://…: wrk -c64
#   pg-2      two gateways on the same PostgreSQL database: two wrk -c32 at once, one per
#             instance (a load balancer's split); throughput is the sum, p99 the worse of the two
# Alternating for BENCH_ROUNDS rounds (3) of BENCH_DURATION seconds (10); medians and ratios to
# sqlite-1 in the same run. After the loads every store must hold a row for each request wrk saw
# answered (and at most one for each it sent). On a 2-core machine two instances share the same
# cores: this measures what the shared store costs, not what a second machine adds.
#
#   BENCH_SKIP_BUILD=1 bench/shared_store.sh
#
# Needs nginx, wrk and PostgreSQL's server (Debian packages; installed when run as root). Starts
# its own throwaway PostgreSQL cluster (scripts/pg-test-cluster) and stops everything on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10}
KEYS=${BENCH_KEYS:-100}
PORT_BASE=${BENCH_PORT_BASE:-18800}
UPSTREAM_PORT=$((PORT_BASE + 1)) SSE_PORT=$((PORT_BASE + 2)) SQLITE_PORT=$((PORT_BASE + 3))
PG1_PORT=$((PORT_BASE + 4)) PGA_PORT=$((PORT_BASE + 5)) PGB_PORT=$((PORT_BASE + 6)) PG_PORT=$((PORT_BASE + 7))
PATH_GENERATE=/v1beta/models/gemini-2.5-flash:generateContent
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "missing: ${need[*]} (apt-get install ${need[*]})" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then swift build -c release --product gemini-gateway; fi
GATEWAY=${BENCH_GATEWAY:-$(swift build -c release --show-bin-path)/gemini-gateway}

OUT=bench/out/shared-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/raw" "$OUT/tmp" "$OUT/sqlite"
ABS_OUT=$(cd "$OUT" && pwd)
log() { printf '[shared %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

PIDS=()
PG_DIR=$(mktemp -d /tmp/gateway-bench-pg.XXXXXX)
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    scripts/pg-test-cluster stop "$PG_DIR" "$PG_PORT" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap cleanup EXIT
start() { local name=$1; shift; "$@" > "$OUT/$name.log" 2>&1 & PIDS+=($!); }

log "fake upstream (nginx :$UPSTREAM_PORT), PostgreSQL (:$PG_PORT)"
"$PY" bench/tools.py render bench/nginx/upstream.conf.in "$OUT/upstream.conf" \
    OUT="$ABS_OUT" SSE_PORT="$SSE_PORT" UPSTREAM_PORT="$UPSTREAM_PORT" LISTEN_V6="" --body bench/fixtures/generateContent.json
start upstream "$NGINX" -p "$ABS_OUT" -c "$ABS_OUT/upstream.conf" -e "$ABS_OUT/upstream-error.log"
"$PY" bench/tools.py wait-port "$UPSTREAM_PORT"
scripts/pg-test-cluster start "$PG_DIR" "$PG_PORT"
PSQL_SERVER=postgres://gateway@127.0.0.1:$PG_PORT/postgres
psql "$PSQL_SERVER" -XAtqc "CREATE DATABASE bench1" -c "CREATE DATABASE bench2"
STORE1=postgres://gateway@127.0.0.1:$PG_PORT/bench1
STORE2=postgres://gateway@127.0.0.1:$PG_PORT/bench2

"$PY" bench/tools.py keys "$KEYS" "$OUT/api_keys.txt"
printf 'http://127.0.0.1:%s\nhttp://localhost:%s\n' "$UPSTREAM_PORT" "$UPSTREAM_PORT" > "$OUT/proxy_urls.txt"
for store in "--db $OUT/sqlite/gateway.db" "--store $STORE1" "--store $STORE2"; do
    # shellcheck disable=SC2086
    "$GATEWAY" import $store --keys "$OUT/api_keys.txt" --upstreams "$OUT/proxy_urls.txt" > /dev/null
done
"$GATEWAY" clients add bench --json --db "$OUT/sqlite/gateway.db" > "$OUT/client.json"
TOKEN=$("$PY" bench/tools.py token "$OUT/client.json")
# The same token everywhere: `store copy` of the clients would do it too; here its hash goes over.
HASH=$(sqlite3 "$OUT/sqlite/gateway.db" "SELECT token_hash || '|' || token_tail FROM clients WHERE name = 'bench'")
for db in bench1 bench2; do
    psql "postgres://gateway@127.0.0.1:$PG_PORT/$db" -XAtqc \
        "INSERT INTO clients (name, token_hash, token_tail, created_at) VALUES ('bench', '${HASH%|*}', '${HASH#*|}', now())"
done
export BENCH_TOKEN=$TOKEN

start sqlite "$GATEWAY" serve --db "$OUT/sqlite/gateway.db" --host 127.0.0.1 --port "$SQLITE_PORT"
start pg1 "$GATEWAY" serve --store "$STORE1" --host 127.0.0.1 --port "$PG1_PORT"
start pga "$GATEWAY" serve --store "$STORE2" --host 127.0.0.1 --port "$PGA_PORT"
start pgb "$GATEWAY" serve --store "$STORE2" --host 127.0.0.1 --port "$PGB_PORT"
for port in "$SQLITE_PORT" "$PG1_PORT" "$PGA_PORT" "$PGB_PORT"; do
    "$PY" bench/tools.py wait-port "$port"
    "$PY" bench/tools.py probe "$port" "$PATH_GENERATE" "$TOKEN" || { log "probe failed on :$port"; exit 1; }
done

wrk_to() {  # wrk_to PORT CONNECTIONS FILE
    wrk -t1 -c"$2" -d"${DURATION}s" --timeout 10s --latency -s bench/generate.lua "http://127.0.0.1:$1$PATH_GENERATE" > "$3" 2>&1
}
for round in $(seq 1 "$ROUNDS"); do
    log "round $round/$ROUNDS"
    wrk_to "$SQLITE_PORT" 64 "$OUT/raw/r$round-sqlite-1.txt"
    wrk_to "$PG1_PORT" 64 "$OUT/raw/r$round-pg-1.txt"
    wrk_to "$PGA_PORT" 32 "$OUT/raw/r$round-pg-2a.txt" & first=$!
    wrk_to "$PGB_PORT" 32 "$OUT/raw/r$round-pg-2b.txt"
    wait "$first"
done

log "waiting for the log writers (until the counts stop moving, at most 60 s), then counting rows"
count_rows() {
    rows_sqlite=$(sqlite3 "$OUT/sqlite/gateway.db" "SELECT COUNT(*) FROM requests")
    rows_pg1=$(psql "$STORE1" -XAtqc "SELECT COUNT(*) FROM requests")
    rows_pg2=$(psql "$STORE2" -XAtqc "SELECT COUNT(*) FROM requests")
    echo "$rows_sqlite $rows_pg1 $rows_pg2"
}
previous=$(count_rows) waited=0
while sleep 2; do
    waited=$((waited + 2))
    current=$(count_rows)
    [ "$current" != "$previous" ] && [ $waited -lt 60 ] || break
    previous=$current
done
log "the writers caught up within ${waited} s after the last load"
read -r rows_sqlite rows_pg1 rows_pg2 <<<"$current"
"$PY" - "$OUT/raw" "$ROUNDS" "$rows_sqlite" "$rows_pg1" "$rows_pg2" <<'EOF' | tee "$OUT/summary.md"
import json, re, statistics, sys
raw, rounds = sys.argv[1], int(sys.argv[2])
rows = {"sqlite-1": int(sys.argv[3]), "pg-1": int(sys.argv[4]), "pg-2": int(sys.argv[5])}
def wrk(path):
    return json.loads(re.search(r"^WRKJSON (\{.*\})$", open(path).read(), re.M).group(1))
stats = {name: [] for name in rows}
answered = {name: 1 for name in rows}  # the probe before the loads
sent = {name: 1 for name in rows}
for r in range(1, rounds + 1):
    for name, files in (("sqlite-1", ["sqlite-1"]), ("pg-1", ["pg-1"]), ("pg-2", ["pg-2a", "pg-2b"])):
        runs = [wrk(f"{raw}/r{r}-{f}.txt") for f in files]
        rps = sum(run["requests"] / (run["duration_us"] / 1e6) for run in runs)
        p99 = max(run["p99_us"] for run in runs) / 1000
        errors = sum(run["status_errors"] + run["timeouts"] + run["read_errors"] + run["connect_errors"] for run in runs)
        stats[name].append((rps, p99, errors))
        answered[name] += sum(run["requests"] for run in runs)
        sent[name] += sum(run["sent"] for run in runs)
base = statistics.median(s[0] for s in stats["sqlite-1"])
base_p99 = statistics.median(s[1] for s in stats["sqlite-1"])
print("| setup | req/s (median) | vs sqlite-1 | p99 ms (median) | vs sqlite-1 | errors | rows / answered / sent |")
print("|---|---|---|---|---|---|---|")
for name in rows:
    rps = statistics.median(s[0] for s in stats[name])
    p99 = statistics.median(s[1] for s in stats[name])
    errors = sum(s[2] for s in stats[name])
    per_round = " / ".join(f"{s[0]:.0f}" for s in stats[name])
    print(f"| {name} | {rps:.0f} ({per_round}) | {rps / base:.2f}x | {p99:.1f} | {p99 / base_p99:.2f}x | {errors} | {rows[name]} / {answered[name]} / {sent[name]} |")
lost = [name for name in rows if not answered[name] <= rows[name] <= sent[name]]
print()
print("rows: every answered request has its row" if not lost else f"rows MISSING or extra in: {', '.join(lost)}")
sys.exit(1 if lost else 0)
EOF
