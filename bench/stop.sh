# Sourced by bench/run.sh and bench/instructions.sh: stopping what a bench started.

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
