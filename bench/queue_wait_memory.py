"""Memory per waiting request (issue 23): a gateway whose only upstream answers every key with
Google's per-minute 429 (retryDelay 300 s), then 1,000 clients that wait for a key; the gateway's
RSS before and after they wait, per waiter. With IDLE=1 the 1,000 clients only connect (the cost
of an idle connection, for comparison). Contacts only 127.0.0.1.

    swift build -c release --product gemini-gateway
    python3 bench/queue_wait_memory.py .build/release/gemini-gateway /tmp/qwm
    IDLE=1 python3 bench/queue_wait_memory.py .build/release/gemini-gateway /tmp/qwm"""
import http.server, json, os, socket, subprocess, sys, threading, time, urllib.request


def until(condition, seconds=120):
    """Waits for condition(), polling; fails the run after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            sys.exit("timed out waiting")
        time.sleep(0.1)


binary, work = sys.argv[1], sys.argv[2]
IDLE = os.environ.get("IDLE") == "1"
os.makedirs(work, exist_ok=True)
body = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "per-minute-429.json"), "rb").read()

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(429); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=upstream.serve_forever, daemon=True).start()
uport = upstream.server_address[1]
open(f"{work}/keys.txt", "w").write("\n".join(f"AIzaFAKE-key-m{i:03d}-0000000000000000000m" for i in range(4)))
open(f"{work}/up.txt", "w").write(f"http://127.0.0.1:{uport}\n")
gport = 18871
db = f"{work}/g.db"
if os.path.exists(db): os.remove(db)
env = dict(os.environ, GEMINI_GATEWAY_LOG_LEVEL="warning")
proc = subprocess.Popen([binary, "serve", "--db", db, "--keys", f"{work}/keys.txt", "--upstreams", f"{work}/up.txt",
    "--host", "127.0.0.1", "--port", str(gport), "--proxy-key", "gw-mem", "--admin-token", "adm", "--metrics-public",
    "--max-queue-wait", "600", "--max-queued", "2000", "--retry-budget", "600"], env=env,
    stdout=subprocess.DEVNULL, stderr=open(f"{work}/gw.log", "w"))
def rss(): return int([l for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmRSS")][0].split()[1])
def queued():
    text = urllib.request.urlopen(f"http://127.0.0.1:{gport}/metrics").read().decode()
    return int(float([l for l in text.splitlines() if l.startswith("gemini_gateway_queued_requests ")][0].split()[1]))
for _ in range(200):
    try: queued(); break
    except Exception: time.sleep(0.1)
req = (b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: gw-mem\r\n"
       b"content-type: application/json\r\ncontent-length: 40\r\n\r\n" + b'{"contents":[{"parts":[{"text":"hi"}]}]}')
def send(n, idle=False):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", gport)); (None if idle else s.sendall(req)); socks.append(s)
    return socks
# Warm up: cool every key and let a few requests wait and leave (allocator pools, metrics series).
warm = send(20)
until(lambda: queued() >= 20)
for s in warm: s.close()
until(lambda: queued() == 0)
time.sleep(1)
before = rss()
socks = send(1000, IDLE)
until(lambda: IDLE or queued() >= 1000)
time.sleep(1)
after = rss()
print(json.dumps({"rss_before_kib": before, "rss_after_kib": after, "per_waiter_bytes": (after - before) * 1024 / 1000}))
for s in socks: s.close()
proc.terminate(); proc.wait()
