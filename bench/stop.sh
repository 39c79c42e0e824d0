# Sourced by bench/run.sh and bench/instructions.sh: a bench's time limit, and stopping what it
# started.

# start_watchdog SECONDS LABEL: SIGTERM to this script after SECONDS (sets WATCHDOG).
start_watchdog() {
    ( exec 9>&-; sleep "$1"; echo "[$2] time limit of ${1}s reached: stopping" >&2; kill -TERM $$ ) &
    WATCHDOG=$!
}

# stop_started PID...: SIGTERM to each, then up to 5 s for each to exit before SIGKILL.
stop_started() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# stop_watchdog PID: the time-limit subshell and its sleep (which holds the output open).
stop_watchdog() {
    [ -n "$1" ] || return 0
    kill $(pgrep -P "$1" 2>/dev/null) "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
