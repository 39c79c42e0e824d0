#!/usr/bin/env python3
"""The fake upstream's streaming half: answers every POST with a Gemini-style SSE stream.

`:streamGenerateContent?alt=sse` answers are `text/event-stream`, one `data: <one-line JSON>`
event per chunk, CRLF framing (`\\r\\n\\r\\n`), `usageMetadata` a running total in every event and
`finishReason: STOP` in the last. The first event is sent at once, the next ones EVENTS-1 times
INTERVAL apart (absolute schedule, so no drift). HTTP/1.1 keep-alive with chunked encoding, so the
nginx in front of it can pool connections.

Standard library only (asyncio protocols); uses uvloop when Debian's python3-uvloop is installed.
Loopback only: it binds 127.0.0.1.

    python3 bench/sse_upstream.py --port 18402 [--events 10] [--interval 0.05]
"""

import argparse
import asyncio
import itertools
import json
import signal

TEXT = [
    "A reverse proxy ", "accepts the client's connection, ", "chooses a backend, ",
    "forwards the request ", "over a pooled keep-alive connection ", "and relays the answer ",
    "chunk by chunk ", "as it arrives, ", "without buffering it, ", "so the client sees every token at once.",
]


def event(model, response_id, index, count):
    prompt, per_event, thoughts = 24, 9, 0
    candidate = {"content": {"parts": [{"text": TEXT[index % len(TEXT)]}], "role": "model"}}
    if index == count - 1:
        candidate["finishReason"] = "STOP"
    candidate["index"] = 0
    candidates = per_event * (index + 1)
    body = {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": candidates,
            "totalTokenCount": prompt + candidates + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
            "thoughtsTokenCount": thoughts,
        },
        "modelVersion": model,
        "responseId": response_id,
    }
    data = b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\r\n\r\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


HEAD = (b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/event-stream\r\n"
        b"Content-Disposition: attachment\r\n"
        b"Vary: Origin, X-Origin, Referer\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Server: scaffolding on HTTPServer2\r\n"
        b"X-Content-Type-Options: nosniff\r\n\r\n")

NOT_FOUND = b'{"error":{"code":404,"message":"not found","status":"NOT_FOUND"}}'


class Stream(asyncio.Protocol):
    counter = itertools.count(1)

    def __init__(self, events, interval):
        self.events, self.interval = events, interval
        self.buffer = b""
        self.transport = None
        self.timer = None
        self.busy = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if self.timer:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data):
        self.buffer += data
        self.process()

    def process(self):
        while not self.busy and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            lines = head.split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            parts = lines[0].split(" ")
            target = parts[1] if len(parts) > 1 else "/"
            path = target.split("?", 1)[0]
            if ":streamGenerateContent" not in path:
                self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: %d\r\n\r\n%s" % (len(NOT_FOUND), NOT_FOUND))
                continue
            model = path.rsplit("/", 1)[-1].split(":", 1)[0]
            self.start(model)

    def start(self, model):
        self.busy = True
        loop = asyncio.get_running_loop()
        response_id = "bench-%d" % next(Stream.counter)
        self.transport.write(HEAD + event(model, response_id, 0, self.events))
        start = loop.time()

        def send(index):
            self.timer = None
            if self.transport is None:
                return
            chunk = event(model, response_id, index, self.events)
            if index == self.events - 1:
                self.transport.write(chunk + b"0\r\n\r\n")
                self.busy = False
                self.process()
                return
            self.transport.write(chunk)
            self.timer = loop.call_at(start + (index + 1) * self.interval, send, index + 1)

        if self.events > 1:
            self.timer = loop.call_at(start + self.interval, send, 1)
        else:
            self.transport.write(b"0\r\n\r\n")
            self.busy = False


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Stream(args.events, args.interval), "127.0.0.1", args.port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        import uvloop  # Debian: python3-uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
