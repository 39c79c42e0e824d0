#!/usr/bin/env python3
"""How fast a 429 seen by one gateway instance reaches another sharing the PostgreSQL store
(issue 25: "shared within about 1 s, target p99 under 200 ms with NOTIFY").

    BENCH_SKIP_BUILD=1 bench/propagation.py [SAMPLES]     # 100 by default

Starts its own throwaway PostgreSQL cluster (scripts/pg-test-cluster), a fake upstream in this
process, and two `serve` processes A and B (release build, default settings but
`--metrics-public`, so that B's /metrics can be read without the admin token) on one database.
Each sample throttles one more key: the fake answers that key with a per-minute 429 (retry in an
hour), requests go through A until A has sent it the key, and B's /metrics is read in a tight loop
until B counts one more cooling key. A sample is the time from the fake writing the 429 to B's
answer that shows it: A's verdict, its write of the cooldown and NOTIFY, B's read and fold, plus
at most one /metrics round trip of slack. B never sends a request. Loopback only; every loop is
bounded. Prints the samples' median, p90, p99 and max, and exits 1 if any sample did not arrive
within 5 s.
"""

import http.client
import http.server
import json
import os
import secrets
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = int(sys.argv[1]) if len(sys.argv) > 1 else 100
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
OK_BODY = open(os.path.join(ROOT, "bench/fixtures/generateContent.json"), "rb").read()
THROTTLE_BODY = open(os.path.join(ROOT, "Sources/FakeGemini/Fixtures/429-per-minute.json"), "rb").read() \
    .replace(b'"retryDelay":"26s"', b'"retryDelay":"3600s"')
assert b"3600s" in THROTTLE_BODY, "Sources/FakeGemini/Fixtures/429-per-minute.json no longer asks for 26s"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_key():
    alphabet = string.ascii_letters + string.digits + "-_"
    return "AIzaSy" + "".join(secrets.choice(alphabet) for _ in range(33))


class Fake:
    """Answers 200, except a 429 to the one key being throttled; notes when it sent that 429."""

    def __init__(self):
        self.lock = threading.Lock()
        self.throttled = None
        self.throttled_at = None
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle the body would wait for the
            # gateway's delayed ACK (40 ms) after the 429 was noted as sent.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("x-goog-api-key", "")
                with fake.lock:
                    throttle = key == fake.throttled
                body = THROTTLE_BODY if throttle else OK_BODY
                self.send_response(429 if throttle else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if throttle:
                    with fake.lock:
                        fake.throttled_at = fake.throttled_at or time.monotonic()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def throttle(self, key):
        with self.lock:
            self.throttled, self.throttled_at = key, None

    def sent_429_at(self):
        with self.lock:
            return self.throttled_at


def wait_for(what, condition, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("propagation: %s did not happen within %d s" % (what, seconds))


def cooling(connection):
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith('gemini_gateway_keys{state="cooling"} '):
            return int(float(line.split()[-1]))
    return 0


def main():
    gateway = os.environ.get("BENCH_GATEWAY")
    if not gateway:
        if os.environ.get("BENCH_SKIP_BUILD") != "1":
            subprocess.run(["swift", "build", "-c", "release", "--product", "gemini-gateway"], cwd=ROOT, check=True)
        bin_path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout.strip()
        gateway = os.path.join(bin_path, "gemini-gateway")
    control = os.path.join(ROOT, "scripts/pg-test-cluster")
    work = tempfile.mkdtemp(prefix="gateway-propagation.")
    # Its own temp directory: as root the server runs as `postgres`, which cannot enter `work`.
    pg_dir, pg_port = tempfile.mkdtemp(prefix="gateway-propagation-pg."), free_port()
    processes = []
    try:
        subprocess.run([control, "start", pg_dir, str(pg_port)], check=True)
        store = "postgres://gateway@127.0.0.1:%d/postgres" % pg_port
        fake = Fake()
        keys = [fake_key() for _ in range(SAMPLES + 1)]
        with open(os.path.join(work, "api_keys.txt"), "w") as f:
            f.write("".join("%s proj-%d\n" % (key, i) for i, key in enumerate(keys)))
        with open(os.path.join(work, "proxy_urls.txt"), "w") as f:
            f.write("http://127.0.0.1:%d\n" % fake.port)
        run = lambda *args: subprocess.run([gateway, *args, "--store", store], cwd=work, check=True,
                                           capture_output=True, text=True).stdout
        run("import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt")
        token = json.loads(run("clients", "add", "bench", "--json"))["token"]
        ports = {}
        for name in ("a", "b"):
            ports[name] = free_port()
            log = open(os.path.join(work, name + ".log"), "w")
            processes.append(subprocess.Popen([gateway, "serve", "--store", store, "--host", "127.0.0.1",
                                               "--port", str(ports[name]), "--metrics-public"], cwd=work, stdout=log, stderr=log))
        a = http.client.HTTPConnection("127.0.0.1", ports["a"], timeout=10)
        b = http.client.HTTPConnection("127.0.0.1", ports["b"], timeout=10)
        wait_for("A and B serving", lambda: all(socket.create_connection(("127.0.0.1", p), 1).close() is None
                                                for p in ports.values()))
        wait_for("B's metrics", lambda: cooling(b) == 0)
        body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        samples, missed = [], 0
        for i, key in enumerate(keys[:SAMPLES]):
            fake.throttle(key)
            # A rotates over its healthy keys: within two rounds of them it has sent this one.
            for _ in range(2 * len(keys)):
                a.request("POST", GENERATE, body=body, headers={"Content-Type": "application/json", "x-goog-api-key": token})
                response = a.getresponse()
                response.read()
                if response.status != 200:
                    sys.exit("propagation: A answered %d" % response.status)
                if fake.sent_429_at() is not None:
                    break
            sent = fake.sent_429_at()
            if sent is None:
                sys.exit("propagation: A never sent key %d of %d within %d requests" % (i + 1, len(keys), 2 * len(keys)))
            deadline = sent + 5
            while cooling(b) < i + 1:
                if time.monotonic() > deadline:
                    missed += 1
                    print("propagation: sample %d: B still counts %d cooling keys after 5 s" % (i + 1, cooling(b)), file=sys.stderr)
                    break
            else:
                samples.append(time.monotonic() - sent)
        samples.sort()
        ms = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000
        print("| samples | median | p90 | p99 | max | missed (> 5 s) |")
        print("|---|---|---|---|---|---|")
        print("| %d | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %d |" % (
            len(samples), statistics.median(samples) * 1000, ms(0.9), ms(0.99), samples[-1] * 1000, missed))
        return 1 if missed else 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run([control, "stop", pg_dir, str(pg_port)])
        subprocess.run(["rm", "-rf", work, pg_dir])


if __name__ == "__main__":
    # A SIGTERM (`timeout`, a CI runner) unwinds like an error, so the cluster and gateways stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
