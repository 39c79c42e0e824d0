#!/usr/bin/env bash
# Instructions the gateway executes per proxied request, counted by valgrind's callgrind: the
# same binary and requests give the same count however busy the machine is (within ~2%), so a
# small change to the request path can be judged where bench/run.sh's figures move by +-10%.
# Issue 5; bench/RESULTS.md, "Instructions per request", has the last figures.
#
#   bench/instructions.sh                     release build, 500 then 1,500 requests, top 25
#   BENCH_GATEWAY=path/to/gemini-gateway bench/instructions.sh      another binary
#
# It serves BENCH_INSTR_FEW (500) and then BENCH_INSTR_MANY (1,500) generateContent requests,
# one after the other on one keep-alive connection, through a gateway run under callgrind (100
# keys, 3 upstreams, one client, logging to SQLite) in front of the benchmark's fake upstream
# (nginx), and prints (count(many) - count(few)) / (many - few): start-up and shutdown cancel
# out. User-space instructions only (the kernel's share is not counted); requests one at a
# time, so the log writer's batches are small and its per-batch work weighs more than under load.
#
# Settings: BENCH_PORT_BASE (18500: ports BASE+1 and BASE+4 on 127.0.0.1), BENCH_SKIP_BUILD=1,
# BENCH_TOP (25 functions listed), BENCH_MAX_SECONDS (600 plus the pauses: hard time limit), BENCH_LOG_LEVEL
# (info, the default users run: a line per request; warning leaves the line out), BENCH_INSTR_PAUSE
# (0 s: a pause after each answer; 0.25 makes every request log transaction one row, whatever the
# machine's speed: without it, rows that arrive within the writer's 100 ms share a transaction, and
# how many do depends on how fast valgrind runs that day; a run then takes ~10 minutes, and what
# runs per second and not per request, such as the pool's reload check, weighs more in the count),
# BENCH_CLIENT_LIMITS (none: options for `clients add`, such as "--rpm 1000000 --models gemini-*", so
# the bench's client is checked against limits it never reaches), BENCH_INSTR_TARGET (gateway; floor: count bench/nio-proxy-floor instead, the plainest SwiftNIO
# proxy, for the gateway's distance to it function by function), BENCH_INSTR_LOAD (unset: requests
# one at a time, as above; a number of connections, such as 64: wrk loads the target under callgrind
# for BENCH_INSTR_FEW_SECONDS (10) and then BENCH_INSTR_MANY_SECONDS (25), and the count is
# divided by the difference in requests served (the gateway's request rows; the floor's answers as
# wrk counted them): the request path as bench/run.sh loads it, with 64 requests in flight and the
# log writer's transactions holding tens of rows). Installs nginx, valgrind, gcc and (for
# BENCH_INSTR_LOAD) wrk with apt-get when run as root. Output in bench/out/instructions-*/; one bench at a time
# (bench/out/run.lock).
set -euo pipefail
cd "$(dirname "$0")/.."

FEW=${BENCH_INSTR_FEW:-500}
read -ra CLIENT_LIMITS <<< "${BENCH_CLIENT_LIMITS:-}"
MANY=${BENCH_INSTR_MANY:-1500}
PORT_BASE=${BENCH_PORT_BASE:-18500}
UPSTREAM_PORT=$((PORT_BASE + 1))
GATEWAY_PORT=$((PORT_BASE + 4))
PY=python3

mkdir -p bench/out
exec 9> bench/out/run.lock
flock -w 900 9 || { echo "[instructions] another bench is still running after 15 minutes" >&2; exit 1; }
OUT=bench/out/instructions-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/tmp"
ABS_OUT=$(cd "$OUT" && pwd)
log() { printf '[instructions %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

PIDS=()
WATCHDOG=""
. bench/stop.sh
cleanup() {
    stop_started "${PIDS[@]}"
    stop_watchdog "$WATCHDOG"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# A hard limit on the whole run (BENCH_MAX_SECONDS, 600 s and the pauses): a gateway that hangs under valgrind
# must not hold the lock forever.
start_watchdog "${BENCH_MAX_SECONDS:-$(awk -v n=$((FEW + MANY)) -v p="${BENCH_INSTR_PAUSE:-0}" 'BEGIN { printf "%d", 600 + n * p }')}" instructions

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
LOAD=${BENCH_INSTR_LOAD:-}
if [ -n "$LOAD" ]; then
    command -v wrk >/dev/null 2>&1 || need+=(wrk)
    FEW=${BENCH_INSTR_FEW_SECONDS:-10}
    MANY=${BENCH_INSTR_MANY_SECONDS:-25}
fi
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
dpkg -s libjemalloc-dev >/dev/null 2>&1 || need+=(libjemalloc-dev)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing: ${need[*]} (run as root, or: apt-get install ${need[*]})"
    log "installing with apt-get: ${need[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" > "$OUT/apt.log" 2>&1 \
        || die "apt-get install failed: see $OUT/apt.log"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

TARGET=${BENCH_INSTR_TARGET:-gateway}
case $TARGET in
    gateway) PRODUCT=gemini-gateway ;;
    floor) PRODUCT=nio-proxy-floor ;;
    *) die "BENCH_INSTR_TARGET is gateway or floor, not $TARGET" ;;
