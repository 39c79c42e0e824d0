#!/usr/bin/env python3
"""Reads a `perf record -e cpu-clock -g` profile of the gateway and says where the time goes.

    profile.py OUT/perf.data OUT

Writes OUT/profile-self.txt and OUT/profile-children.txt (perf report, Swift symbols demangled
with `swift demangle --simplified`) and OUT/profile.json (self time grouped by component, top
functions by self time, inclusive time of the gateway's and its libraries' frames) for report.py.
"""

import json
import os
import re
import subprocess
import sys

LINE = re.compile(r"^\s+([\d.]+)%\s+(?:([\d.]+)%\s+)?(\S+)\s+\[(.)\]\s+(.*?)\s*$")

MODULES = [
    ("AsyncHTTPClient", "AsyncHTTPClient (upstream client)"),
    ("NIOHTTP1", "SwiftNIO HTTP/1 codec"),
    ("NIOPosix", "SwiftNIO event loops and sockets"),
    ("NIOCore", "SwiftNIO core (ByteBuffer, pipeline, futures)"),
    ("NIO", "SwiftNIO other"),
    ("HummingbirdCore", "Hummingbird (server)"),
    ("Hummingbird", "Hummingbird (server)"),
    ("HTTPTypes", "HTTPTypes (header fields)"),
    ("GatewayServer", "gateway: GatewayServer"),
    ("GatewayCore", "gateway: GatewayCore"),
    ("GatewayStore", "gateway: GatewayStore"),
    ("GRDB", "GRDB"),
    ("Logging", "swift-log / metrics"),
    ("Metrics", "swift-log / metrics"),
    ("ServiceLifecycle", "ServiceLifecycle"),
    ("Synchronization", "Swift stdlib (specialised into the binary)"),
    ("Swift", "Swift stdlib (specialised into the binary)"),
    ("_Concurrency", "Swift concurrency (specialised into the binary)"),
    ("Foundation", "Foundation"),
    ("FoundationEssentials", "Foundation"),
]

DSOS = [
    ("[kernel.kallsyms]", "kernel (syscalls, loopback TCP, scheduling)"),
    ("libc.so", "libc (malloc/free, memcpy, locks)"),
    ("libswiftCore.so", "Swift runtime (retain/release, allocation, metadata)"),
    ("libswift_Concurrency.so", "Swift concurrency runtime (tasks, executors)"),
    ("libswiftSynchronization", "Swift runtime (retain/release, allocation, metadata)"),
    ("libFoundation", "Foundation"),
    ("libsqlite3", "SQLite"),
    ("libstdc++", "libstdc++"),
    ("libdispatch", "libdispatch"),
]

GATEWAY_FRAMES = ("GatewayServer.", "GatewayCore.", "GatewayStore.", "AsyncHTTPClient.", "HummingbirdCore.", "Hummingbird.",
                  "GRDB.", "Logging.", "sqlite3_")


def strip_brackets(text):
    out, depth = [], 0
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return "".join(out)


def module_of(full):
    text = strip_brackets(full)
    match = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\.", text)
    return match.group(1) if match else None


def component(dso, full):
    base = os.path.basename(dso)
    for prefix, name in DSOS:
        if base.startswith(prefix) or dso == prefix:
            return name
    if base.startswith("gemini-gateway"):
        module = module_of(full) or ""
        for prefix, name in MODULES:
            if module == prefix:
                return name
        if module.startswith("NIO"):
            return "SwiftNIO other"
        if module.startswith("Hummingbird"):
            return "Hummingbird (server)"
        return "binary, other (%s)" % (module or "unknown")
    return base


def demangle(symbols, simplified):
    swift = ["swift", "demangle"] + (["--simplified"] if simplified else [])
    try:
        result = subprocess.run(swift, input="\n".join(symbols) + "\n", capture_output=True, text=True, timeout=120)
        lines = result.stdout.split("\n")
        if len(lines) >= len(symbols):
            return dict(zip(symbols, lines))
    except (OSError, subprocess.SubprocessError):
        pass
    return {s: s for s in symbols}


THREADS = [
    ("NIO-", "SwiftNIO event-loop threads (sockets, HTTP codecs, the proxy's channel handlers and its request tasks)"),
    ("oot.default-qos", "Swift concurrency pool (tasks not pinned to a loop; the proxy runs none here)"),
    ("-qos.overcommit", "GRDB's serial writer queue (the request-log SQLite transactions)"),
]


