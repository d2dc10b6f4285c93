"""SIGTERM drains: the edge stops accepting at once, an in-flight download
completes byte-exact, then tunneld exits 0 (before the drain timeout) and the
CLI reconnects rather than exiting. With a short drain timeout, a download
that cannot finish is cut and tunneld still exits 0 on time. A control
WebSocket is closed with code 1001 (going away)."""

import asyncio
import json
import os
import socket
import threading
import time

import websockets

import harness as h

MIB = 1024 * 1024

with h.Test("drain", timeout=90) as t:
    edge = t.tunneld(drain=20)
    port = edge.port
    org = t.origin()
    cli = t.tunnel(edge, org.port, name="drainme")
    H = edge.host("drainme")

    t.step("download at 8 MiB/s, SIGTERM after 1 s")
    N = 40 * MIB
    res = {}
    unpace = threading.Event()

    def dl(rate, n, seed, key):
        try:
            res[key] = h.download_sha256(port, "/bytes?n=%d&seed=%d" % (n, seed), H, timeout=60,
                                         rcvbuf=256 * 1024, rate=rate, unpace=unpace)
        except Exception as e:  # noqa: BLE001
            res[key] = e

    th = threading.Thread(target=dl, args=(8 * MIB, N, 21, "a"), daemon=True)
    th.start()
    time.sleep(1.0)
    t_term = time.monotonic()
    edge.send(h.signal.SIGTERM)
    stopped = h.wait_until(lambda: not h.is_listening(port), 2)
    t.check(stopped, "listener closed soon after SIGTERM")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    t.check(refused, "new connections refused during drain")
    th.join(30)
    got = res.get("a")
    if isinstance(got, tuple):
        r, digest, secs = got
        t.eq((r.status, r.body_len), (200, N), "in-flight download completed during drain")
        t.eq(digest, h.pattern_sha256(N, 21), "in-flight download exact")
    else:
        t.check(False, "in-flight download completed during drain", got)
    rc = edge.wait_exit(15)
    edge.checked_exit = True
    dt = time.monotonic() - t_term
    t.eq(rc, 0, "tunneld exits 0 after draining")
    t.check(dt < 15, "exit well before the 20 s drain timeout", "%.1f s" % dt)
    _, ev = cli.wait_event("reconnecting", 5)
    t.check(ev is not None, "CLI reconnects after the edge closed its tunnel")
    t.check(cli.alive(), "CLI did not exit")

    t.step("drain timeout 2 s with a download that cannot finish")
    n_online = len([e for e in cli.events if e.get("event") == "online"])
    edge2 = t.tunneld(drain=2, listen=["127.0.0.1:%d" % port])
    t.require(h.wait_until(lambda: len([e for e in cli.events if e.get("event") == "online"])
                           > n_online, 15), "CLI back online on the new edge")
    th = threading.Thread(target=dl, args=(256 * 1024, 200 * MIB, 22, "b"), daemon=True)
    th.start()
    time.sleep(1.0)
    t_term = time.monotonic()
    edge2.send(h.signal.SIGTERM)
    rc = edge2.wait_exit(12)
    edge2.checked_exit = True
    dt = time.monotonic() - t_term
    t.eq(rc, 0, "tunneld exits 0 when the drain timeout expires")
    t.check(1.5 <= dt <= 5.0, "exit at about the 2 s drain timeout", "%.1f s" % dt)
    unpace.set()  # read what is buffered at full speed: the body must end short
    th.join(30)
    got = res.get("b")
    t.check(not (isinstance(got, tuple) and got[0].body_len == 200 * MIB),
            "unfinished download was cut", got)

    t.step("control WebSocket closed with 1001")
    edge3 = t.tunneld(drain=5, listen=["127.0.0.1:%d" % port], label="tunneld-ws")

    async def control():
        async with websockets.connect("ws://127.0.0.1:%d/_tunnel" % port, compression=None,
                                      open_timeout=5, close_timeout=5) as ws:
            await ws.send(json.dumps({"type": "hello", "version": 1, "kind": "http",
                                      "name": "rawctl"}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 5))
            os.kill(edge3.pid, h.signal.SIGTERM)
            edge3.signalled = True
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 8)
            except websockets.ConnectionClosed:
                pass
            return welcome, ws.close_code

    try:
        welcome, code = asyncio.run(control())
        t.eq(welcome.get("type"), "welcome", "raw control client welcomed")
        t.eq(code, 1001, "SIGTERM closes the control WebSocket with 1001")
    except Exception as e:  # noqa: BLE001
        t.check(False, "raw control client", repr(e))
    t.eq(edge3.wait_exit(10), 0, "tunneld exits 0")
    edge3.checked_exit = True
