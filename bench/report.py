#!/usr/bin/env python3
"""Turns one bench/run.sh output folder into a Markdown report (standard library only).

    report.py bench/out/run-STAMP [--write bench/RESULTS.md]

Writes OUT/summary.md; with --write, also replaces the generated part of RESULTS.md (between the
`<!-- generated:start -->` and `<!-- generated:end -->` markers; the hand-written reading around
them is kept).
"""

import glob
import json
import os
import re
import statistics
import sys

START, END = "<!-- generated:start -->", "<!-- generated:end -->"
TARGETS = ("direct", "nginx", "gateway")
# The plainest SwiftNIO proxy (bench/nio-proxy-floor): measured in the non-streaming loads only.
FLOOR = "floor"
# The gateway at --log-level warning (no per-request line): non-streaming loads only. "gateway"
# is the gateway as it ships (default settings, log level info).
QUIET = "gateway-warning"


def load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=2, unit=""):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = ("%." + str(digits) + "f") % value
    else:
        text = str(value)
    return text + unit


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


class Run:
    def __init__(self, out):
        self.out = out
        self.raw = os.path.join(out, "raw")
        self.machine = {}
        for line in open(os.path.join(out, "machine.txt")):
            key, _, value = line.rstrip("\n").partition("=")
            self.machine[key] = value
        self.settings = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', self.machine.get("quick", "")))
        self.settings["quick"] = self.machine.get("quick", "").split()[0] if self.machine.get("quick") else "0"
        self.rounds = sorted({int(m) for m in (re.findall(r"/r(\d+)-", p) for p in glob.glob(self.raw + "/r*-*")) for m in m})
        self.high = int(self.settings.get("high", 64))
        self.low = int(self.settings.get("low", 8))
        self.streams = [int(s) for s in self.settings.get("streams", '"1 50 200"').strip('"').split()]

    def wrk(self, phase, target, connections):
        base = os.path.join(self.raw, "%s-wrk%d-%s" % (phase, connections, target))
        try:
            text = open(base + ".txt").read()
        except OSError:
            return None
        match = re.search(r"^WRKJSON (\{.*\})$", text, re.M)
        if not match:
            return None
        result = json.loads(match.group(1))
        seconds = result["duration_us"] / 1e6
        result["rps"] = result["requests"] / seconds if seconds else None
        result["errors"] = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
        before, after = load_json(base + ".before.json"), load_json(base + ".after.json")
        if before and after and result["requests"]:
            cpu_s = (after["cpu_ticks"] - before["cpu_ticks"]) / float(after["clk_tck"])
            result["cpu_us_per_request"] = cpu_s * 1e6 / result["requests"]
            result["cpu_cores"] = cpu_s / seconds
            if "wchar" in after:
                result["wbytes_per_request"] = (after["wchar"] - before["wchar"]) / float(result["requests"])
                result["wcalls_per_request"] = (after["syscw"] - before["syscw"]) / float(result["requests"])
                result["rcalls_per_request"] = (after["syscr"] - before["syscr"]) / float(result["requests"])
        return result

    def stream(self, phase, target, streams):
        return load_json(os.path.join(self.raw, "%s-stream%d-%s.json" % (phase, streams, target)))


