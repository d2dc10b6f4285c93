"""The edge's own WebSocket server for tunnels (session.c): the upgrade to
/_tunnel is checked (key, version, subprotocol) with a 400 that says what is
wrong; a real client (python3-websockets) gets the subprotocol echoed, its
pings answered and its close echoed with the same code; a client that goes
silent is dropped after three ping intervals, one that never says hello
is refused at --hello-timeout; frames that break RFC 6455
(unmasked, reserved bits, oversized) get the close code for it."""

import asyncio
import json
import socket
import struct
import time

import websockets

import harness as h


def raw_upgrade(port, extra_headers, key="dGhlIHNhbXBsZSBub25jZQ=="):
    req = ("GET /_tunnel HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\n" % port)
    if key is not None:
        req += "Sec-WebSocket-Key: %s\r\n" % key
    req += extra_headers + "\r\n"
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(req.encode())
    s.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(4096)
        if not b:
            break
        data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head.decode("latin-1"), rest


def read_frame(s, buf=b""):
    """One server frame: (opcode, payload) or None on EOF."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            b = s.recv(65536)
            if not b:
                return False
            buf += b
        return True
    if not need(2):
        return None, buf
    op, ln = buf[0] & 0x0f, buf[1] & 0x7f
    hl = 2
    if ln == 126:
        if not need(4):
            return None, buf
        ln, hl = struct.unpack(">H", buf[2:4])[0], 4
    elif ln == 127:
        if not need(10):
            return None, buf
        ln, hl = struct.unpack(">Q", buf[2:10])[0], 10
    if not need(hl + ln):
        return None, buf
    return (op, buf[hl:hl + ln]), buf[hl + ln:]


def masked(op, payload, key=b"\x11\x22\x33\x44", fin=True):
    n = len(payload)
    hdr = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        hdr += bytes([0x80 | n])
    elif n < 65536:
        hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return hdr + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_code_after(port, frame_bytes):
    s, head, rest = raw_upgrade(port, "Sec-WebSocket-Version: 13\r\n")
    s.sendall(frame_bytes)
    fr, rest = read_frame(s, rest)
    s.close()
    if fr and fr[0] == 8 and len(fr[1]) >= 2:
        return struct.unpack(">H", fr[1][:2])[0]
    return fr


with h.Test("ws-handshake", timeout=90) as t:
    edge = t.tunneld(args=("--ping-interval", "1"))
    port = edge.port

    t.step("bad upgrades: 400 naming the problem")
    for hdrs, key, what in (("Sec-WebSocket-Version: 13\r\n", None, "Sec-WebSocket-Key"),
                            ("Sec-WebSocket-Version: 8\r\n", "dGhlIHNhbXBsZSBub25jZQ==",
                             "Sec-WebSocket-Version: 13"),
                            ("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n",
                             "dGhlIHNhbXBsZSBub25jZQ==", "warren-tunnel"),
                            ("Sec-WebSocket-Version: 13\r\n", "c2hvcnQ=", "Sec-WebSocket-Key")):
        s, head, rest = raw_upgrade(port, hdrs, key=key)
        body = rest
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                body += b
        except OSError:
            pass
        s.close()
        t.check(head.startswith("HTTP/1.1 400"), "400 for a bad upgrade (%s)" % what, head[:80])
        t.check(what.encode() in body, "the page names %s" % what, body[:200])

    t.step("a good upgrade: 101 with the RFC's accept value and our subprotocol")
    s, head, rest = raw_upgrade(port, "Sec-WebSocket-Version: 13\r\n"
                                "Sec-WebSocket-Protocol: chat, warren-tunnel\r\n")
    t.check(head.startswith("HTTP/1.1 101"), "101 Switching Protocols", head[:80])
    t.check("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, "accept value", head)
    t.check("Sec-WebSocket-Protocol: warren-tunnel" in head, "subprotocol echoed", head)

    t.step("a silent client is pinged, then dropped after three intervals")
    t0 = time.monotonic()
    pings, closed_at = 0, None
    buf = rest
    s.settimeout(8)
    while True:
        try:
            fr, buf = read_frame(s, buf)
        except OSError:
            fr = None
        if fr is None:
            closed_at = time.monotonic() - t0
            break
        if fr[0] == 9:
            pings += 1
    s.close()
    t.check(pings >= 1, "the edge pinged the silent client", pings)
    t.check(closed_at is not None and 2.0 <= closed_at <= 6.0,
            "dropped after about 3 ping intervals (1 s each)", closed_at)

    t.step("protocol violations get their close codes")
    t.eq(close_code_after(port, b"\x81\x05hello"), 1002, "unmasked client frame: 1002")
    t.eq(close_code_after(port, bytes([0xc1]) + masked(1, b"x")[1:]), 1002, "RSV1 set: 1002")
    t.eq(close_code_after(port, masked(2, b"\x00" * 40000)), 1009, "40,000-byte message: 1009")
    t.eq(close_code_after(port, masked(1, b"x" * 5000)), 1009, "5,000-byte text message: 1009")

    t.step("no hello within --hello-timeout: ERROR timeout, then close 1008")
    edge2 = t.tunneld(args=("--hello-timeout", "1"), label="tunneld-hello")
    s, head, buf = raw_upgrade(edge2.port, "Sec-WebSocket-Version: 13\r\n")
    t0 = time.monotonic()
    frames = []
    s.settimeout(6)
    while True:
        try:
            fr, buf = read_frame(s, buf)
        except OSError:
            fr = None
        if fr is None:
            break
        frames.append(fr)
        if fr[0] == 8:
            break
    took = time.monotonic() - t0
    s.close()
    texts = [json.loads(f[1]) for f in frames if f[0] == 1]
    t.check(any(m.get("type") == "error" and m.get("code") == "timeout" for m in texts),
            "ERROR timeout sent", texts)
    closes = [struct.unpack(">H", f[1][:2])[0] for f in frames if f[0] == 8 and len(f[1]) >= 2]
    t.eq(closes, [1008], "closed with 1008")
    t.check(0.8 <= took <= 3.0, "at about the 1 s deadline", took)

    t.step("a real client: subprotocol, ping, hello, close echoed")

    async def client():
        async with websockets.connect("ws://127.0.0.1:%d/_tunnel" % port,
                                      subprotocols=["warren-tunnel"], compression=None,
                                      open_timeout=5, close_timeout=5) as ws:
            proto = ws.subprotocol
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.send(json.dumps({"type": "hello", "version": 1, "kind": "http",
                                      "name": "hs"}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.close(4321, "done")
            return proto, welcome, ws.close_code

    try:
        proto, welcome, code = asyncio.run(client())
        t.eq(proto, "warren-tunnel", "subprotocol negotiated")
        t.eq(welcome.get("type"), "welcome", "hello answered with welcome")
        t.eq(code, 4321, "our close code echoed back")
    except Exception as e:  # noqa: BLE001
        t.check(False, "websockets client", repr(e))
    t.check(edge.alive(), "edge still running")
