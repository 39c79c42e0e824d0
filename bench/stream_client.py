#!/usr/bin/env python3
"""Opens N concurrent `:streamGenerateContent?alt=sse` streams and records when each event arrives.

All N connections are opened first; then every request is sent in one burst and each stream's time
to first event is measured from its own send. Events are split on the SSE blank line after
de-chunking, and each event's arrival time is recorded, so the report can show that events arrive
~INTERVAL apart (relayed incrementally) and not all at once at the end.

While the streams are open it samples VmRSS of --rss-pid (comma-separated pids, summed) every
10 ms and reports the peak.

Standard library only (asyncio protocols); uses uvloop when Debian's python3-uvloop is installed.
Prints one JSON object.

    python3 bench/stream_client.py --port 18404 --streams 200 --token TOKEN [--rss-pid PID]
"""

import argparse
import asyncio
import json
import statistics
import sys
import time

REQUEST_BODY = json.dumps({
    "contents": [{"role": "user", "parts": [{"text": "Explain in ten short sentences how a reverse proxy relays a streamed answer."}]}],
    "generationConfig": {"temperature": 0.7, "maxOutputTokens": 256},
}, separators=(",", ":")).encode()


class Client(asyncio.Protocol):
    def __init__(self, done):
        self.done = done
        self.transport = None
        self.buffer = b""
        self.head = None
        self.status = None
        self.chunked = False
        self.remaining = None  # content-length left, or None
        self.body = b""  # de-chunked bytes not yet split into events
        self.events = []  # arrival times
        self.sent = None
        self.error = None
        self.complete = False
        self.usage_total = None

    def connection_made(self, transport):
        self.transport = transport

    def send(self, request):
        self.sent = time.monotonic()
        self.transport.write(request)

    def connection_lost(self, exc):
        if not self.complete:
            if self.error is None:
                self.error = "connection closed" + (": %s" % exc if exc else "")
            if self.head is not None and not self.chunked and self.remaining is None:
                # close-delimited body: the close is the end
                self.error = None
                self.complete = True
            self.finish()

    def finish(self):
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data):
        now = time.monotonic()
        self.buffer += data
        try:
            self.parse(now)
        except Exception as exc:  # a malformed answer
            self.error = "parse error: %r" % exc
            self.finish()

    def parse(self, now):
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = self.buffer[:end].decode("latin-1")
            self.buffer = self.buffer[end + 4:]
            lines = self.head.split("\r\n")
            self.status = int(lines[0].split(" ")[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip()
                if name == "transfer-encoding" and "chunked" in value.lower():
                    self.chunked = True
                elif name == "content-length":
                    self.remaining = int(value)
        if self.chunked:
            while True:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return
                size = int(self.buffer[:end].split(b";")[0], 16)
                if size == 0:
                    if self.buffer.find(b"\r\n", end + 2) < 0:
                        return
                    self.complete = True
                    self.split_events(now)
                    self.finish()
                    return
                if len(self.buffer) < end + 2 + size + 2:
                    return
                self.body += self.buffer[end + 2:end + 2 + size]
                self.buffer = self.buffer[end + 2 + size + 2:]
                self.split_events(now)
        else:
            take = self.buffer if self.remaining is None else self.buffer[:self.remaining]
            self.buffer = self.buffer[len(take):]
            self.body += take
            if self.remaining is not None:
                self.remaining -= len(take)
            self.split_events(now)
            if self.remaining == 0:
                self.complete = True
                self.finish()

    def split_events(self, now):
        while True:
            end = self.body.find(b"\r\n\r\n")
            size = 4
            lf = self.body.find(b"\n\n")
            if lf >= 0 and (end < 0 or lf < end):
                end, size = lf, 2
            if end < 0:
                return
            event = self.body[:end]
            self.body = self.body[end + size:]
            if event.startswith(b"data:"):
                self.events.append(now)
                if b'"totalTokenCount"' in event:
                    try:
                        self.usage_total = json.loads(event[5:])["usageMetadata"]["totalTokenCount"]
                    except Exception:
                        pass


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


async def run(args):
    """Runs the burst --repeat times (one after the other) and reports them together."""
    results = [await burst(args) for _ in range(args.repeat)]
    result = results[0]
    if args.repeat > 1:
        result = merge(results, args)
    print(json.dumps(result))


def merge(results, args):
    ttfb = [t for r in results for t in r.pop("_ttfb")]
    gaps = [g for r in results for g in r.pop("_gaps")]
    spans = [s for r in results for s in r.pop("_spans")]
    merged = dict(results[0])
    for key in ("streams", "connected", "answered", "ok", "incremental", "steady"):
        merged[key] = sum(r[key] for r in results)
    merged["errors"] = {}
    for r in results:
        for k, v in r["errors"].items():
            merged["errors"][k] = merged["errors"].get(k, 0) + v
    merged["elapsed_s"] = max(r["elapsed_s"] for r in results)
    merged["rss_peak_kib"] = max((r["rss_peak_kib"] or 0) for r in results) or None
    merged.update(summary(ttfb, gaps, spans))
    merged["repeat"] = args.repeat
    return merged


def summary(ttfb, gaps, spans):
    return {
        "ttfb_ms": {
            "p50": percentile(ttfb, 50), "p90": percentile(ttfb, 90), "p99": percentile(ttfb, 99),
            "min": min(ttfb) if ttfb else None, "max": max(ttfb) if ttfb else None,
        },
        "gap_ms": {"p10": percentile(gaps, 10), "p50": percentile(gaps, 50), "p90": percentile(gaps, 90),
                   "min": min(gaps) if gaps else None},
        "span_ms": {"min": min(spans) if spans else None, "p50": percentile(spans, 50)},
    }


async def burst(args):
    loop = asyncio.get_running_loop()
    host = "127.0.0.1"
    request = (
        "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        "x-goog-api-key: %s\r\nContent-Length: %d\r\n\r\n" % (args.path, host, args.port, args.token, len(REQUEST_BODY))
    ).encode() + REQUEST_BODY

    clients = []
    connect_started = time.monotonic()

    async def connect():
        done = loop.create_future()
        for attempt in range(5):
            try:
                _, client = await loop.create_connection(lambda: Client(done), host, args.port)
                return client
            except OSError:
                await asyncio.sleep(0.05 * (attempt + 1))
        return None

    # Connect in bounded bursts so a 1,000-stream run does not overflow accept queues.
    for start in range(0, args.streams, 250):
        batch = await asyncio.gather(*(connect() for _ in range(start, min(args.streams, start + 250))))
        clients.extend(batch)
    connect_seconds = time.monotonic() - connect_started
    connected = [c for c in clients if c is not None]

    pids = [int(p) for p in args.rss_pid.split(",") if p] if args.rss_pid else []
    rss_peak = rss_kib(pids) if pids else 0
    rss_before = rss_peak

    started = time.monotonic()
    for client in connected:
        client.send(request)
    all_done = asyncio.gather(*(c.done for c in connected))
    deadline = started + args.timeout
    while not all_done.done() and time.monotonic() < deadline:
        if pids:
            rss_peak = max(rss_peak, rss_kib(pids))
        await asyncio.wait([all_done], timeout=0.01)
    elapsed = time.monotonic() - started
    for client in connected:
        if not client.complete and client.error is None:
            client.error = "timeout"
        if client.transport is not None:
            client.transport.abort()
    all_done.cancel()
    if pids:
        rss_peak = max(rss_peak, rss_kib(pids))

    ok = [c for c in connected if c.complete and c.status == 200 and len(c.events) == args.events]
    ttfb = [(c.events[0] - c.sent) * 1000 for c in connected if c.events]
    gaps = []
    spans = []
    incremental = steady = 0
    for c in ok:
        stream_gaps = [(b - a) * 1000 for a, b in zip(c.events, c.events[1:])]
        gaps.extend(stream_gaps)
        span = (c.events[-1] - c.events[0]) * 1000
        spans.append(span)
        expected = (args.events - 1) * args.interval * 1000
        # Incremental: the events are spread over at least half of the upstream's own schedule (a
        # relay that buffered the answer would deliver them all at once: a span near 0). Steady:
        # also the median gap within 0.6-1.6x the interval (a saturated client reads in bursts).
        if span >= 0.5 * expected:
            incremental += 1
            if 0.6 * args.interval * 1000 <= statistics.median(stream_gaps) <= 1.6 * args.interval * 1000:
                steady += 1
    errors = {}
    for c in clients:
        if c is None:
            key = "connect failed"
        elif c in ok:
            continue
        else:
            key = c.error or ("status %s" % c.status if c.status != 200 else "events %d" % len(c.events))
        errors[key] = errors.get(key, 0) + 1

    result = {
        "label": args.label,
        "streams": args.streams,
        "connected": len(connected),
        "answered": sum(1 for c in connected if c.status is not None),
        "ok": len(ok),
        "errors": errors,
        "connect_s": round(connect_seconds, 3),
        "elapsed_s": round(elapsed, 3),
        "incremental": incremental,
        "steady": steady,
        # One stream's event arrival times, in ms after its request was written: the proof, by eye.
        "example_ms": [round((t - ok[-1].sent) * 1000, 1) for t in ok[-1].events] if ok else None,
        "usage_total_last": ok[0].usage_total if ok else None,
        "rss_peak_kib": rss_peak if pids else None,
        "rss_before_kib": rss_before if pids else None,
    }
    result.update(summary(ttfb, gaps, spans))
    if args.repeat > 1:
        result.update({"_ttfb": ttfb, "_gaps": gaps, "_spans": spans})
        await asyncio.sleep(0.05)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--token", default="")
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--rss-pid", default="")
    parser.add_argument("--label", default="")
    parser.add_argument("--repeat", type=int, default=1, help="run the burst this many times, one after the other")
    args = parser.parse_args()
    try:
        import uvloop  # Debian: python3-uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
