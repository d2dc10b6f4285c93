#!/usr/bin/python3
"""Hostile and careless clients for the limit scenarios, in one asyncio
process (so that the scenario's own probe is not slowed by them). Loopback
only: every target is 127.0.0.1, sources are 127.0.0.0/8 addresses.

  loadgen.py slow  --port P --host H --duration S --slowloris N --slowbody N --slowread N
        N connections per class, each slot reconnecting after its connection
        ends, until S seconds have passed:
          slowloris  a request head sent one byte per --interval s, never finished
          slowbody   a head announcing Content-Length, then one body byte per --interval s
          slowread   GET of a large body, then one byte read per --interval s
                     (SO_RCVBUF as small as it goes: the edge soon sees a zero window)
        Every connection ends as one record: class, how it ended (status 408,
        503..., "reset" or "eof" without an answer, "open" at the end of the
        run), when: "after" seconds since the first head byte was sent
        (slowloris), since the head was sent (slowbody), since the response
        head arrived (slowread, which also has "after_request", since the
        request was sent).
  loadgen.py junk  --port P --count N --sources A-B
        N bad tunnel handshakes, round-robin over source addresses 127.0.0.A ..
        127.0.0.B, of the kinds in JUNK_KINDS; each record says what the edge
        answered (HTTP status, the ERROR code and close code of the WebSocket,
        or nothing).
  loadgen.py flood --port P --count N --source ADDR
        N tunnel handshakes from one address as fast as they are answered;
        records the HTTP status and Retry-After of each.
  loadgen.py churn --port P --host H --duration S --concurrency C [--raw-host H2]
        C visitors that each request a large body and reset the connection
        after the first 64 KiB of it (H), and, with --raw-host, C more that
        request from a tunnel whose client resets or cuts every stream.
  loadgen.py rawtunnel --port P --name NAME --duration S
        a tunnel client speaking the protocol itself (docs/protocol.md) that
        answers each stream by resetting it, by sending half a response and
        resetting it, or by a whole response; prints "online" when welcomed.

Results: one JSON object on stdout at the end ({"records": [...], ...}).
Every loop is bounded by --duration or --count and by a deadline.
"""

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import struct
import sys
import time

TCP_INFO_STATE = {1: "established", 7: "close", 8: "close_wait", 4: "fin_wait1", 5: "fin_wait2",
                  6: "time_wait", 9: "last_ack", 11: "closing"}


def tcp_state(sock):
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return "gone"
    return TCP_INFO_STATE.get(info[0], str(info[0]))


