#!/usr/bin/env bash
# The gateway against its ceiling: gemini-gateway (release, default settings) vs nginx as a plain
# reverse proxy vs the fake upstream alone, on loopback, alternating targets for several rounds;
# in the non-streaming loads also the plainest SwiftNIO proxy (bench/nio-proxy-floor), the floor
# under anything built on SwiftNIO, and a second gateway at --log-level warning (no per-request
# line), so that what the default's per-request log line costs is measured in the same run.
# Issue 5; bench/RESULTS.md has what it measures, how to read it, and the last full run.
#
#   bench/run.sh                  full run (3 rounds, ~11 minutes after the build)
#   BENCH_QUICK=1 bench/run.sh    quick run for development (1 round, short loads, no profile)
#
# Settings (environment): BENCH_ROUNDS, BENCH_DURATION (s per load run), BENCH_WARMUP (s),
# BENCH_STREAMS ("1 50 200 1000"), BENCH_CONNECTIONS (64), BENCH_LOW_CONNECTIONS (8),
# BENCH_WRK_THREADS (2), BENCH_KEYS (100), BENCH_PROFILE (1: perf record the gateway under load),
# BENCH_PROFILE_SECONDS, BENCH_SINGLE_STREAM_REPEAT (10 one-stream runs per sample),
# BENCH_SCHED_N (timed scheduler operations per scenario), BENCH_PORT_BASE (18400: ports
# BASE+1..BASE+6 on 127.0.0.1), BENCH_FLOOR (1: measure the SwiftNIO floor too; 0: not),
# BENCH_MAX_SECONDS (hard time limit, 1200), BENCH_SKIP_BUILD=1,
# BENCH_SETTLE (12: idle seconds before the memory sample after each round), BENCH_DRAIN (80 in
# a full run, 0 in a quick one: idle seconds, from the round's end, before a second sample, once
# the upstream pools have closed the burst's idle connections and the gateway has trimmed again),
# BENCH_WRITE_RESULTS (1 in a full run: update bench/RESULTS.md), BENCH_PYTHON (the Python for
# the SSE server and stream client; default Debian's python3), BENCH_GATEWAY (another gateway binary
# to measure, e.g. one built with other flags), BENCH_CLIENT_LIMITS (options for the bench client's
# `clients add`, e.g. "--rpm 100000000 --models gemini-*": limits checked but never reached). The gateway's own GEMINI_GATEWAY_*
# variables pass through, e.g. GEMINI_GATEWAY_MAX_IN_FLIGHT=0.
#
# Installs what it needs with apt-get when run as root (nginx, wrk, python3, python3-uvloop,
# linux-perf, libsqlite3-dev, libjemalloc-dev, procps). Contacts nothing but 127.0.0.1/localhost. Everything it
# starts is stopped on exit. One run at a time (bench/out/run.lock). Raw results go to
# bench/out/run-*/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---------------------------------------------------------------------------------- settings
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    d_rounds=1 d_duration=3 d_warmup=1 d_streams="1 50 200" d_profile=0 d_sched=50000 d_write=0 d_drain=0
else
    d_rounds=3 d_duration=10 d_warmup=3 d_streams="1 50 200 1000" d_profile=1 d_sched=200000 d_write=1 d_drain=80
fi
ROUNDS=${BENCH_ROUNDS:-$d_rounds}
DURATION=${BENCH_DURATION:-$d_duration}
WARMUP=${BENCH_WARMUP:-$d_warmup}
STREAMS=${BENCH_STREAMS:-$d_streams}
PROFILE=${BENCH_PROFILE:-$d_profile}
PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-$DURATION}
HIGH=${BENCH_CONNECTIONS:-64}
LOW=${BENCH_LOW_CONNECTIONS:-8}
THREADS=${BENCH_WRK_THREADS:-2}
KEYS=${BENCH_KEYS:-100}
SCHED_N=${BENCH_SCHED_N:-$d_sched}
PORT_BASE=${BENCH_PORT_BASE:-18400}
MAX_SECONDS=${BENCH_MAX_SECONDS:-1200}
SETTLE=${BENCH_SETTLE:-12}
DRAIN=${BENCH_DRAIN:-$d_drain}
WRITE_RESULTS=${BENCH_WRITE_RESULTS:-$d_write}
EVENTS=10
INTERVAL=0.05
SINGLE_REPEAT=${BENCH_SINGLE_STREAM_REPEAT:-10}