esac
if [ -z "${BENCH_GATEWAY:-}" ]; then
    if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
        log "building $PRODUCT (release)"
        swift build -c release --product "$PRODUCT" > "$OUT/build.log" 2>&1 || die "build failed: see $OUT/build.log"
    fi
    BENCH_GATEWAY=$(swift build -c release --show-bin-path)/$PRODUCT
fi
[ -x "$BENCH_GATEWAY" ] || die "no gateway binary at $BENCH_GATEWAY"

# valgrind 3.19 cannot read DWARF 5 (a copy without debug info keeps the symbols), and crashes
# in libdispatch's sigsuspend, whose signal mask is read-only (a shim passes a copy).
GATEWAY=$OUT/gemini-gateway
cp "$BENCH_GATEWAY" "$GATEWAY" && strip --strip-debug "$GATEWAY"
cat > "$OUT/sigsuspend.c" <<'EOF'
#define _GNU_SOURCE
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>
int sigsuspend(const sigset_t *mask) { sigset_t copy = *mask; return (int)syscall(SYS_rt_sigsuspend, &copy, 8); }
EOF
gcc -O2 -shared -fPIC "$OUT/sigsuspend.c" -o "$OUT/sigsuspend.so"

"$PY" bench/tools.py ports "$UPSTREAM_PORT" "$GATEWAY_PORT"
"$PY" bench/tools.py render bench/nginx/upstream.conf.in "$OUT/upstream.conf" \
    OUT="$ABS_OUT" SSE_PORT="$((PORT_BASE + 2))" UPSTREAM_PORT="$UPSTREAM_PORT" LISTEN_V6="" \
    --body bench/fixtures/generateContent.json
"$NGINX" -p "$ABS_OUT" -c "$ABS_OUT/upstream.conf" -e "$ABS_OUT/upstream-error.log" 9>&- &
PIDS+=($!)
"$PY" bench/tools.py wait-port "$UPSTREAM_PORT"
"$PY" bench/tools.py keys 100 "$OUT/api_keys.txt"
printf 'http://127.0.0.1:%s\nhttp://localhost:%s\nhttp://127.0.0.1:%s/p3\n' \
    "$UPSTREAM_PORT" "$UPSTREAM_PORT" "$UPSTREAM_PORT" > "$OUT/proxy_urls.txt"