def thread_kind(comm):
    for prefix, name in THREADS:
        if comm.startswith(prefix) or comm.endswith(prefix):
            return name
    return "other thread (%s)" % comm


def perf_report(data, extra, limit="0.05"):
    command = ["perf", "report", "-i", data, "--stdio", "-g", "none", "--percent-limit", limit] + extra
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return result.stdout


def parse(text):
    rows = []
    samples = None
    for line in text.splitlines():
        if line.startswith("# Samples:"):
            samples = line.split(":", 1)[1].strip()
        match = LINE.match(line)
        if match:
            first, second, dso, kind, symbol = match.groups()
            rows.append({"pct": float(first), "self": float(second) if second else None, "dso": dso, "symbol": symbol})
    return rows, samples


def main():
    data, out = sys.argv[1], sys.argv[2]
    self_text = perf_report(data, ["--no-children", "--sort", "dso,sym"], limit="0")
    threads = {}
    for line in perf_report(data, ["--no-children", "--sort", "comm"], limit="0").splitlines():
        match = re.match(r"^\s+([\d.]+)%\s+(.*?)\s*$", line)
        if match:
            kind = thread_kind(match.group(2))
            threads[kind] = threads.get(kind, 0.0) + float(match.group(1))
    children_text = perf_report(data, ["--children", "--sort", "dso,sym"])
    self_rows, samples = parse(self_text)
    child_rows, _ = parse(children_text)

    # Per thread kind: which libraries its samples land in.
    by_thread = {}
    script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,dso", "--hide-call-graph"],
                            capture_output=True, text=True, timeout=600).stdout
    for line in script.splitlines():
        match = re.match(r"^\s*(.*?)\s+[0-9a-f]+\s+\((.*)\)\s*$", line)
        if not match:
            continue
        kind = thread_kind(match.group(1))
        dso = os.path.basename(match.group(2))
        counts = by_thread.setdefault(kind, {})
        counts[dso] = counts.get(dso, 0) + 1
    thread_dsos = {}
    for kind, counts in by_thread.items():
        total = float(sum(counts.values()))
        thread_dsos[kind] = [(dso, 100.0 * n / total) for dso, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n / total >= 0.01]

    mangled = sorted({r["symbol"] for r in self_rows + child_rows})
    simple = demangle(mangled, simplified=True)
    full = demangle(mangled, simplified=False)

    def rewrite(text):
        return "\n".join(
            line if not LINE.match(line) else line.replace(LINE.match(line).group(5), simple.get(LINE.match(line).group(5), LINE.match(line).group(5)))
            for line in text.splitlines())

    with open(os.path.join(out, "profile-self.txt"), "w") as f:
        f.write(rewrite(self_text) + "\n")
    with open(os.path.join(out, "profile-children.txt"), "w") as f:
        f.write(rewrite(children_text) + "\n")

    components = {}
    for r in self_rows:
        name = component(r["dso"], full.get(r["symbol"], r["symbol"]))
        components[name] = components.get(name, 0.0) + r["pct"]
    listed = sum(components.values())
    if 100.0 - listed > 0.5:
        components["(unlisted)"] = 100.0 - listed

    top_self = [{"pct": r["pct"], "symbol": simple.get(r["symbol"], r["symbol"]), "dso": os.path.basename(r["dso"])}
                for r in sorted(self_rows, key=lambda r: -r["pct"])[:40]]
    top_children = []
    for r in sorted(child_rows, key=lambda r: -r["pct"]):
        name = full.get(r["symbol"], r["symbol"])
        if any(name.startswith(p) or (" " + p) in name for p in GATEWAY_FRAMES):
            top_children.append({"pct": r["pct"], "symbol": simple.get(r["symbol"], r["symbol"])})
        if len(top_children) >= 30:
            break
    result = {
        "samples": samples,
        "threads": sorted(threads.items(), key=lambda kv: -kv[1]),
        "thread_dsos": thread_dsos,
        "components": sorted(components.items(), key=lambda kv: -kv[1]),
        "top_self": top_self,
        "top_children": top_children,
    }
    with open(os.path.join(out, "profile.json"), "w") as f:
        json.dump(result, f, indent=1)
    for name, pct in result["components"]:
        print("%6.2f%%  %s" % (pct, name))


if __name__ == "__main__":
    main()