UPSTREAM_PORT=$((PORT_BASE + 1))  # nginx: the fake upstream (generateContent; SSE passed on)
SSE_PORT=$((PORT_BASE + 2))       # Python: the SSE streams behind it
PROXY_PORT=$((PORT_BASE + 3))     # nginx: the reference reverse proxy
GATEWAY_PORT=$((PORT_BASE + 4))   # gemini-gateway
FLOOR_PORT=$((PORT_BASE + 5))     # nio-proxy-floor: the plainest SwiftNIO reverse proxy
QUIET_PORT=$((PORT_BASE + 6))     # gemini-gateway at --log-level warning (non-streaming loads only)
FLOOR=${BENCH_FLOOR:-1}
MODEL=gemini-2.5-flash
GENERATE_PATH="/v1beta/models/$MODEL:generateContent"
STREAM_PATH="/v1beta/models/$MODEL:streamGenerateContent?alt=sse"

# One run at a time on a machine: a second one waits (bounded) for the first to finish.
mkdir -p bench/out
exec 9> bench/out/run.lock
if ! flock -n 9; then
    printf '[bench] another bench/run.sh is running; waiting for it (at most 15 minutes)\n' >&2
    flock -w 900 9 || { printf '[bench] error: still running after 15 minutes\n' >&2; exit 1; }
fi

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=bench/out/run-$STAMP
RAW=$OUT/raw
mkdir -p "$RAW" "$OUT/tmp" "$OUT/gateway"
ln -sfn "run-$STAMP" bench/out/latest
ABS_OUT=$(cd "$OUT" && pwd)
COMMANDS=$OUT/commands.txt
: > "$COMMANDS"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------- cleanup
. bench/stop.sh
STARTED_PIDS=()
WATCHDOG=""
POLICY_CREATED=0
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$POLICY_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    stop_started "${STARTED_PIDS[@]}"
    stop_watchdog "$WATCHDOG"
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# A hard limit on the whole run: every load is bounded, this catches anything that is not.
start_watchdog "$MAX_SECONDS" bench

