#!/usr/bin/env python3
"""What one request row costs SQLite, as the `requests` table grows (not run by run.sh).

Applies every migrations/*.sql in order to a fresh database in bench/out/ (WAL, synchronous=NORMAL,
as GRDB's DatabasePool opens it), then inserts request + attempt rows the way
GatewayStore's `AppDatabase.insert` does (INSERT OR IGNORE, one transaction per batch), and prints
the CPU time and the bytes written per row for every 50,000 rows, for three variants:

- random: 16 random hex digits as request_id (what ProxyHandler.newRequestID makes today);
- ordered: a time-ordered request_id (milliseconds, then a counter), same length;
- ordered, lean: ordered ids and only the started_at indexes on requests and attempts.

The CPU figures include Python's own per-row cost (a few microseconds); compare the variants.
The daily-totals fold of migration 0002 (if present) is not run here.

    python3 bench/log_insert_cost.py [ROWS] [BATCH]      # defaults: 300000 rows, batches of 200
"""

import glob
import os
import random
import sqlite3
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEAN_DROP = ["requests_client_started", "requests_model_started", "requests_key_started",
             "requests_upstream_started", "attempts_key_started", "attempts_upstream_started"]

REQUEST_SQL = """INSERT OR IGNORE INTO requests (
    request_id, started_at, client_id, client_name, method, endpoint, api_version, model,
    is_stream, status, outcome, attempt_count, key_id, key_fingerprint, upstream_id, upstream_url,
    latency_ms, ttfb_ms, request_bytes, response_bytes, prompt_tokens, cached_tokens,
    candidates_tokens, thoughts_tokens, tool_use_tokens, total_tokens, usage_status,
    error_status, error_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"""
ATTEMPT_SQL = """INSERT OR IGNORE INTO attempts (
    request_id, attempt, started_at, key_id, upstream_id, status, verdict, google_status,
    reason, quota_id, latency_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)"""


def written():
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def run(variant, total, batch, step=50000):
    folder = os.path.join(ROOT, "bench", "out")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "log-insert-cost.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=OFF")
    for migration in sorted(glob.glob(os.path.join(ROOT, "migrations", "*.sql"))):
        db.executescript(open(migration).read())
    if variant == "ordered, lean":
        for name in LEAN_DROP:
            db.execute("DROP INDEX IF EXISTS %s" % name)
    ordered = variant.startswith("ordered")
    base_ms = int(time.time() * 1000)
    counter = 0
    n = 0
    marks = []
    cpu0, w0 = time.process_time(), written()
    while n < total:
        requests, attempts = [], []
        for _ in range(batch):
            counter += 1
            if ordered:
                request_id = "%012x%04x" % (base_ms + counter // 5, counter & 0xFFFF)
            else:
                request_id = "%016x" % random.getrandbits(64)
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(base_ms / 1000 + counter / 5000)) + ".123"
            key, upstream = random.randint(1, 100), random.randint(1, 3)
            requests.append((request_id, at, None, "bench", "POST", "generateContent", "v1beta", "gemini-2.5-flash", 0, 200,
                             "success", 1, key, "abcdef123456", upstream, "http://127.0.0.1:18401", 1.23, 1.1, 180, 1337,
                             24, 0, 176, 188, 0, 388, "complete", None, None))
            attempts.append((request_id, 1, at, key, upstream, 200, "success", None, None, None, 1.2))
        db.execute("BEGIN")
        db.executemany(REQUEST_SQL, requests)
        db.executemany(ATTEMPT_SQL, attempts)
        db.execute("COMMIT")
        n += batch
        if n % step == 0:
            cpu, w = time.process_time(), written()
            marks.append("%3dk rows: %3.0f us, %6.0f B" % (n // 1000, (cpu - cpu0) * 1e6 / step, (w - w0) / step))
            cpu0, w0 = cpu, w
    db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    print("%-14s per row: %s" % (variant, " | ".join(marks)), flush=True)


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 300000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    print("batches of %d rows; CPU time and bytes written per row, for each 50k rows inserted" % batch)
    for variant in ("random", "ordered", "ordered, lean"):
        run(variant, total, batch)


if __name__ == "__main__":
    main()