def build(run):
    lines = []
    add = lines.append
    m = run.machine
    rounds = run.rounds
    phases = ["r%d" % r for r in rounds]
    quick = run.settings.get("quick") == "1"
    verdicts = []  # (target text, met?, detail)
    issue21 = []  # the same, for issue 21's targets (default settings)

    add("Run `%s`%s: %d round(s), targets alternating (each round starts with another target; every "
        "test runs the targets back to back). Figures are medians over rounds; each ratio is the "
        "median of the per-round ratios, gateway / nginx, measured minutes apart in the same run."
        % (m.get("stamp"), " (quick mode)" if quick else "", len(rounds)))
    add("")
    add("**The machine is shared** with other engineers building and testing while this ran "
        "(load average %s at the start, %s at the end), so absolute figures are noisy: only the "
        "ratios from the same run count." % (m.get("load_start", "?"), m.get("load_end", "?")))
    add("")

    # ---- machine
    add("### Machine and versions")
    add("")
    add("| | |")
    add("|---|---|")
    for key, label in (("nproc", "cores (nproc)"), ("cpu", "CPU"), ("mem", "memory"), ("kernel", "kernel"), ("os", "OS"),
                       ("swift", "Swift"), ("nginx", "nginx"), ("wrk", "wrk"), ("python", "Python (SSE server, stream client)"),
                       ("uvloop", "uvloop"), ("sqlite", "libsqlite3"), ("perf", "perf"), ("commit", "gateway source"), ("transport", "gateway upstream transport")):
        add("| %s | %s |" % (label, m.get(key, "?")))
    add("| settings | quick=%s |" % m.get("quick", ""))
    add("")

    # ---- 1. 64 connections
    def series(target, connections, key):
        return [ (run.wrk(p, target, connections) or {}).get(key) for p in phases ]

    def per_round_ratio(connections, key, target="gateway", reference="nginx"):
        return median([ratio(g, n) for g, n in zip(series(target, connections, key), series(reference, connections, key))])

    has_floor = any(run.wrk(p, FLOOR, run.high) for p in phases)
    load_targets = TARGETS + ((FLOOR,) if has_floor else ())
    floor_head = " SwiftNIO floor | ratio floor/nginx |" if has_floor else ""
    floor_rule = "---|---|" if has_floor else ""

    def floor_cells(connections, key, value, digits, unit):
        if not has_floor:
            return ""
        r = per_round_ratio(connections, key, FLOOR) if key != "errors" else None
        return " %s | %s |" % (fmt(value, digits, unit), fmt(r, 2, "x"))

    add("### 1. Non-streaming generateContent, %d connections, %s s per run" % (run.high, run.settings.get("duration", "?")))
    add("")
    add("| figure | gateway | nginx proxy | ratio gateway/nginx |%s direct (fake upstream alone) |" % floor_head)
    add("|---|---|---|---|%s---|" % floor_rule)
    rows = (("requests/s", "rps", 0, ""), ("p50 latency", "p50_us", 2, " ms"), ("p99 latency", "p99_us", 2, " ms"),
            ("errors (all runs)", "errors", 0, ""), ("CPU per request", "cpu_us_per_request", 1, " us"),
            ("CPU used (cores)", "cpu_cores", 2, ""), ("bytes written per request (sockets + files)", "wbytes_per_request", 0, " B"),
            ("write syscalls per request", "wcalls_per_request", 2, ""), ("read syscalls per request", "rcalls_per_request", 2, ""))
    for label, key, digits, unit in rows:
        scale = 1000.0 if key.endswith("_us") and key.startswith("p") else 1.0
        values = {}
        for t in load_targets:
            s = series(t, run.high, key)
            if key == "errors":
                values[t] = sum(v or 0 for v in s)
            else:
                v = median(s)
                values[t] = v / scale if v is not None else None
        r = per_round_ratio(run.high, key) if key != "errors" else None
        add("| %s | %s | %s | %s |%s %s |" % (label, fmt(values["gateway"], digits, unit), fmt(values["nginx"], digits, unit),
                                             fmt(r, 2, "x"), floor_cells(run.high, key, values.get(FLOOR), digits, unit),
                                             fmt(values["direct"], digits, unit)))
    add("")
    add("CPU per request is the process's own CPU time (utime+stime from /proc, all nginx workers summed) "
        "over the run divided by the requests answered; it excludes wrk and the fake upstream. Bytes written and "
        "syscalls come from /proc/PID/io (wchar, syscw, syscr): socket writes plus, for the gateway, SQLite's.")
    add("")
    if has_floor:
        add("The SwiftNIO floor is `bench/nio-proxy-floor`: SwiftNIO's HTTP/1 server pipeline and a pool of "
            "keep-alive upstream connections per event loop, each request passed upstream with its key set and "
            "its answer passed back part by part, and nothing else (no authentication, scheduler, logging, "
            "metrics or failover). It is not a target; it shows how much of the distance to nginx any "
            "proxy on SwiftNIO has on this machine before doing any of the gateway's work.")
        add("")
    if len(phases) > 1:
        add("Per round (requests/s; the gateway's CPU and bytes written per request; p99 latencies and their ratio):")
        add("")
        add("| round | direct | nginx | gateway | ratio | gateway CPU/request | gateway bytes written/request | gateway p99 / nginx p99 |%s" % (
            " floor | floor p99 / nginx p99 |" if has_floor else ""))
        add("|---|---|---|---|---|---|---|---|%s" % floor_rule)
        for p in phases:
            w = {t: run.wrk(p, t, run.high) or {} for t in load_targets}
            add("| %s | %s | %s | %s | %s | %s | %s | %s |%s" % (
                p, fmt(w["direct"].get("rps"), 0), fmt(w["nginx"].get("rps"), 0), fmt(w["gateway"].get("rps"), 0),
                fmt(ratio(w["gateway"].get("rps"), w["nginx"].get("rps")), 2, "x"),
                fmt(w["gateway"].get("cpu_us_per_request"), 1, " us"), fmt(w["gateway"].get("wbytes_per_request"), 0, " B"),
                p99_pair(w["gateway"].get("p99_us"), w["nginx"].get("p99_us")),
                " %s | %s |" % (fmt(w[FLOOR].get("rps"), 0), p99_pair(w[FLOOR].get("p99_us"), w["nginx"].get("p99_us"))) if has_floor else ""))
        add("")
    tput = per_round_ratio(run.high, "rps")
    p99r = per_round_ratio(run.high, "p99_us")
    verdicts.append(("Throughput at %d connections >= 0.4x nginx" % run.high, tput is not None and tput >= 0.4,
                     "%s (%s the target)" % (fmt(tput, 2, "x"), fmt(ratio(tput, 0.4), 2, "x"))))
    verdicts.append(("p99 at %d connections <= 2x nginx's" % run.high, p99r is not None and p99r <= 2,
                     "%s" % fmt(p99r, 2, "x")))
    floor_note = None
    if has_floor:
        floor_note = (
            "Beside the targets, the SwiftNIO floor (`bench/nio-proxy-floor`, section 1) in the same run: "
            "%s nginx's throughput at %d connections and %s its p99 (per round %s); the gateway served %s of "
            "the floor's requests per second, with %s its p99." % (
                fmt(per_round_ratio(run.high, "rps", FLOOR), 2, "x"), run.high, fmt(per_round_ratio(run.high, "p99_us", FLOOR), 2, "x"),
                " / ".join(fmt(ratio(f, n), 2, "x") for f, n in zip(series(FLOOR, run.high, "p99_us"), series("nginx", run.high, "p99_us"))),
                fmt(per_round_ratio(run.high, "rps", "gateway", FLOOR), 2, "x"), fmt(per_round_ratio(run.high, "p99_us", "gateway", FLOOR), 2, "x")))

    # ---- 1b. default settings against warning, and against the floor (issue 21)
    has_quiet = any(run.wrk(p, QUIET, run.high) for p in phases)
    if has_quiet:
        add("### 1b. The gateway as it ships (default settings: log level info) and at warning, %d connections" % run.high)
        add("")
        add("`gateway` is `serve` with no option but the database, host and port: a log line per request (to a file, "
            "as a service's standard error goes to the journal or a file); `gateway-warning` is a second gateway with "
            "its own copy of the database, at `--log-level warning` (no per-request line; the request rows are written "
            "as by the default). Both in every round, back to back with nginx and the floor.")
        add("")
        add("| round | nginx | floor | gateway (default) | gateway (warning) | default/nginx | default/floor | default/warning | "
            "warning/nginx | p99 default / floor | p99 warning / floor |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for p in phases:
            w = {t: run.wrk(p, t, run.high) or {} for t in ("nginx", FLOOR, "gateway", QUIET)}
            rps = {t: w[t].get("rps") for t in w}
            add("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                p, fmt(rps["nginx"], 0), fmt(rps[FLOOR], 0), fmt(rps["gateway"], 0), fmt(rps[QUIET], 0),
                fmt(ratio(rps["gateway"], rps["nginx"]), 2, "x"), fmt(ratio(rps["gateway"], rps[FLOOR]), 2, "x"),
                fmt(ratio(rps["gateway"], rps[QUIET]), 3, "x"), fmt(ratio(rps[QUIET], rps["nginx"]), 2, "x"),
                fmt(ratio(w["gateway"].get("p99_us"), w[FLOOR].get("p99_us")), 2, "x"),
                fmt(ratio(w[QUIET].get("p99_us"), w[FLOOR].get("p99_us")), 2, "x")))
        medians = {
            "default/nginx": per_round_ratio(run.high, "rps"),
            "default/floor": per_round_ratio(run.high, "rps", "gateway", FLOOR) if has_floor else None,
            "default/warning": per_round_ratio(run.high, "rps", "gateway", QUIET),
            "warning/nginx": per_round_ratio(run.high, "rps", QUIET),
            "p99 default/floor": per_round_ratio(run.high, "p99_us", "gateway", FLOOR) if has_floor else None,
            "p99 warning/floor": per_round_ratio(run.high, "p99_us", QUIET, FLOOR) if has_floor else None,
            "CPU/request default": median(series("gateway", run.high, "cpu_us_per_request")),
            "CPU/request warning": median(series(QUIET, run.high, "cpu_us_per_request")),
        }
        add("| median | | | | | %s | %s | %s | %s | %s | %s |" % (
            fmt(medians["default/nginx"], 2, "x"), fmt(medians["default/floor"], 2, "x"), fmt(medians["default/warning"], 3, "x"),
            fmt(medians["warning/nginx"], 2, "x"), fmt(medians["p99 default/floor"], 2, "x"), fmt(medians["p99 warning/floor"], 2, "x")))
        add("")
        add("CPU per request: %s at the default, %s at warning." % (
            fmt(medians["CPU/request default"], 1, " us"), fmt(medians["CPU/request warning"], 1, " us")))
        add("")
        d = medians["default/warning"]
        issue21.append(("Default settings within 5%% of warning (throughput, %d connections)" % run.high,
                        d is not None and d >= 0.95, fmt(d, 3, "x")))
        n = medians["default/nginx"]
        issue21.append(("Default settings: throughput >= 0.45x nginx", n is not None and n >= 0.45, fmt(n, 2, "x")))
        if has_floor:
            f = medians["default/floor"]
            issue21.append(("Default settings: throughput >= 0.9x the floor's", f is not None and f >= 0.9, fmt(f, 2, "x")))
            q = medians["p99 default/floor"]
            issue21.append(("Default settings: p99 <= 1.5x the floor's", q is not None and q <= 1.5, fmt(q, 2, "x")))

    # ---- 2. 8 connections
    add("### 2. The same at %d connections: latency added over direct" % run.low)
    add("")
    add("| figure | gateway | nginx proxy | ratio gateway/nginx |%s direct |" % floor_head)
    add("|---|---|---|---|%s---|" % floor_rule)
    for label, key in (("p50 latency", "p50_us"), ("p99 latency", "p99_us")):
        g, n, d = series("gateway", run.low, key), series("nginx", run.low, key), series("direct", run.low, key)
        f = series(FLOOR, run.low, key)
        add("| %s | %s | %s | %s |%s %s |" % (label, fmt(ms(median(g)), 3, " ms"), fmt(ms(median(n)), 3, " ms"), fmt(median([ratio(a, b) for a, b in zip(g, n)]), 2, "x"),
                                             floor_cells(run.low, key, ms(median(f)), 3, " ms"), fmt(ms(median(d)), 3, " ms")))
        ga = [ms(a - c) if a is not None and c is not None else None for a, c in zip(g, d)]
        na = [ms(b - c) if b is not None and c is not None else None for b, c in zip(n, d)]
        fa = [ms(a - c) if a is not None and c is not None else None for a, c in zip(f, d)]
        add("| %s added over direct | %s | %s | %s |%s |" % (label, fmt(median(ga), 3, " ms"), fmt(median(na), 3, " ms"), fmt(median([ratio(a, b) for a, b in zip(ga, na)]), 2, "x"),
                                                             " %s | %s |" % (fmt(median(fa), 3, " ms"), fmt(median([ratio(a, b) for a, b in zip(fa, na)]), 2, "x")) if has_floor else ""))
    add("| requests/s | %s | %s | %s |%s %s |" % (fmt(median(series("gateway", run.low, "rps")), 0), fmt(median(series("nginx", run.low, "rps")), 0),
                                                fmt(per_round_ratio(run.low, "rps"), 2, "x"),
                                                floor_cells(run.low, "rps", median(series(FLOOR, run.low, "rps")), 0, ""),
                                                fmt(median(series("direct", run.low, "rps")), 0)))
    add("| CPU per request | %s | %s | %s |%s |" % (fmt(median(series("gateway", run.low, "cpu_us_per_request")), 1, " us"),
                                                   fmt(median(series("nginx", run.low, "cpu_us_per_request")), 1, " us"),
                                                   fmt(per_round_ratio(run.low, "cpu_us_per_request"), 2, "x"),
                                                   floor_cells(run.low, "cpu_us_per_request", median(series(FLOOR, run.low, "cpu_us_per_request")), 1, " us")))
    add("")
    p50r8 = per_round_ratio(run.low, "p50_us")
    verdicts.append(("p50 at %d connections <= 3x nginx's" % run.low, p50r8 is not None and p50r8 <= 3, fmt(p50r8, 2, "x")))

    # ---- 3. streaming
    add("### 3. Streaming `:streamGenerateContent?alt=sse`, 10 events 50 ms apart")
    add("")
    add("Time to first event (TTFE) is measured per stream from its own request write; 'added' is the "
        "target's median minus direct's median in the same round. A stream counts as incremental when its "
        "10 events arrive spread over at least half of the upstream's 450 ms schedule (a relay that buffered "
        "the answer would deliver them at once, a span near 0), and as steady when, in addition, its median "
        "gap between events is 30-80 ms. At 1,000 streams the Python client itself is saturated (it reads "
        "events in bursts: gap p10 near 0 for nginx too), so compare the targets, not the absolute figures.")
    add("")
    add("| streams | target | ok / streams | TTFE p50 | TTFE p99 | TTFE added over direct (p50) | gateway added - nginx added | event gap p10 / p50 / p90 | incremental / steady | peak RSS while open |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    stream_added = {}
    for n in run.streams:
        per = {t: [run.stream(p, t, n) for p in phases] for t in TARGETS}
        added = {}
        for t in TARGETS:
            added[t] = [
                (s["ttfb_ms"]["p50"] - d["ttfb_ms"]["p50"]) if s and d and s["ttfb_ms"]["p50"] is not None and d["ttfb_ms"]["p50"] is not None else None
                for s, d in zip(per[t], per["direct"])
            ]
        diff = median([g - x if g is not None and x is not None else None for g, x in zip(added["gateway"], added["nginx"])])
        stream_added[n] = (median(added["gateway"]), median(added["nginx"]), diff)
        for t in ("gateway", "nginx", "direct"):
            runs = [s for s in per[t] if s]
            if not runs:
                continue
            ok = sum(s["ok"] for s in runs)
            total = sum(s["streams"] for s in runs)
            inc = sum(s["incremental"] for s in runs)
            steady = sum(s.get("steady", 0) for s in runs)
            rss = max((s.get("rss_peak_kib") or 0) for s in runs)
            add("| %d | %s | %d / %d | %s | %s | %s | %s | %s / %s / %s | %d / %d of %d | %s |" % (
                n, t, ok, total,
                fmt(median([s["ttfb_ms"]["p50"] for s in runs]), 1, " ms"), fmt(median([s["ttfb_ms"]["p99"] for s in runs]), 1, " ms"),
                "" if t == "direct" else fmt(median(added[t]), 1, " ms"),
                fmt(diff, 1, " ms") if t == "gateway" else "",
                fmt(median([s["gap_ms"]["p10"] for s in runs]), 0), fmt(median([s["gap_ms"]["p50"] for s in runs]), 0),
                fmt(median([s["gap_ms"]["p90"] for s in runs]), 0, " ms"), inc, steady, total,
                "%.1f MiB" % (rss / 1024.0) if rss else "n/a"))
            if any(s["errors"] for s in runs):
                add("|  |  | errors: %s |  |  |  |  |  |  |  |" % "; ".join("%s x%d" % (k, v) for s in runs for k, v in s["errors"].items()))
    add("")
    examples = []
    for n in run.streams:
        s = run.stream(phases[-1], "gateway", n) if phases else None
        if s and s.get("example_ms"):
            examples.append("%d streams: %s" % (n, ", ".join("%g" % t for t in s["example_ms"])))
    if examples:
        add("One gateway stream's events as they arrived (ms after its request was written; last round), "
            "the upstream sending one every 50 ms:")
        add("")
        for line in examples:
            add("- " + line)
        add("")
    add("The RSS column is VmRSS sampled every 10 ms while the streams were open: the gateway process, "
        "or the two nginx worker processes summed (direct: the fake's nginx workers; its Python SSE server not included).")
    add("")
    for n, slack in ((50, 5.0), (200, 15.0)):
        if n in stream_added:
            g, x, diff = stream_added[n]
            verdicts.append(("Streaming TTFE added at %d streams <= nginx's + %g ms" % (n, slack), diff is not None and diff <= slack,
                             "gateway %s, nginx %s: %s over nginx's" % (fmt(g, 1, " ms"), fmt(x, 1, " ms"), fmt(diff, 1, " ms"))))
    all_inc = all_total = 0
    for n in run.streams:
        for p in phases:
            s = run.stream(p, "gateway", n)
            if s:
                all_inc += s["incremental"]
                all_total += s["streams"]
    verdicts.append(("Every event forwarded as it arrives (gateway)", all_total > 0 and all_inc == all_total,
                     "%d of %d streams incremental" % (all_inc, all_total)))
    if 1000 in run.streams:
        peaks = [(run.stream(p, "gateway", 1000) or {}).get("rss_peak_kib") for p in phases]
        peak = max([p for p in peaks if p] or [0])
        verdicts.append(("1,000 streams held with peak RSS < 150 MB", 0 < peak * 1024 < 150e6,
                         "peak %.1f MB (%.1f MiB); per round %s" % (peak * 1024 / 1e6, peak / 1024.0,
                                                                   ", ".join("%.1f" % (p * 1024 / 1e6) for p in peaks if p))))

    # ---- 4. memory
    add("### 4. Gateway memory (VmRSS / VmHWM)")
    add("")
    add("| when | VmRSS | of which anonymous | of which file-backed (code, ICU data) | VmHWM (peak so far) | open fds |")
    add("|---|---|---|---|---|---|")
    mems = [("idle, before any request", "idle"), ("after warm-up", "warm")]
    for r in rounds:
        mems += [("after round %d" % r, "r%d" % r), ("after round %d, pool drained" % r, "r%d-drained" % r)]
    rss_after, rss_drained = [], []
    for label, key in mems:
        mem = load_json(os.path.join(run.raw, "mem-%s.json" % key))
        if mem:
            add("| %s | %.1f MiB | %s | %s | %.1f MiB | %s |" % (
                label, mem["rss_kib"] / 1024.0,
                "%.1f MiB" % (mem["anon_kib"] / 1024.0) if "anon_kib" in mem else "n/a",
                "%.1f MiB" % (mem["file_kib"] / 1024.0) if "file_kib" in mem else "n/a",
                mem["hwm_kib"] / 1024.0, mem.get("fds", "n/a")))
            if key.startswith("r"):
                (rss_drained if key.endswith("-drained") else rss_after).append(mem["rss_kib"] / 1024.0)
    add("")
    if len(rss_after) >= 2:
        growth = rss_after[-1] - rss_after[0]
        add("Growth from the end of round 1 to the end of round %d: %+.1f MiB. Each round's sample is taken "
            "after the gateway has been idle for BENCH_SETTLE seconds (12 by default; it returns the memory "
            "its bursts left free after 5-10 s without requests). Open fds above ~20 are pooled "
            "idle upstream connections (kept up to 60 s after the 1,000-stream burst)." % (len(rss_after), growth))
        add("")
        judged, name = rss_after, "end of round"
        if len(rss_drained) == len(rss_after):
            # The drained samples are the idle state: the burst's pooled connections are closed
            # and their memory trimmed, so what is left over from one round to the next is use.
            judged, name = rss_drained, "drained sample after round"
            add("Growth of the drained samples (BENCH_DRAIN seconds after each round's end: the pools "
                "have closed the burst's idle connections and the gateway has trimmed again): %+.1f MiB. "
                "The verdict uses these: with a thousand idle pooled connections still open, the first "
                "sample moves by several MiB from run to run with the allocator's fragmentation around "
                "them." % (rss_drained[-1] - rss_drained[0]))
            add("")
        growth = judged[-1] - judged[0]
        verdicts.append(("No memory growth across rounds", growth <= max(5.0, 0.05 * judged[0]),
                         "%+.1f MiB from the %s 1 to %d" % (growth, name, len(judged))))

    # ---- 5. scheduler
    add("### 5. The scheduler alone (10,000 keys, 10 upstreams, release build)")
    add("")
    add("| operation | median | p99 | p99.9 | mean | n |")
    add("|---|---|---|---|---|---|")
    sched = []
    try:
        for line in open(os.path.join(run.out, "scheduler.jsonl")):
            if line.strip():
                sched.append(json.loads(line))
    except OSError:
        pass
    overhead = None
    # Timed scenarios have every figure; derived ones (a per-request figure computed from a
    # scenario, such as client_limit_per_request) only a median, said after the table.
    derived = [s for s in sched if "p99_ns" not in s]
    sched = [s for s in sched if "p99_ns" in s]
    for s in sched:
        overhead = s.get("clock_overhead_ns", overhead)
        add("| `%s` | %.2f us | %.2f us | %.2f us | %.2f us | %d |" % (s["name"], s["median_ns"] / 1000.0, s["p99_ns"] / 1000.0,
                                                                   s["p999_ns"] / 1000.0, s["mean_ns"] / 1000.0, s["n"]))
    add("")
    for s in derived:
        add("`%s`: %.0f ns (median)." % (s["name"], s["median_ns"]))
        add("")
    if overhead is not None:
        add("Each operation is timed alone with `ContinuousClock` (clock read cost %d ns, included). A pick includes "
            "reading `Date()` as `KeyPool.pick` does; `*_via_mutex` adds the `Mutex` that `KeyPool` holds." % overhead)
        add("")
    pick = next((s for s in sched if s["name"] == "pick_all_healthy"), None)
    if pick:
        verdicts.append(("Scheduler pick < 2 us median with 10,000 keys", pick["median_ns"] < 2000,
                         "%.2f us median, %.2f us p99" % (pick["median_ns"] / 1000.0, pick["p99_ns"] / 1000.0)))

    # ---- 6. rows
    add("### 6. Request rows in SQLite after the load")
    add("")
    rows_info = load_json(os.path.join(run.out, "rows.json"), {})
    answered = sent = 0
    wrk_answered = wrk_sent = 0
    for path in glob.glob(os.path.join(run.raw, "*-wrk*-gateway.txt")):
        match = re.search(r"^WRKJSON (\{.*\})$", open(path).read(), re.M)
        if match:
            r = json.loads(match.group(1))
            wrk_answered += r["requests"]
            wrk_sent += r["sent"]
    stream_answered = stream_sent = 0
    for path in glob.glob(os.path.join(run.raw, "*-stream*-gateway.json")):
        s = load_json(path)
        if s:
            stream_answered += s["answered"]
            stream_sent += s["connected"]
    probes = (load_json(os.path.join(run.raw, "probes.json"), {}) or {}).get("gateway_requests", 0)
    answered = wrk_answered + stream_answered + probes
    sent = wrk_sent + stream_sent + probes
    count = rows_info.get("requests")
    exit_status = open(os.path.join(run.out, "gateway", "exit-status")).read().strip() if os.path.exists(os.path.join(run.out, "gateway", "exit-status")) else "?"
    add("| | count |")
    add("|---|---|")
    add("| requests answered, counted by the clients (wrk summaries + streams + 2 probes; warm-up and profile runs included) | %d |" % answered)
    add("| requests sent by the clients (answered + in flight when wrk stopped) | %d |" % sent)
    add("| rows in `requests` after SIGTERM (gateway exit status %s) | %s |" % (exit_status, count))
    add("| rows in `attempts` | %s |" % rows_info.get("attempts"))
    add("")
    add("Rows by outcome and status: %s. By endpoint: %s. By upstream: %s. Usage: %s; %s distinct keys used." % (
        ", ".join("%s: %d" % kv for kv in sorted(rows_info.get("by_outcome", {}).items())),
        ", ".join("%s: %d" % kv for kv in sorted(rows_info.get("by_endpoint", {}).items())),
        ", ".join("%s: %d" % kv for kv in sorted(rows_info.get("by_upstream", {}).items(), key=lambda kv: str(kv[0]))),
        ", ".join("%s: %d" % kv for kv in sorted(rows_info.get("usage_status", {}).items())),
        rows_info.get("distinct_keys")))
    add("")
    if count is not None:
        ok = answered <= count <= sent
        detail = ("%d rows for %d requests answered and %d sent: %d of the %d in flight when wrk stopped were also served "
                  "and logged" % (count, answered, sent, count - answered, sent - answered))
        if count < answered:
            detail = "%d rows LOST: %d rows for %d answered" % (answered - count, count, answered)
        elif count > sent:
            detail = "%d rows more than requests sent" % (count - sent)
        elif count == sent:
            detail = "%d rows = %d requests sent (%d answered to the clients + %d in flight when wrk stopped)" % (count, sent, answered, sent - answered)
        verdicts.append(("Zero request rows lost", ok, detail))

    # ---- profile
    profile = load_json(os.path.join(run.out, "profile.json"))
    if profile:
        add("### Profile of the gateway at %d connections (`perf record -e cpu-clock -g`, %s samples)" % (run.high, profile.get("samples", "?")))
        add("")
        add("CPU time by thread:")
        add("")
        add("| threads | % of the gateway's CPU | where their time goes (share of the thread's samples) |")
        add("|---|---|---|")
        for name, pct in profile.get("threads", []):
            dsos = profile.get("thread_dsos", {}).get(name, [])
            add("| %s | %.1f | %s |" % (name, pct, ", ".join("%s %.0f%%" % (d, p) for d, p in dsos)))
        add("")
        add("Self time by component:")
        add("")
        add("| component | self % |")
        add("|---|---|")
        for name, pct in profile["components"]:
            add("| %s | %.1f |" % (name, pct))
        add("")
        add("Top functions by self time:")
        add("")
        add("| self % | function | where |")
        add("|---|---|---|")
        for item in profile["top_self"][:25]:
            add("| %.2f | `%s` | %s |" % (item["pct"], item["symbol"].replace("|", "\\|")[:150], item["dso"]))
        add("")
        if profile.get("top_children"):
            add("Inclusive (children) time of selected frames:")
            add("")
            add("| incl. % | function |")
            add("|---|---|")
            for item in profile["top_children"]:
                add("| %.1f | `%s` |" % (item["pct"], item["symbol"].replace("|", "\\|")[:150]))
            add("")

    # ---- verdicts
    head = ["### Targets (issue 5)", "", "| target | met? | measured |", "|---|---|---|"]
    for name, met, detail in verdicts:
        head.append("| %s | %s | %s |" % (name, "**met**" if met else "**missed**", detail))
    head.append("")
    if issue21:
        head += ["### Targets (issue 21: the gateway as it ships)", "", "| target | met? | measured |", "|---|---|---|"]
        for name, met, detail in issue21:
            head.append("| %s | %s | %s |" % (name, "**met**" if met else "**missed**", detail))
        head.append("")
    if floor_note:
        head += [floor_note, ""]

    # ---- commands
    tail = ["### Exact commands", "", "From the repo root: `bench/run.sh` (quick: `BENCH_QUICK=1 bench/run.sh`). It runs:", "", "```"]
    try:
        tail.extend(line.rstrip("\n") for line in open(os.path.join(run.out, "commands.txt")))
    except OSError:
        pass
    tail += ["```", "",
             "TOKEN is the gateway token printed by `clients add`; the fake upstream and the reference are nginx with "
             "`bench/nginx/upstream.conf.in` and `bench/nginx/proxy.conf.in` (rendered with the ports above), the SSE "
             "streams come from `bench/sse_upstream.py`. The gateway runs as it ships (log level info: a line per request "
             "to its log file, and one request row per request written to SQLite by the batched writer); "
             "`gateway-warning` is the same binary at `--log-level warning`, in the non-streaming loads.", ""]
    return "\n".join(head + lines + tail)


def ms(us):
    return us / 1000.0 if us is not None else None


def p99_pair(target_us, nginx_us):
    """'7.26 / 3.55 ms (2.05x)': a target's p99 over nginx's in the same round."""
    if target_us is None or nginx_us is None:
        return "n/a"
    return "%s / %s ms (%s)" % (fmt(ms(target_us), 2), fmt(ms(nginx_us), 2), fmt(ratio(target_us, nginx_us), 2, "x"))


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    out = args[0].rstrip("/")
    write = args[args.index("--write") + 1] if "--write" in args else None
    run = Run(out)
    body = build(run)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(body + "\n")
    print(body)
    if write:
        block = START + "\n" + body + "\n" + END
        if os.path.exists(write):
            text = open(write).read()
            if START in text and END in text:
                text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
            else:
                text = text.rstrip("\n") + "\n\n" + block + "\n"
        else:
            text = "# gemini-gateway benchmark results\n\n" + block + "\n"
        with open(write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