def last_data_age(sock):
    """Seconds since the kernel last received data on sock (tcpi_last_data_recv):
    when an answer arrived, even if this process only looks much later."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return 0.0
    return struct.unpack_from("I", info, 52)[0] / 1000.0


def new_sock(source=None, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        s.bind((source, 0))
    return s


def reset_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def status_of(data):
    """HTTP status of the first response in data, or None."""
    if not data.startswith(b"HTTP/1."):
        return None
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


# ---------------------------------------------------------------- slow clients

class Slow:
    def __init__(self, a):
        self.a = a
        self.loop = asyncio.get_running_loop()
        self.t_end = time.monotonic() + a.duration
        self.records = []
        self.open_now = 0
        self.peak_open = 0
        self.head_waits = []  # slowread: seconds until the response head arrived

    async def connect(self, rcvbuf=None):
        s = new_sock(rcvbuf=rcvbuf)
        await asyncio.wait_for(self.loop.sock_connect(s, ("127.0.0.1", self.a.port)), 10)
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)
        return s

    def done(self, s, kind, outcome, since, extra=None, at=None):
        self.open_now -= 1
        at = at or time.monotonic()
        rec = {"kind": kind, "outcome": outcome, "after": round(at - since, 3)}
        if extra:
            rec.update(extra)
        self.records.append(rec)
        s.close()

    async def reader(self, s, box):
        """Collect what the edge sends until EOF or reset. box["first"]: when
        the first bytes arrived, by the kernel's clock."""
        try:
            while True:
                d = await self.loop.sock_recv(s, 4096)
                if not d:
                    box["end"] = "eof"
                    return
                if box["first"] is None:
                    box["first"] = time.monotonic() - last_data_age(s)
                box["data"] += d
        except (ConnectionResetError, BrokenPipeError):
            box["end"] = "reset"
        except OSError as e:
            box["end"] = "error %s" % e.errno

    async def trickle(self, kind, s, head, body_len=0):
        """Send head (all at once for slowbody, else one byte per interval),
        then body bytes one per interval, until the edge answers or closes."""
        box = {"data": b"", "first": None, "end": None}
        rd = asyncio.ensure_future(self.reader(s, box))
        since = None
        try:
            if kind == "slowbody":
                await self.loop.sock_sendall(s, head)
                since = time.monotonic()
                n = body_len
            else:
                n = len(head)
            for i in range(n):
                if box["first"] is not None or box["end"] or time.monotonic() >= self.t_end:
                    break
                await self.loop.sock_sendall(s, b"b" if kind == "slowbody" else head[i:i + 1])
                if since is None:
                    since = time.monotonic()
                try:
                    await asyncio.wait_for(asyncio.shield(rd), self.a.interval)
                except asyncio.TimeoutError:
                    pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        if since is None:
            since = time.monotonic()
        # the answer, if any, arrives now; give it a moment
        try:
            await asyncio.wait_for(asyncio.shield(rd), 0.5 if box["first"] is None else 5)
        except asyncio.TimeoutError:
            pass
        state = tcp_state(s)
        if not rd.done():
            # end the reader by shutting the socket (cancelling it could lose
            # bytes it has already received); what follows is our own doing
            ended, first = box["end"], box["first"]
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                await asyncio.wait_for(rd, 10)
            except asyncio.TimeoutError:
                rd.cancel()
            if state == "established" and first is None:
                box["end"] = ended
        st = status_of(box["data"])
        if st is not None:
            outcome = str(st)
        elif box["end"]:
            outcome = box["end"]
        elif state != "established":
            outcome = state
        else:
            outcome = "open"
        self.done(s, kind, outcome, since, at=box["first"] if st is not None else None)
        return outcome

    async def slow_read(self, s):
        """A big GET, read one byte per interval once the response head is in."""
        a = self.a
        since = t_req = time.monotonic()
        req = ("GET /bytes?n=%d&seed=3&tag=slowread HTTP/1.1\r\nHost: %s\r\n\r\n"
               % (a.slowread_size, a.host)).encode()
        data = b""
        try:
            await self.loop.sock_sendall(s, req)
            while b"\r\n\r\n" not in data and len(data) < 8192:
                d = await asyncio.wait_for(self.loop.sock_recv(s, 512), 90)
                if not d:
                    break
                data += d
        except (OSError, asyncio.TimeoutError) as e:
            self.done(s, "slowread", "error %s" % type(e).__name__, since)
            return
        st = status_of(data)
        if st != 200:
            # refused at once (503 when the tunnel is at --max-streams): read it whole
            try:
                while True:
                    d = await asyncio.wait_for(self.loop.sock_recv(s, 4096), 5)
                    if not d:
                        break
            except (OSError, asyncio.TimeoutError):
                pass
            self.done(s, "slowread", str(st), since)
            return
        since = time.monotonic()  # the response is under way: the visitor now lags
        self.head_waits.append(round(since - t_req, 3))
        extra = {"after_request": 0.0}
        outcome = "open"
        while time.monotonic() < self.t_end:
            await asyncio.sleep(a.interval)
            state = tcp_state(s)
            if state != "established":
                outcome = "reset" if state == "close" else state
                break
            try:
                d = s.recv(1)
                if not d:
                    outcome = "eof"
                    break
            except BlockingIOError:
                pass
            except ConnectionResetError:
                outcome = "reset"
                break
        extra["after_request"] = round(time.monotonic() - t_req, 3)
        self.done(s, "slowread", outcome, since, extra)

    async def slot(self, kind, delay):
        a = self.a
        await asyncio.sleep(delay)
        while time.monotonic() < self.t_end - 1:
            try:
                s = await self.connect(rcvbuf=1024 if kind == "slowread" else None)
            except (OSError, asyncio.TimeoutError) as e:
                self.records.append({"kind": kind, "outcome": "connect %s" % type(e).__name__,
                                     "after": 0})
                await asyncio.sleep(1)
                continue
            if kind == "slowloris":
                head = ("GET /hello HTTP/1.1\r\nHost: %s\r\nUser-Agent: slowloris\r\nX-Pad: %s"
                        "\r\n\r\n" % (a.host, "p" * 200)).encode()
                outcome = await self.trickle(kind, s, head)
            elif kind == "slowbody":
                head = ("POST /sha256?tag=slowbody HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                        "\r\n" % (a.host, 1000000)).encode()
                outcome = await self.trickle(kind, s, head, body_len=1000000)
            else:
                await self.slow_read(s)
                outcome = self.records[-1]["outcome"]
            if outcome not in ("408", "reset"):
                await asyncio.sleep(1)  # refused or odd: do not hammer

    async def run(self):
        a = self.a
        n = a.slowloris + a.slowbody + a.slowread
        kinds = (["slowloris"] * a.slowloris + ["slowbody"] * a.slowbody
                 + ["slowread"] * a.slowread)
        random.Random(7).shuffle(kinds)
        tasks = [asyncio.ensure_future(self.slot(k, a.ramp * i / max(n, 1)))
                 for i, k in enumerate(kinds)]
        await asyncio.wait(tasks, timeout=a.duration + 60)
        for t in tasks:
            t.cancel()
        return {"records": self.records, "peak_open": self.peak_open,
                "head_waits": self.head_waits}


# ---------------------------------------------------------------- WebSocket bits

def ws_upgrade(host, extra=b"", version=b"13", key=True):
    k = base64.b64encode(os.urandom(16))
    return (b"GET /_tunnel HTTP/1.1\r\nHost: " + host.encode() + b"\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n" + (b"Sec-WebSocket-Key: " + k + b"\r\n" if key else b"")
            + b"Sec-WebSocket-Version: " + version + b"\r\nSec-WebSocket-Protocol: warren-tunnel"
            b"\r\n" + extra + b"\r\n")


def ws_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return hdr + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


def ws_parse(buf):
    """Server frames in buf: list of (opcode, payload), rest."""
    out = []
    while len(buf) >= 2:
        op, ln = buf[0] & 0x0f, buf[1] & 0x7f
        off = 2
        if ln == 126:
            if len(buf) < 4:
                break
            ln = struct.unpack("!H", buf[2:4])[0]
            off = 4
        elif ln == 127:
            if len(buf) < 10:
                break
            ln = struct.unpack("!Q", buf[2:10])[0]
            off = 10
        if len(buf) < off + ln:
            break
        out.append((op, buf[off:off + ln]))
        buf = buf[off + ln:]
    return out, buf


def has_head(data):
    return b"\r\n\r\n" in data


def has_close(data):
    frames, _ = ws_parse(data)
    return any(op == 8 for op, _ in frames)


async def exchange(loop, s, send, wait_s=5.0, until=None):
    """Send bytes, collect what comes back until until(data) holds, EOF,
    reset or wait_s of silence."""
    data = b""
    end = None
    try:
        if send:
            await loop.sock_sendall(s, send)
        while True:
            d = await asyncio.wait_for(loop.sock_recv(s, 65536), wait_s)
            if not d:
                end = "eof"
                break
            data += d
            if until and until(data):
                end = "done"
                break
    except asyncio.TimeoutError:
        end = "silent"
    except (ConnectionResetError, BrokenPipeError):
        end = "reset"
    return data, end


JUNK_KINDS = ["garbage", "tls", "half", "bad_json", "wrong_version", "binary_first", "no_hello",
              "bad_ws_version", "no_key", "huge_text", "bad_type"]


async def junk_one(loop, a, kind, source):
    host = "warren.test:%d" % a.port
    s = new_sock(source)
    rec = {"kind": kind, "source": source}
    try:
        await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", a.port)), 10)
        if kind == "garbage":
            data, end = await exchange(loop, s, os.urandom(64).replace(b"\n", b"x") + b"\r\n\r\n")
        elif kind == "tls":
            data, end = await exchange(loop, s, bytes.fromhex("16030100a1010000") + os.urandom(100))
        elif kind == "half":
            await loop.sock_sendall(s, ws_upgrade(host)[:40])
            data, end = b"", "closed by client"
        elif kind == "bad_ws_version":
            data, end = await exchange(loop, s, ws_upgrade(host, version=b"99"), until=has_head)
        elif kind == "no_key":
            data, end = await exchange(loop, s, ws_upgrade(host, key=False), until=has_head)
        else:
            data, end = await exchange(loop, s, ws_upgrade(host), until=has_head)
            st = status_of(data)
            if st == 101:
                rest = data[data.index(b"\r\n\r\n") + 4:]
                msg = {"bad_json": ws_frame(1, b'{"type":"hello","version":1,'),
                       "wrong_version": ws_frame(1, b'{"type":"hello","version":99,"kind":"http"}'),
                       "bad_type": ws_frame(1, b'{"type":"welcome","version":1}'),
                       "binary_first": ws_frame(2, b"\x01\x00\x00\x00\x01\x01\x00"),
                       "huge_text": ws_frame(1, b"{" + b" " * 6000 + b"}"),
                       "no_hello": b""}[kind]
                if kind == "no_hello":
                    reset_close(s)
                    rec.update(status=101, end="closed by client")
                    return rec
                more, end = await exchange(loop, s, msg, until=lambda d: has_close(rest + d))
                frames, _ = ws_parse(rest + more)
                for op, p in frames:
                    if op == 1:
                        try:
                            rec["error"] = json.loads(p).get("code")
                        except ValueError:
                            rec["error"] = "unparsable"
                    elif op == 8 and len(p) >= 2:
                        rec["close"] = struct.unpack("!H", p[:2])[0]
                rec.update(status=101, end=end)
                return rec
        rec.update(status=status_of(data), end=end)
        if data.startswith(b"HTTP/1.") and b"Retry-After:" in data:
            rec["retry_after"] = int(data.split(b"Retry-After:", 1)[1].split(b"\r\n")[0])
    except (OSError, asyncio.TimeoutError) as e:
        rec.update(status=None, end="error %s" % type(e).__name__)
    finally:
        s.close()
    return rec


async def junk(a):
    loop = asyncio.get_running_loop()
    lo, hi = (int(x) for x in a.sources.split("-"))
    sources = ["127.0.0.%d" % i for i in range(lo, hi + 1)]
    records = []
    sem = asyncio.Semaphore(a.concurrency)
    t_end = time.monotonic() + a.duration

    t0 = time.monotonic()

    async def one(i):
        # spread over --duration, so each source address stays within a sane rate
        await asyncio.sleep(max(0.0, t0 + i * a.duration / max(a.count, 1) - time.monotonic()))
        async with sem:
            if time.monotonic() > t_end + 30:
                return
            kind = JUNK_KINDS[i % len(JUNK_KINDS)]
            records.append(await junk_one(loop, a, kind, sources[i % len(sources)]))

    await asyncio.gather(*(one(i) for i in range(a.count)))
    return {"records": records, "seconds": round(time.monotonic() - t0, 2)}


async def flood(a):
    loop = asyncio.get_running_loop()
    host = "warren.test:%d" % a.port
    records = []
    for i in range(a.count):
        s = new_sock(a.source)
        try:
            await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", a.port)), 10)
            data, end = await exchange(loop, s, ws_upgrade(host), until=has_head)
            rec = {"status": status_of(data)}
            if b"Retry-After:" in data:
                rec["retry_after"] = int(data.split(b"Retry-After:", 1)[1].split(b"\r\n")[0])
            records.append(rec)
        except (OSError, asyncio.TimeoutError) as e:
            records.append({"status": None, "end": type(e).__name__})
        finally:
            reset_close(s)
    return {"records": records}


# ---------------------------------------------------------------- churn

async def churn(a):
    loop = asyncio.get_running_loop()
    t_end = time.monotonic() + a.duration
    counts = {}

    def note(k):
        counts[k] = counts.get(k, 0) + 1

    async def abort_visitor(host, path):
        while time.monotonic() < t_end:
            s = new_sock()
            try:
                await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", a.port)), 10)
                await loop.sock_sendall(s, ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                                            % (path, host)).encode())
                got = b""
                while len(got) < 65536:
                    d = await asyncio.wait_for(loop.sock_recv(s, 65536), 10)
                    if not d:
                        break
                    got += d
                note("%s %s" % (host.split(".")[0], status_of(got) or
                                ("eof" if not got else "partial")))
            except (ConnectionResetError, BrokenPipeError):
                note("%s reset" % host.split(".")[0])
            except (OSError, asyncio.TimeoutError) as e:
                note("%s %s" % (host.split(".")[0], type(e).__name__))
            finally:
                reset_close(s)

    tasks = [abort_visitor(a.host, "/bytes?n=%d&seed=11" % (8 << 20))
             for _ in range(a.concurrency)]
    if a.raw_host:
        tasks += [abort_visitor(a.raw_host, "/anything") for _ in range(a.concurrency)]
    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*tasks), a.duration + 30)
    return {"counts": counts, "seconds": round(time.monotonic() - t0, 2)}