# ---------------------------------------------------------------------------------- packages
PY=${BENCH_PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; else PY=python3; fi
fi
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v pgrep >/dev/null 2>&1 || need+=(procps)
command -v "$PY" >/dev/null 2>&1 || need+=(python3)
"$PY" -c 'import uvloop' >/dev/null 2>&1 || need+=(python3-uvloop)
if [ "$PROFILE" = 1 ]; then command -v perf >/dev/null 2>&1 || need+=(linux-perf); fi
dpkg -s libsqlite3-dev >/dev/null 2>&1 || need+=(libsqlite3-dev)
dpkg -s libjemalloc-dev >/dev/null 2>&1 || need+=(libjemalloc-dev)
if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing: ${need[*]} (run as root, or: apt-get install ${need[*]})"
    log "installing with apt-get: ${need[*]}"
    # Keep the nginx package from starting a system nginx on port 80.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && POLICY_CREATED=1
    fi
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >"$OUT/apt.log" 2>&1 \
        || die "apt-get install failed: see $OUT/apt.log"
    if [ "$POLICY_CREATED" = 1 ]; then rm -f /usr/sbin/policy-rc.d; POLICY_CREATED=0; fi
    if [ ! -x /usr/bin/python3 ] || [ -n "${BENCH_PYTHON:-}" ]; then :; else PY=/usr/bin/python3; fi
fi
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
command -v swift >/dev/null 2>&1 || die "swift is not on PATH"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
[ "$limit" = unlimited ] || [ "$limit" -ge 4096 ] || die "open-file limit $limit is too low for 1,000 streams (ulimit -n)"

"$PY" bench/tools.py ports "$UPSTREAM_PORT" "$SSE_PORT" "$PROXY_PORT" "$GATEWAY_PORT" "$QUIET_PORT" $([ "$FLOOR" != 1 ] || echo "$FLOOR_PORT")

# ---------------------------------------------------------------------------------- machine
{
    echo "stamp=$STAMP"
    echo "quick=${BENCH_QUICK:-0} rounds=$ROUNDS drain=$DRAIN duration=$DURATION warmup=$WARMUP streams=\"$STREAMS\" high=$HIGH low=$LOW threads=$THREADS keys=$KEYS profile=$PROFILE sched_n=$SCHED_N floor=$FLOOR"
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "mem=$(grep MemTotal /proc/meminfo | awk '{printf "%.1f GiB", $2/1048576}')"
    echo "kernel=$(uname -sr)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "swift=$(swift --version 2>&1 | head -1)"
    echo "nginx=$("$NGINX" -v 2>&1)"
    echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
    echo "python=$("$PY" -c 'import sys; print(sys.version.split()[0])')"
    echo "uvloop=$("$PY" -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo none)"
    echo "sqlite=$(dpkg-query -W -f '${Version}' libsqlite3-0 2>/dev/null || echo unknown)"
    echo "perf=$(perf --version 2>/dev/null || echo none)"
    changed=$(git status --porcelain -- Sources migrations 2>/dev/null | wc -l)
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([ "$changed" = 0 ] || echo " + $changed uncommitted file(s) under Sources/ and migrations/")"
    echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"
log "results in $OUT"

# ---------------------------------------------------------------------------------- build
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building release: gemini-gateway, scheduler-bench, nio-proxy-floor"
    build() {  # a source edited by someone else during the build fails it: try again, twice at most
        local attempt
        for attempt in 1 2 3; do
            swift build -c release --product "$1" >> "$OUT/build.log" 2>&1 && return 0
            grep -q "was modified during the build" "$OUT/build.log" || return 1
            log "a source file changed during the build; building again"
            sleep 5
        done
        return 1
    }
    echo "swift build -c release --product gemini-gateway" >> "$COMMANDS"
    build gemini-gateway || die "build failed: see $OUT/build.log"
    echo "swift build -c release --product scheduler-bench" >> "$COMMANDS"
    build scheduler-bench || die "build failed: see $OUT/build.log"
    if [ "$FLOOR" = 1 ]; then
        echo "swift build -c release --product nio-proxy-floor" >> "$COMMANDS"
        build nio-proxy-floor || die "build failed: see $OUT/build.log"
    fi
fi
BIN=$(swift build -c release --show-bin-path)
GATEWAY=${BENCH_GATEWAY:-$BIN/gemini-gateway}
[ -x "$GATEWAY" ] || die "$GATEWAY not built"
[ "$FLOOR" != 1 ] || [ -x "$BIN/nio-proxy-floor" ] \
    || die "$BIN/nio-proxy-floor not built (swift build -c release --product nio-proxy-floor, or BENCH_FLOOR=0)"

# ---------------------------------------------------------------------------------- processes
start() {  # start NAME COMMAND...: run in the background, remember the pid
    local name=$1; shift
    "$@" > "$OUT/$name.log" 2>&1 9>&- &
    STARTED_PIDS+=($!)
    eval "${name}_PID=$!"
}
children() { pgrep -d, -P "$1" || true; }

LISTEN_V6=""
if [ -e /proc/net/if_inet6 ] && grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
    LISTEN_V6="listen [::1]:$UPSTREAM_PORT backlog=4096;"  # in case localhost resolves to ::1
fi
"$PY" bench/tools.py render bench/nginx/upstream.conf.in "$OUT/upstream.conf" \
    OUT="$ABS_OUT" SSE_PORT="$SSE_PORT" UPSTREAM_PORT="$UPSTREAM_PORT" LISTEN_V6="$LISTEN_V6" \
    --body bench/fixtures/generateContent.json
"$PY" bench/tools.py render bench/nginx/proxy.conf.in "$OUT/proxy.conf" \
    OUT="$ABS_OUT" UPSTREAM_PORT="$UPSTREAM_PORT" PROXY_PORT="$PROXY_PORT" PROXY_KEY="bench-fake-key-for-the-nginx-reference"

log "starting the fake upstream (nginx :$UPSTREAM_PORT, SSE :$SSE_PORT) and the reference (nginx :$PROXY_PORT)"
start sse "$PY" bench/sse_upstream.py --port "$SSE_PORT" --events "$EVENTS" --interval "$INTERVAL"
start upstream "$NGINX" -p "$ABS_OUT" -c "$ABS_OUT/upstream.conf" -e "$ABS_OUT/upstream-error.log"
start proxy "$NGINX" -p "$ABS_OUT" -c "$ABS_OUT/proxy.conf" -e "$ABS_OUT/proxy-error.log"
"$PY" bench/tools.py wait-port "$SSE_PORT"
"$PY" bench/tools.py wait-port "$UPSTREAM_PORT"
"$PY" bench/tools.py wait-port "$PROXY_PORT"
if [ "$FLOOR" = 1 ]; then
    log "starting the SwiftNIO floor (nio-proxy-floor :$FLOOR_PORT)"
    echo "$BIN/nio-proxy-floor $FLOOR_PORT $UPSTREAM_PORT bench-fake-key-for-the-floor" | sed "s|$PWD/||" >> "$COMMANDS"
    start floor "$BIN/nio-proxy-floor" "$FLOOR_PORT" "$UPSTREAM_PORT" bench-fake-key-for-the-floor
    "$PY" bench/tools.py wait-port "$FLOOR_PORT"
fi

log "preparing the gateway: fresh database, $KEYS fake keys, 3 upstreams, one client token"
DB=$OUT/gateway/gateway.db
"$PY" bench/tools.py keys "$KEYS" "$OUT/gateway/api_keys.txt"
printf 'http://127.0.0.1:%s\nhttp://localhost:%s\nhttp://127.0.0.1:%s/p3\n' \
    "$UPSTREAM_PORT" "$UPSTREAM_PORT" "$UPSTREAM_PORT" > "$OUT/gateway/proxy_urls.txt"
cat >> "$COMMANDS" <<EOF
gemini-gateway import --db DB --keys api_keys.txt --upstreams proxy_urls.txt   # $KEYS keys; upstreams: http://127.0.0.1:$UPSTREAM_PORT, http://localhost:$UPSTREAM_PORT, http://127.0.0.1:$UPSTREAM_PORT/p3
gemini-gateway clients add bench --json --db DB ${BENCH_CLIENT_LIMITS:-}
cp DB DB-warning   # the second gateway's own copy
gemini-gateway serve --db DB --host 127.0.0.1 --port $GATEWAY_PORT                                            # the gateway as it ships (log level info: a line per request, to a file)
gemini-gateway serve --db DB-warning --host 127.0.0.1 --port $QUIET_PORT --log-level warning                  # gateway-warning
EOF
"$GATEWAY" import --db "$DB" --keys "$OUT/gateway/api_keys.txt" --upstreams "$OUT/gateway/proxy_urls.txt" > "$OUT/gateway/import.log" 2>&1 \
    || die "import failed: see $OUT/gateway/import.log"
read -ra CLIENT_LIMITS <<< "${BENCH_CLIENT_LIMITS:-}"
"$GATEWAY" clients add bench --json --db "$DB" "${CLIENT_LIMITS[@]}" > "$OUT/gateway/client.json" || die "clients add failed"
TOKEN=$("$PY" bench/tools.py token "$OUT/gateway/client.json")
export BENCH_TOKEN=$TOKEN
cp "$DB" "$DB-warning"
start gateway "$GATEWAY" serve --db "$DB" --host 127.0.0.1 --port "$GATEWAY_PORT"
start quiet "$GATEWAY" serve --db "$DB-warning" --host 127.0.0.1 --port "$QUIET_PORT" --log-level warning
"$PY" bench/tools.py wait-port "$GATEWAY_PORT"
"$PY" bench/tools.py wait-port "$QUIET_PORT"
sleep 1
"$PY" bench/tools.py proc "$gateway_PID" > "$RAW/mem-idle.json"
# Which upstream transport the measured build uses (BENCH_GATEWAY may be an older build): one
# with --upstream-transport offered two; before that AsyncHTTPClient was the only one, and since
# issue 22 SwiftNIO's is (the binary no longer holds AsyncHTTPClient).
if "$GATEWAY" serve --help 2>&1 | grep -q -- '--upstream-transport'; then
    default_transport=$("$GATEWAY" serve --help 2>&1 | grep -A3 -- '--upstream-transport' | tr '\n' ' ' | grep -o 'default: [^)]*' | head -1 | cut -d' ' -f2 || true)
    if [ -n "${GEMINI_GATEWAY_UPSTREAM_TRANSPORT:-}" ]; then
        echo "transport=$GEMINI_GATEWAY_UPSTREAM_TRANSPORT (GEMINI_GATEWAY_UPSTREAM_TRANSPORT)" >> "$OUT/machine.txt"
    else
        echo "transport=${default_transport:-?} (the default of this build; GEMINI_GATEWAY_UPSTREAM_TRANSPORT chooses)" >> "$OUT/machine.txt"
    fi
elif grep -qa 'AsyncHTTPClient' "$GATEWAY"; then
    echo "transport=AsyncHTTPClient (the only transport of this build)" >> "$OUT/machine.txt"
else
    echo "transport=nio (the only transport of this build)" >> "$OUT/machine.txt"
fi

UPSTREAM_WORKERS=$(children "$upstream_PID")
PROXY_WORKERS=$(children "$proxy_PID")
[ -n "$UPSTREAM_WORKERS" ] && [ -n "$PROXY_WORKERS" ] || die "no nginx worker processes found"
target_port() { case $1 in direct) echo "$UPSTREAM_PORT";; nginx) echo "$PROXY_PORT";; gateway) echo "$GATEWAY_PORT";; floor) echo "$FLOOR_PORT";; gateway-warning) echo "$QUIET_PORT";; esac; }
target_pids() { case $1 in direct) echo "$UPSTREAM_WORKERS";; nginx) echo "$PROXY_WORKERS";; gateway) echo "$gateway_PID";; floor) echo "$floor_PID";; gateway-warning) echo "$quiet_PID";; esac; }

