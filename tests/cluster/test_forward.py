"""Three edges, one tunnel on edge 1: visitors who land on edges 2 and 3 are
forwarded to it over the peer links and get byte-exact answers (1 KiB and
50 MiB downloads, an 8 MiB upload, compared by SHA-256), the origin sees the
visitor's own address in X-Forwarded-For, and a WebSocket echo app works
through a forward. The second lookup of a name on an edge is a cache hit.
With --family 6 the fleet is IPv6-only (fdaa::N, AAAA records only), the
shape of a Fly.io 6PN fleet."""

import argparse
import asyncio
import json
import socket

import websockets

import cluster as c
from cluster import h

ap = argparse.ArgumentParser()
ap.add_argument("--family", type=int, choices=(4, 6), default=4)
args = ap.parse_args()

MIB = 1024 * 1024
BIG = 50 * MIB
UP = 8 * MIB
name = "forward" if args.family == 4 else "forward-ipv6"

with c.Cluster(name, timeout=150) as t:
    e1, e2, e3 = t.fleet(3, family=args.family)
    org = t.origin()
    wso = t.origin(ws=True)
    # IPv4: the CLI is given edge 1's address; IPv6: its DNS name (AAAA only)
    server = e1.ws_url if args.family == 4 else e1.ws_name_url
    cli = t.tunnel(server, org.port, name="demo")
    wcli = t.tunnel(server, wso.port, name="wsecho")
    t.eq(t.metric(e1, "warren_tunnels"), 2, "both tunnels live on edge 1")
    t.eq((t.metric(e2, "warren_tunnels"), t.metric(e3, "warren_tunnels")), (0, 0),
         "edges 2 and 3 hold no tunnel")

    for e in (e2, e3):
        with t.part("1 KiB through edge %d" % e.k):
            r, got, secs = t.download_sha256(e, "/bytes?n=1024&seed=%d" % e.k, "demo", 10)
            t.eq((r.status, r.body_len, got), (200, 1024, h.pattern_sha256(1024, e.k)),
                 "edge %d: 1 KiB byte-exact (%.1f ms)" % (e.k, secs * 1000))

    with t.part("cache"):
        m = t.metrics(e2)
        r = t.get(e2, "/hello", "demo")
        m2 = t.metrics(e2)
        t.eq(r.status, 200, "second request through edge 2")
        hits = m2.get('warren_lookups_total{result="cache_hit"}', 0) - \
            m.get('warren_lookups_total{result="cache_hit"}', 0)
        t.eq(hits, 1, "the second lookup on edge 2 is a cache hit")
        t.check(m2.get('warren_lookups_total{result="found"}', 0) >= 1,
                "edge 2 found the name by asking its peers", m2)

    for e in (e2, e3):
        with t.part("50 MiB through edge %d" % e.k):
            seed = 10 + e.k
            r, got, secs = t.download_sha256(e, "/bytes?n=%d&seed=%d" % (BIG, seed), "demo", 60)
            t.eq((r.status, r.body_len), (200, BIG), "edge %d: 50 MiB status and length" % e.k)
            t.eq(got, h.pattern_sha256(BIG, seed), "edge %d: 50 MiB SHA-256" % e.k)
            h.log("RESULT edge %d: 50 MiB forwarded in %.2f s (%.0f MiB/s)"
                  % (e.k, secs, BIG / MIB / secs))

    with t.part("upload through edge 3"):
        with h.HttpConn(c.PUBLIC_PORT, e3.addr, 60) as conn:
            conn.send(h.build_request("POST", "/sha256", e3.host("demo"),
                                      [("Content-Length", str(UP))]))
            for piece in h.pattern_chunks(UP, 7, 256 * 1024):
                conn.send(bytes(piece))
            r = conn.read_response("POST")
        res = r.json() if r.status == 200 else {}
        t.eq((r.status, res.get("length"), res.get("sha256")), (200, UP, h.pattern_sha256(UP, 7)),
             "8 MiB upload through edge 3 arrives byte-exact")

    with t.part("visitor address"):
        # the visitor connects from an address of its own; the owner edge must
        # learn it through the forward, not see edge 2's
        src = "127.0.0.77" if args.family == 4 else "fdaa::77"
        if args.family == 6:
            t.add_addr6(src)
        fam = socket.AF_INET if args.family == 4 else socket.AF_INET6
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(10)
        s.bind((src, 0))
        s.connect((e2.addr, c.PUBLIC_PORT))
        conn = h.HttpConn.__new__(h.HttpConn)
        conn.sock, conn.buf, conn.eof = s, bytearray(), False
        conn.send(h.build_request("GET", "/headers", e2.host("demo"),
                                  [("X-Forwarded-For", "6.6.6.6")]))
        r = conn.read_response()
        conn.close()
        hdrs = {k.lower(): v for k, v in json.loads(r.body)["headers"]}
        t.eq(hdrs.get("x-forwarded-for"), src,
             "X-Forwarded-For is the visitor's address, set by the first edge")
        t.eq(hdrs.get("x-forwarded-host"), e2.host("demo"), "X-Forwarded-Host kept")

    with t.part("wrong Host on a forwarded connection"):
        with h.HttpConn(c.PUBLIC_PORT, e2.addr, 10) as conn:
            conn.send(h.build_request("GET", "/hello", e2.host("demo")))
            r1 = conn.read_response()
            conn.send(h.build_request("GET", "/hello", e2.host("wsecho")))
            r2 = conn.read_response()
        t.eq((r1.status, r2.status), (200, 421),
             "a second request for another name on a forwarded connection gets 421")

    async def ws_echo(e):
        uri = "ws://%s/echo" % e.host("wsecho")
        out = []
        async with websockets.connect(uri, host=e.addr, port=c.PUBLIC_PORT, max_size=None,
                                      compression=None, open_timeout=10,
                                      close_timeout=5) as ws:
            for size in (5, 64 * 1024, 1024 * 1024):
                msg = h.pattern_bytes(size, size + e.k)
                await ws.send(msg)
                back = await asyncio.wait_for(ws.recv(), 20)
                out.append(("binary %d" % size, back == msg))
            await ws.send("hello over the fleet")
            back = await asyncio.wait_for(ws.recv(), 10)
            out.append(("text", back == "hello over the fleet"))
        out.append(("close 1000", ws.close_code == 1000))
        return out

    for e in (e2, e3):
        with t.part("WebSocket through edge %d" % e.k):
            for what, ok in asyncio.run(ws_echo(e)):
                t.check(ok, "edge %d: WebSocket echo %s" % (e.k, what))

    if args.family == 6:
        with t.part("CLI given an IPv6 literal"):
            lit = t.tunnel(e1.ws_url, org.port, name="literal6", wait_online=False)
            _, ev = lit.wait_event("online", 5)
            t.check(ev is not None, "the CLI connects to --server %s" % e1.ws_url,
                    "last events: %s; edge 1 log: %s"
                    % (lit.events[-1:], [l for l in e1.stderr_text().splitlines()
                                         if "400" in l][-1:]))
            lit.stop()
            lit.checked_exit = True

    t.check(all(p.alive() for p in (e1, e2, e3, cli, wcli)), "edges and CLIs still running")
    fw = t.metric(e1, "warren_forwards_total", 0)
    t.check(fw >= 8, "edge 1 bridged the forwarded streams (warren_forwards_total %r)" % fw)