load() {  # load SECONDS TOKEN: wrk's BENCH_INSTR_LOAD connections on the target, its output in wrk-SECONDS.txt
    BENCH_TOKEN=$2 wrk -t2 -c"$LOAD" -d"$1s" --timeout 30s -s bench/generate.lua \
        "http://127.0.0.1:$GATEWAY_PORT/v1beta/models/gemini-2.5-flash:generateContent" > "$OUT/wrk-$1.txt"
}
count() {  # count N: the instructions of a gateway run that serves N requests
    local n=$1 db=$OUT/gateway-$1.db
    if [ "$TARGET" = floor ]; then
        count_floor "$n"
        return
    fi
    "$GATEWAY" import --db "$db" --keys "$OUT/api_keys.txt" --upstreams "$OUT/proxy_urls.txt" > "$OUT/import-$n.log" 2>&1 \
        || die "import failed: see $OUT/import-$n.log"
    "$GATEWAY" clients add bench --json --db "$db" "${CLIENT_LIMITS[@]}" > "$OUT/client-$n.json" || die "clients add failed"
    LD_PRELOAD=$OUT/sigsuspend.so valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-$n.out" \
        "$GATEWAY" serve --db "$db" --host 127.0.0.1 --port "$GATEWAY_PORT" --log-level "${BENCH_LOG_LEVEL:-info}" \
        > "$OUT/gateway-$n.log" 2>&1 9>&- &
    local pid=$!
    PIDS+=($pid)
    "$PY" bench/tools.py wait-port "$GATEWAY_PORT" 120
    local token
    token=$("$PY" bench/tools.py token "$OUT/client-$n.json")
    if [ -n "$LOAD" ]; then
        log "$LOAD connections for $n s under callgrind"
        load "$n" "$token"
    else
        log "$n requests under callgrind"
        "$PY" bench/tools.py sequential "$GATEWAY_PORT" "$token" "$n" "${BENCH_INSTR_PAUSE:-0}"
    fi
    kill -TERM "$pid"
    wait "$pid" || die "the gateway under callgrind failed: see $OUT/gateway-$n.log"
    local kept=() other
    for other in "${PIDS[@]}"; do [ "$other" = "$pid" ] || kept+=("$other"); done
    PIDS=("${kept[@]}")  # gone: not to be signalled again at exit
    local rows
    rows=$(sqlite3 "$db" 'SELECT COUNT(*) FROM requests' 2>/dev/null || "$PY" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM requests').fetchone()[0])" "$db")
    if [ -n "$LOAD" ]; then
        SERVED[$n]=$rows  # every request wrk sent was answered and has its row (SIGTERM drains)
    else
        [ "$rows" = "$n" ] || die "$rows request rows for $n requests"
    fi
}
declare -A SERVED
count_floor() {  # the same for the floor: no database, no token, no rows to check
    local n=$1
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-$n.out" \
        "$GATEWAY" "$GATEWAY_PORT" "$UPSTREAM_PORT" bench-fake-key-for-the-floor > "$OUT/floor-$n.log" 2>&1 9>&- &
    local pid=$!
    PIDS+=($pid)
    # Its log says when it listens (a probe connection that closes at once stalls the floor under
    # valgrind, so no wait-port here).
    local waited=0
    until grep -q "listening on" "$OUT/floor-$n.log"; do
        kill -0 "$pid" 2>/dev/null || die "the floor under callgrind stopped: see $OUT/floor-$n.log"
        [ $((waited += 1)) -le 1200 ] || die "the floor under callgrind did not listen within 120 s"
        sleep 0.1
    done
    if [ -n "$LOAD" ]; then
        log "$LOAD connections for $n s to the floor under callgrind"
        load "$n" unused
        SERVED[$n]=$(awk '/requests in/ { print $1 }' "$OUT/wrk-$n.txt")
    else
        log "$n requests to the floor under callgrind"
        "$PY" bench/tools.py sequential "$GATEWAY_PORT" unused "$n"
    fi
    kill -TERM "$pid"  # (not INT: a script's background jobs ignore it)
    wait "$pid" || true  # the floor has no graceful stop: killed, callgrind still writes its counts
    local kept=() other
    for other in "${PIDS[@]}"; do [ "$other" = "$pid" ] || kept+=("$other"); done
    PIDS=("${kept[@]}")
    [ -s "$OUT/callgrind-$n.out" ] || die "callgrind wrote nothing for the floor: see $OUT/floor-$n.log"
}
count "$FEW"
count "$MANY"
REQUESTS=$((MANY - FEW))
if [ -n "$LOAD" ]; then
    REQUESTS=$((SERVED[$MANY] - SERVED[$FEW]))
    [ "$REQUESTS" -gt 0 ] || die "the longer load served no more requests (${SERVED[$FEW]}, then ${SERVED[$MANY]})"
    log "requests served: ${SERVED[$FEW]}, then ${SERVED[$MANY]}"
fi
"$PY" bench/tools.py callgrind-diff "$OUT/callgrind-$FEW.out" "$OUT/callgrind-$MANY.out" "$REQUESTS" "${BENCH_TOP:-25}" \
    | tee "$OUT/summary.txt"
if [ "$TARGET" = gateway ]; then
    "$PY" bench/tools.py callgrind-threads "$OUT/callgrind-$FEW.out" "$OUT/callgrind-$MANY.out" "$REQUESTS" \
        | tee "$OUT/threads.txt"
fi
log "done: $OUT/summary.txt (callgrind_annotate $OUT/callgrind-$MANY.out for the whole profile)"