# Every target must answer both kinds of request correctly before anything is measured.
for target in direct nginx gateway; do
    port=$(target_port "$target")
    "$PY" bench/tools.py probe "$port" "$GENERATE_PATH" "$TOKEN" || die "$target: generateContent probe failed"
    "$PY" bench/tools.py probe "$port" "$STREAM_PATH" "$TOKEN" --stream || die "$target: stream probe failed"
done
if [ "$FLOOR" = 1 ]; then
    "$PY" bench/tools.py probe "$FLOOR_PORT" "$GENERATE_PATH" "$TOKEN" || die "floor: generateContent probe failed"
fi
"$PY" bench/tools.py probe "$QUIET_PORT" "$GENERATE_PATH" "$TOKEN" || die "gateway-warning: generateContent probe failed"

echo '{"gateway_requests": 2}' > "$RAW/probes.json"

# ---------------------------------------------------------------------------------- measuring
log_once() { [ "$1" != r1 ] || echo "$2" >> "$COMMANDS"; }

wrk_run() {  # wrk_run PHASE TARGET CONNECTIONS SECONDS
    local phase=$1 target=$2 connections=$3 seconds=$4
    local port pids label
    port=$(target_port "$target"); pids=$(target_pids "$target")
    label=$phase-wrk$connections-$target
    log_once "$phase" "BENCH_TOKEN=TOKEN wrk -t$THREADS -c$connections -d${seconds}s --timeout 10s --latency -s bench/generate.lua http://127.0.0.1:$port$GENERATE_PATH   # $target"
    "$PY" bench/tools.py proc ${pids//,/ } > "$RAW/$label.before.json"
    wrk -t"$THREADS" -c"$connections" -d"${seconds}s" --timeout 10s --latency -s bench/generate.lua \
        "http://127.0.0.1:$port$GENERATE_PATH" > "$RAW/$label.txt" 2>&1 || log "wrk failed: $label"
    "$PY" bench/tools.py proc ${pids//,/ } > "$RAW/$label.after.json"
}

stream_run() {  # stream_run PHASE TARGET STREAMS
    local phase=$1 target=$2 streams=$3
    local port pids label
    port=$(target_port "$target"); pids=$(target_pids "$target")
    label=$phase-stream$streams-$target
    # A single stream is one sample: repeat it (one after the other) for a stable median.
    local repeat=1
    [ "$streams" != 1 ] || repeat=$SINGLE_REPEAT
    log_once "$phase" "$PY bench/stream_client.py --port $port --streams $streams --repeat $repeat --token TOKEN --events $EVENTS --interval $INTERVAL --rss-pid PIDS   # $target"
    "$PY" bench/stream_client.py --port "$port" --path "$STREAM_PATH" --streams "$streams" --token "$TOKEN" \
        --events "$EVENTS" --interval "$INTERVAL" --timeout 30 --rss-pid "$pids" --label "$label" --repeat "$repeat" \
        > "$RAW/$label.json" 2> "$RAW/$label.err" || log "stream client failed: $label"
}

TARGETS=(direct nginx gateway)
log "warm-up: ${WARMUP}s at $HIGH connections and 50 streams per target"
for target in "${TARGETS[@]}"; do
    wrk_run warmup "$target" "$HIGH" "$WARMUP"
    stream_run warmup "$target" 50
done
[ "$FLOOR" != 1 ] || wrk_run warmup floor "$HIGH" "$WARMUP"
wrk_run warmup gateway-warning "$HIGH" "$WARMUP"
"$PY" bench/tools.py proc "$gateway_PID" > "$RAW/mem-warm.json"

for round in $(seq "$ROUNDS"); do
    # Alternate: each round starts with another target, and every test runs all targets back to back.
    order=()
    for i in 0 1 2; do order+=("${TARGETS[$(( (i + round - 1) % 3 ))]}"); done
    # The floor and the gateway at warning, in the non-streaming loads only, after the three
    # (alternating between themselves): the order of the targets the ratios compare stays what
    # it was before they came (their streams would measure what section 1 already does).
    load_order=("${order[@]}")
    if [ "$FLOOR" = 1 ] && [ $((round % 2)) = 0 ]; then load_order+=(floor gateway-warning)
    elif [ "$FLOOR" = 1 ]; then load_order+=(gateway-warning floor)
    else load_order+=(gateway-warning); fi
    log "round $round/$ROUNDS (order: ${load_order[*]})"
    for target in "${load_order[@]}"; do wrk_run "r$round" "$target" "$HIGH" "$DURATION"; done
    for target in "${load_order[@]}"; do wrk_run "r$round" "$target" "$LOW" "$DURATION"; done
    for streams in $STREAMS; do
        for target in "${order[@]}"; do stream_run "r$round" "$target" "$streams"; sleep 0.5; done
    done
    # Memory after the round, once the gateway has been idle long enough to give back what the
    # round's bursts left free (it trims after 5-10 s without requests): what stays is what it uses.
    sleep "$SETTLE"
    "$PY" bench/tools.py proc "$gateway_PID" > "$RAW/mem-r$round.json"
    # And once the pools have closed the idle connections the 1,000-stream burst left (60 s
    # unused) and the gateway has trimmed again (65 s into the quiet): what a leak would show.
    if [ "$DRAIN" -gt "$SETTLE" ]; then
        sleep $(( DRAIN - SETTLE ))
        "$PY" bench/tools.py proc "$gateway_PID" > "$RAW/mem-r$round-drained.json"
    fi
done

# ---------------------------------------------------------------------------------- profile
if [ "$PROFILE" = 1 ]; then
    log "profiling the gateway: perf record -e cpu-clock -g for ${PROFILE_SECONDS}s at $HIGH connections"
    echo "perf record -e cpu-clock -F 1999 -g -p GATEWAY_PID -o perf.data -- sleep $PROFILE_SECONDS   # during the wrk run below" >> "$COMMANDS"
    echo "BENCH_TOKEN=TOKEN wrk -t$THREADS -c$HIGH -d${PROFILE_SECONDS}s --timeout 10s --latency -s bench/generate.lua http://127.0.0.1:$GATEWAY_PORT$GENERATE_PATH" >> "$COMMANDS"
    perf record -e cpu-clock -F 1999 -g -p "$gateway_PID" -o "$OUT/perf.data" -- sleep "$((PROFILE_SECONDS + 1))" > "$OUT/perf-record.log" 2>&1 9>&- &
    PERF_PID=$!
    STARTED_PIDS+=("$PERF_PID")
    sleep 0.5
    wrk_run profile gateway "$HIGH" "$PROFILE_SECONDS"
    wait "$PERF_PID" || log "perf record failed: see $OUT/perf-record.log"
fi

# ---------------------------------------------------------------------------------- rows
log "stopping the gateway (SIGTERM: it drains and flushes the request log), then counting rows"
kill -TERM "$gateway_PID"
for _ in $(seq 600); do kill -0 "$gateway_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$gateway_PID" 2>/dev/null; then die "the gateway did not stop within 60 s of SIGTERM"; fi
set +e; wait "$gateway_PID"; echo $? > "$OUT/gateway/exit-status"; set -e
"$PY" bench/tools.py rows "$DB" > "$OUT/rows.json"

# ---------------------------------------------------------------------------------- scheduler
log "scheduler microbenchmark ($SCHED_N timed operations per scenario)"
echo "$BIN/scheduler-bench $SCHED_N" | sed "s|$PWD/||" >> "$COMMANDS"
"$BIN/scheduler-bench" "$SCHED_N" > "$OUT/scheduler.jsonl" 2> "$OUT/scheduler.txt" || log "scheduler-bench failed"

if [ "$PROFILE" = 1 ] && [ -s "$OUT/perf.data" ]; then
    log "reading the profile"
    "$PY" bench/profile.py "$OUT/perf.data" "$OUT" > "$OUT/profile.log" 2>&1 || log "profile report failed: see $OUT/profile.log"
fi

echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"

# ---------------------------------------------------------------------------------- report
REPORT_ARGS=("$OUT")
[ "$WRITE_RESULTS" = 1 ] && REPORT_ARGS+=(--write bench/RESULTS.md)
"$PY" bench/report.py "${REPORT_ARGS[@]}"
log "done: $OUT/summary.md$([ "$WRITE_RESULTS" = 1 ] && echo ' and bench/RESULTS.md')"