async def rawtunnel(a):
    """A tunnel client that misbehaves politely: every stream is reset,
    cut after half a response, or answered whole, in turn."""
    import websockets  # Debian's python3-websockets
    t_end = time.monotonic() + a.duration
    counts = {"open": 0, "rst": 0, "half": 0, "whole": 0}
    async with websockets.connect("ws://127.0.0.1:%d/_tunnel" % a.port,
                                  subprotocols=["warren-tunnel"], compression=None,
                                  max_size=1 << 20, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "hello", "version": 1, "kind": "http",
                                  "name": a.name, "client": "loadgen"}))
        w = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if w.get("type") != "welcome":
            print(json.dumps({"error": w}), flush=True)
            return {"error": w}
        print("online", flush=True)
        body = b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n" + b"x" * 20000
        while time.monotonic() < t_end:
            try:
                m = await asyncio.wait_for(ws.recv(), max(0.1, t_end - time.monotonic()))
            except asyncio.TimeoutError:
                break
            if not isinstance(m, bytes) or len(m) < 5 or m[0] != 1:
                continue
            sid = struct.unpack("!I", m[1:5])[0]
            counts["open"] += 1
            turn = counts["open"] % 3
            if turn == 0:
                await ws.send(struct.pack("!BIH", 4, sid, 2) + b"refused by loadgen")
                counts["rst"] += 1
            elif turn == 1:
                await ws.send(struct.pack("!BI", 2, sid) + body[:8000])
                await ws.send(struct.pack("!BIH", 4, sid, 1))
                counts["half"] += 1
            else:
                await ws.send(struct.pack("!BI", 2, sid) + body[:20000])
                await ws.send(struct.pack("!BI", 2, sid) + body[20000:])
                await ws.send(struct.pack("!BI", 3, sid))
                counts["whole"] += 1
    return {"counts": counts}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["slow", "junk", "flood", "churn", "rawtunnel"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="")
    ap.add_argument("--raw-host", default="")
    ap.add_argument("--name", default="")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--ramp", type=float, default=5.0)
    ap.add_argument("--slowloris", type=int, default=0)
    ap.add_argument("--slowbody", type=int, default=0)
    ap.add_argument("--slowread", type=int, default=0)
    ap.add_argument("--slowread-size", type=int, default=1 << 30)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--sources", default="2-254")
    ap.add_argument("--source", default="127.0.0.1")
    a = ap.parse_args()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fn = {"slow": lambda: Slow(a).run(), "junk": lambda: junk(a), "flood": lambda: flood(a),
          "churn": lambda: churn(a), "rawtunnel": lambda: rawtunnel(a)}[a.mode]

    async def go():
        return await fn()

    res = asyncio.run(go())
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
