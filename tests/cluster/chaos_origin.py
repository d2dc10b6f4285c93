#!/usr/bin/python3
"""The local services of the chaos scenario (test_chaos.py): one asyncio
process listening on one port per tunnel, so twenty origins cost one Python
interpreter. Each port knows the tunnel it belongs to.

    chaos_origin.py --records FILE --tunnel NAME [--tunnel NAME ...]

Each tunnel's port is picked by the kernel (127.0.0.1, port 0); once all
listen, one JSON line on stdout names them: {"ports": {"NAME": PORT, ...}}.

Endpoints (every stream names itself with sid, its tunnel with t):
  GET  /dl?sid=S&t=NAME&n=N&seed=X&te=cl|chunked|close[&chunk=C]
       N bytes of the pattern for seed X (tests/integration/origin.py), with
       Content-Length, chunked (pieces of at most C bytes, 0 < C), or
       delimited by the end of the connection (Connection: close, neither
       header: only a reset, never a clean close, may tell a visitor that
       such a body was cut short)
  POST /ul?sid=S&t=NAME&n=N&seed=X
       a body (Content-Length or chunked) compared with the pattern for seed X
       and hashed as it arrives; replies 200 {"sid","tunnel","length","sha256",
       "prefix_ok"} once the body is complete
  GET  /raw?sid=S&t=NAME&n=N&seed=X&dir=down|up   with Upgrade: chaos-raw
       101, then the connection is a raw pipe: "down" sends N pattern bytes
       and closes; "up" reads until the visitor's EOF, comparing, then
       answers "OK <sha256>\n" if exactly N bytes came, and closes. Only a
       reset may tell either side that the other was cut off.
  GET  /hello?t=NAME     200 "hello NAME from OWN's tunnel\n" (OWN: this port's tunnel)

What the origin saw is appended to FILE as JSON lines, flushed at once:
{"ev":"start","sid",...} when a /dl or /ul head arrives and
{"ev":"end","sid",...,"outcome":"complete"|"error"} when it ends, with the
byte count, the SHA-256 of the bytes sent or received, whether every byte
matched the pattern at its offset (prefix_ok: a byte of another stream would
not), the tunnel whose port the request reached and the X-Forwarded-Host it
carried. A download is "complete" when every byte was handed to the kernel
(the origin cannot know more); an upload when the whole body arrived.
Anything else (a reset, EOF before Content-Length or before the last chunk, a
bad chunk) is "error" with the reason; a raw upload that ended with a clean
EOF before N bytes is "short", the one outcome that must never happen.
"""

import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
import time
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from origin import BLOCK, _block, pattern_chunks  # noqa: E402

MAX_HEAD = 64 * 1024
PIECE = 256 * 1024


class PatternCheck:
    """Feed a byte stream; it is hashed and compared, byte for byte, with the
    pattern for seed (tests/integration/origin.py) at the same offset."""

    def __init__(self, seed):
        self.seed = seed
        self.n = 0
        self.ok = True
        self.bad_at = None
        self._h = hashlib.sha256()
        self._bi = -1
        self._b = b""

    def feed(self, data):
        self._h.update(data)
        if self.ok:
            pos = 0
            while pos < len(data):
                bi, bo = divmod(self.n + pos, BLOCK)
                if bi != self._bi:
                    self._b = _block(self.seed, bi)
                    self._bi = bi
                k = min(len(data) - pos, BLOCK - bo)
                got = bytes(data[pos:pos + k])
                if got != self._b[bo:bo + k]:
                    i = next(j for j in range(k) if got[j] != self._b[bo + j])
                    self.ok = False
                    self.bad_at = self.n + pos + i
                    break
                pos += k
        self.n += len(data)

    def hexdigest(self):
        return self._h.hexdigest()


class Records:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def write(self, rec):
        rec["time"] = round(time.time(), 4)
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")


class BadRequest(Exception):
    pass


async def send(writer, data):
    """Write one piece and let the other streams have a turn: drain() does not
    yield while the socket takes everything, and one fast stream must not hold
    the loop (the scenario's polls time the tunnels, not this process)."""
    writer.write(data)
    await writer.drain()
    await asyncio.sleep(0)


