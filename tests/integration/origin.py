#!/usr/bin/python3
"""The local service that the integration tests expose through a tunnel.

Two modes:
  origin.py --port P [--log FILE]   HTTP/1.1 keep-alive server (endpoints below)
  origin.py --port P --ws           WebSocket echo server (python3-websockets)

HTTP endpoints:
  GET  /hello                        small text body
  GET  /bytes?n=N&seed=S[&tag=T]     N deterministic pseudo-random bytes, streamed,
                                     with Content-Length (see pattern_chunks)
  GET  /chunked?n=N&seed=S&chunk=C   the same bytes, Transfer-Encoding: chunked
  POST|PUT /sha256[?rate=B&tag=T]    body (Content-Length or chunked) hashed as it
                                     streams (read at B bytes/s if rate is given);
                                     replies {"sha256": hex, "length": n}
  POST /echo                         replies the request body
  GET  /headers                      replies the request head as JSON
  GET  /sse?n=N&interval_ms=M        text/event-stream, one flushed chunk per event
  GET  /slow?delay_ms=D              waits D ms, then replies "slow done"
  GET  /status?code=N                replies with that status
  GET  /drop                         closes the connection without any answer
  GET  /_count                       {"count": requests seen (not counting /_count, /_stats)}
  GET  /_stats                       {"count": .., "sent": {tag: bytes written so far},
                                      "recv": {tag: body bytes read so far}}

Every request line that reaches the server is counted, also the ones it cannot
parse, so a test can assert that a request the edge must reject never got here.
The pattern helpers are imported by the tests to compute expected digests.
"""

import argparse
import hashlib
import json
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BLOCK = 1 << 20
_BASE = random.Random(20240611).randbytes(BLOCK)


def _block(seed, i):
    """Block i (BLOCK bytes) of the stream for seed: a rotation of one shared
    random block, prefixed with (seed, i) so that no two blocks are equal and a
    repeated, dropped or reordered block changes the digest."""
    rot = (seed * 1000003 + i * 7919 + 17) % BLOCK
    head = seed.to_bytes(8, "big") + i.to_bytes(8, "big")
    if rot >= 16:
        return head + _BASE[rot:] + _BASE[16:rot]
    return head + _BASE[16:]


def pattern_chunks(n, seed=0, chunk=BLOCK):
    """Yield the first n bytes of the stream for seed, in pieces of at most chunk."""
    i = 0
    left = n
    while left > 0:
        b = memoryview(_block(seed, i))
        take = min(left, BLOCK)
        off = 0
        while off < take:
            step = min(chunk, take - off)
            yield b[off:off + step]
            off += step
        left -= take
        i += 1


def pattern_bytes(n, seed=0):
    return b"".join(bytes(c) for c in pattern_chunks(n, seed))


def pattern_sha256(n, seed=0):
    h = hashlib.sha256()
    for c in pattern_chunks(n, seed):
        h.update(c)
    return h.hexdigest()