async def read_head(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest("head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line %r" % lines[0][:80])
    hdrs = {}
    for line in lines[1:]:
        if not line:
            continue
        k, sep, v = line.partition(":")
        if not sep:
            raise BadRequest("bad header line %r" % line[:80])
        hdrs[k.strip().lower()] = v.strip()
    return parts[0], parts[1], hdrs


async def body_pieces(reader, hdrs):
    """Yield the request body in pieces; raises on a short or malformed body."""
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                raise ConnectionError("EOF in a chunk size line")
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ConnectionError("bad chunk size %r" % line[:40])
            if size == 0:
                while True:
                    t = await reader.readline()
                    if not t.endswith(b"\n"):
                        raise ConnectionError("EOF in the trailer")
                    if t in (b"\r\n", b"\n"):
                        return
            left = size
            while left:
                d = await reader.read(min(left, PIECE))
                if not d:
                    raise ConnectionError("EOF inside a chunk (%d bytes missing)" % left)
                left -= len(d)
                yield d
                await asyncio.sleep(0)
            if await reader.readexactly(2) != b"\r\n":
                raise ConnectionError("chunk not followed by CRLF")
    else:
        left = int(hdrs.get("content-length", "0") or "0")
        while left:
            d = await reader.read(min(left, PIECE))
            if not d:
                raise ConnectionError("EOF with %d body bytes missing" % left)
            left -= len(d)
            yield d
            await asyncio.sleep(0)


class Origin:
    def __init__(self, records):
        self.rec = records

    async def serve(self, own, reader, writer):
        try:
            while True:
                try:
                    method, target, hdrs = await read_head(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                u = urlsplit(target)
                q = {k: v[-1] for k, v in parse_qs(u.query).items()}
                if u.path == "/hello":
                    body = ("hello %s from %s's tunnel\n" % (q.get("t", "?"), own)).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                    await writer.drain()
                elif u.path == "/raw":
                    await self.raw(own, q, hdrs, reader, writer)
                    return
                elif u.path in ("/dl", "/ul"):
                    if not await self.stream(own, method, u.path, q, hdrs, reader, writer):
                        return
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                    await writer.drain()
                    return
        except (ConnectionError, BadRequest, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def stream(self, own, method, path, q, hdrs, reader, writer):
        """One /dl or /ul; returns False when the connection must end."""
        sid = q.get("sid", "?")
        n = int(q.get("n", "0"))
        seed = int(q.get("seed", "0"))
        base = {"sid": sid, "tunnel": own, "t": q.get("t"), "path": path, "method": method,
                "n": n, "xfh": hdrs.get("x-forwarded-host"), "te": q.get("te")}
        self.rec.write(dict(base, ev="start"))
        t0 = time.monotonic()
        end = dict(base, ev="end")
        chk = PatternCheck(seed)
        try:
            if path == "/dl":
                await self.download(q, n, seed, chk, writer)
            else:
                async for d in body_pieces(reader, hdrs):
                    chk.feed(d)
                end.update(outcome="complete", bytes=chk.n, sha256=chk.hexdigest(),
                           prefix_ok=chk.ok, bad_at=chk.bad_at)
                body = json.dumps({"sid": sid, "tunnel": own, "length": chk.n,
                                   "sha256": chk.hexdigest(), "prefix_ok": chk.ok}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                try:
                    await writer.drain()
                except ConnectionError as ex:
                    end["reply_error"] = "%s: %s" % (type(ex).__name__, ex)
                end["secs"] = round(time.monotonic() - t0, 3)
                self.rec.write(end)
                return "reply_error" not in end
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as ex:
            end.update(outcome="error", err="%s: %s" % (type(ex).__name__, ex), bytes=chk.n,
                       sha256=chk.hexdigest(), prefix_ok=chk.ok, bad_at=chk.bad_at,
                       secs=round(time.monotonic() - t0, 3))
            self.rec.write(end)
            return False
        end.update(outcome="complete", bytes=chk.n, sha256=chk.hexdigest(), prefix_ok=chk.ok,
                   bad_at=chk.bad_at, secs=round(time.monotonic() - t0, 3))
        self.rec.write(end)
        return q.get("te") != "close"

    async def raw(self, own, q, hdrs, reader, writer):
        sid = q.get("sid", "?")
        n = int(q.get("n", "0"))
        up = q.get("dir") == "up"
        end = {"sid": sid, "tunnel": own, "t": q.get("t"), "path": "/raw", "method": "GET",
               "n": n, "xfh": hdrs.get("x-forwarded-host"), "te": q.get("dir"), "ev": "end"}
        self.rec.write(dict(end, ev="start"))
        t0 = time.monotonic()
        chk = PatternCheck(int(q.get("seed", "0")))
        try:
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         b"Upgrade: chaos-raw\r\n\r\n")
            await writer.drain()
            if up:
                while True:
                    d = await reader.read(PIECE)
                    if not d:
                        break
                    chk.feed(d)
                    await asyncio.sleep(0)
                if chk.n != n:
                    end.update(outcome="short", err="clean EOF after %d of %d bytes" % (chk.n, n))
                else:
                    end.update(outcome="complete")
                    writer.write(b"OK %s\n" % chk.hexdigest().encode())
                    await writer.drain()
            else:
                for c in pattern_chunks(n, chk.seed, 64 * 1024):
                    c = bytes(c)
                    chk._h.update(c)
                    await send(writer, c)
                    chk.n += len(c)
                end.update(outcome="complete")
        except (ConnectionError, asyncio.IncompleteReadError) as ex:
            end.update(outcome="error", err="%s: %s" % (type(ex).__name__, ex))
        end.update(bytes=chk.n, sha256=chk.hexdigest(), prefix_ok=chk.ok, bad_at=chk.bad_at,
                   secs=round(time.monotonic() - t0, 3))
        self.rec.write(end)

    async def download(self, q, n, seed, chk, writer):
        chunked = q.get("te") == "chunked"
        piece = max(1, int(q.get("chunk", str(64 * 1024))))
        if chunked:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
        elif q.get("te") == "close":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Connection: close\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % n)
        for c in pattern_chunks(n, seed, piece):
            c = bytes(c)
            chk._h.update(c)  # hashed as sent, not compared (it is the pattern)
            await send(writer, b"%x\r\n" % len(c) + c + b"\r\n" if chunked else c)
            chk.n += len(c)  # handed to the kernel
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()


async def main(tunnels, records_path):
    org = Origin(Records(records_path))
    servers = []
    ports = {}
    for name in tunnels:
        async def handler(r, w, name=name):
            await org.serve(name, r, w)
        srv = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=512, limit=MAX_HEAD)
        servers.append(srv)
        ports[name] = srv.sockets[0].getsockname()[1]
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", required=True)
    ap.add_argument("--tunnel", action="append", default=[], help="a tunnel name")
    a = ap.parse_args()
    asyncio.run(main(a.tunnel, a.records))
    sys.exit(0)