class State:
    def __init__(self, log_path):
        self.lock = threading.Lock()
        self.count = 0
        self.sent = {}
        self.recv = {}
        self.log_path = log_path

    def seen(self, line):
        with self.lock:
            self.count += 1
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write("%.3f %s\n" % (time.time(), line))

    def add_recv(self, tag, n):
        if tag is None:
            return
        with self.lock:
            self.recv[tag] = self.recv.get(tag, 0) + n

    def add_sent(self, tag, n):
        if tag is None:
            return
        with self.lock:
            self.sent[tag] = self.sent.get(tag, 0) + n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "warren-test-origin"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self):
        line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        parts = line.split()
        path = parts[1] if len(parts) > 1 else ""
        if not (path.startswith("/_count") or path.startswith("/_stats")):
            self.server.state.seen(line)
        return super().parse_request()

    # -- helpers ---------------------------------------------------------
    def _query(self):
        u = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        return u.path, q

    def _reply(self, code, body, ctype="text/plain; charset=utf-8", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self, piece=1 << 20):
        """Yield the request body in pieces (Content-Length or chunked)."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return
                left = size
                while left > 0:
                    d = self.rfile.read(min(left, piece))
                    if not d:
                        raise ConnectionError("eof in chunk")
                    left -= len(d)
                    yield d
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length", "0") or "0")
            while left > 0:
                d = self.rfile.read(min(left, piece))
                if not d:
                    raise ConnectionError("eof in body")
                left -= len(d)
                yield d

    # -- methods ---------------------------------------------------------
    def do_GET(self):
        path, q = self._query()
        st = self.server.state
        if path == "/hello":
            self._reply(200, "hello from origin\n")
        elif path == "/bytes":
            n = int(q.get("n", "0"))
            seed = int(q.get("seed", "0"))
            tag = q.get("tag")
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            for c in pattern_chunks(n, seed, 64 * 1024 if tag else BLOCK):
                self.wfile.write(c)
                st.add_sent(tag, len(c))
        elif path == "/chunked":
            n = int(q.get("n", "0"))
            seed = int(q.get("seed", "0"))
            chunk = int(q.get("chunk", str(16384)))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for c in pattern_chunks(n, seed, chunk):
                self.wfile.write(b"%x\r\n" % len(c) + bytes(c) + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/headers":
            body = json.dumps({
                "method": self.command,
                "path": self.path,
                "version": self.request_version,
                "client": self.client_address[0],
                "headers": [[k, v] for k, v in self.headers.items()],
            })
            self._reply(200, body, "application/json")
        elif path == "/sse":
            n = int(q.get("n", "5"))
            interval = int(q.get("interval_ms", "300")) / 1000.0
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(n):
                ev = ("id: %d\ndata: event %d t=%.3f\n\n" % (i, i, time.time())).encode()
                self.wfile.write(b"%x\r\n" % len(ev) + ev + b"\r\n")
                self.wfile.flush()
                if i + 1 < n:
                    time.sleep(interval)
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/slow":
            time.sleep(int(q.get("delay_ms", "1000")) / 1000.0)
            self._reply(200, "slow done\n")
        elif path == "/status":
            code = int(q.get("code", "200"))
            self._reply(code, "status %d\n" % code)
        elif path == "/drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif path == "/_count":
            with st.lock:
                c = st.count
            self._reply(200, json.dumps({"count": c}), "application/json")
        elif path == "/_stats":
            with st.lock:
                body = json.dumps({"count": st.count, "sent": dict(st.sent),
                                   "recv": dict(st.recv)})
            self._reply(200, body, "application/json")
        else:
            self._reply(404, "origin: no such path %s\n" % path)

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        path, q = self._query()
        if path == "/sha256":
            rate = int(q.get("rate", "0"))
            tag = q.get("tag")
            h = hashlib.sha256()
            n = 0
            t0 = time.monotonic()
            for d in self._read_body(16384 if rate else 1 << 20):
                h.update(d)
                n += len(d)
                self.server.state.add_recv(tag, len(d))
                if rate:
                    ahead = n / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            self._reply(200, json.dumps({"sha256": h.hexdigest(), "length": n}),
                        "application/json")
        elif path == "/echo":
            body = b"".join(self._read_body())
            self._reply(200, body, self.headers.get("Content-Type", "application/octet-stream"))
        else:
            for _ in self._read_body():
                pass
            self._reply(404, "origin: no such path %s\n" % path)

    def do_PUT(self):
        self.do_POST()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


class Server6(Server):
    address_family = socket.AF_INET6


def run_http(port, log_path, host):
    srv = (Server6 if ":" in host else Server)((host, port), Handler)
    srv.state = State(log_path)
    srv.serve_forever(poll_interval=0.2)


def run_ws(port, host):
    import asyncio
    import websockets

    async def echo(ws, path=None):
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async def main():
        async with websockets.serve(echo, host, port, max_size=None, compression=None):
            await asyncio.Future()

    asyncio.run(main())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--ws", action="store_true")
    ap.add_argument("--log")
    a = ap.parse_args()
    try:
        if a.ws:
            run_ws(a.port, a.host)
        else:
            run_http(a.port, a.log, a.host)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
