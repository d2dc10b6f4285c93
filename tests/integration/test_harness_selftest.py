"""The harness and the origin on their own (no tunnel): every origin endpoint
answers as the scenarios expect, the raw client and curl agree, the TCP proxy
forwards and cuts, the WebSocket origin echoes. If this fails, the other
scenarios' failures say nothing about the binaries."""

import asyncio
import json
import time

import harness as h

with h.Test("harness-selftest", timeout=60, need_binaries=False) as t:
    org = t.origin()
    port = org.port
    host = "127.0.0.1:%d" % port

    t.step("plain endpoints")
    r = h.request(port, "GET", "/hello", host)
    t.eq((r.status, r.body), (200, b"hello from origin\n"), "GET /hello")

    n = 3 * 1024 * 1024 + 12345
    r, digest, _ = h.download_sha256(port, "/bytes?n=%d&seed=7" % n, host)
    t.eq((r.status, r.body_len), (200, n), "GET /bytes length")
    t.eq(digest, h.pattern_sha256(n, 7), "GET /bytes digest matches pattern_sha256")
    t.check(h.pattern_sha256(n, 7) != h.pattern_sha256(n, 8), "seeds give different streams")
    blk = h.pattern_bytes(4 << 20, 1)
    t.check(len({blk[i:i + 65536] for i in range(0, len(blk), 65536)}) == 64,
            "no two 64 KiB pieces of the pattern are equal")

    r = h.request(port, "GET", "/chunked?n=100000&seed=3&chunk=777", host)
    t.eq((r.status, r.header("Transfer-Encoding")), (200, "chunked"), "GET /chunked is chunked")
    t.eq(r.body, h.pattern_bytes(100000, 3), "GET /chunked body")

    body = h.pattern_bytes(200000, 5)
    r = h.request(port, "POST", "/sha256", host, body=body)
    t.eq(r.json(), {"sha256": h.pattern_sha256(200000, 5), "length": 200000},
         "POST /sha256 with Content-Length")
    r, _ = h.upload_chunked_sha256(port, "/sha256", host, 5 * 1024 * 1024 + 3, 9)
    t.eq(r.json(), {"sha256": h.pattern_sha256(5 * 1024 * 1024 + 3, 9), "length": 5 * 1024 * 1024 + 3},
         "POST /sha256 chunked")

    r = h.request(port, "POST", "/echo", host, body=b"abc" * 1000)
    t.eq(r.body, b"abc" * 1000, "POST /echo")

    r = h.request(port, "GET", "/headers", host, headers=[("X-Forwarded-For", "6.6.6.6")])
    hd = dict((k.lower(), v) for k, v in r.json()["headers"])
    t.eq(hd.get("x-forwarded-for"), "6.6.6.6", "GET /headers reports headers")

    r, evs = h.sse_arrivals(port, "/sse?n=4&interval_ms=300", host, 4)
    arrivals = [a for a, _, _ in evs]
    t.eq([e for _, _, e in evs][2][:13], "data: event 2", "SSE events parsed")
    t.check(arrivals[0] < 0.2, "first SSE event at once", arrivals)
    t.check(arrivals[-1] - arrivals[0] > 0.7, "SSE events are spread in time", arrivals)

    with h.HttpConn(port, timeout=5) as c:
        c.send(h.build_request("GET", "/drop", host))
        t.check(c.closed_by_peer(3), "GET /drop closes without answer")

    r = h.request(port, "GET", "/status?code=418", host)
    t.eq(r.status, 418, "GET /status?code=418")

    t.step("request count")
    c0 = t.origin_count(org)
    h.request(port, "GET", "/hello", host)
    h.raw_exchange(port, b"garbage\r\n\r\n")
    t.eq(t.origin_count(org) - c0, 2, "count grows for good and bad requests, not for /_count")

    t.step("keep-alive")
    with h.HttpConn(port, timeout=5) as c:
        for i in range(3):
            c.send(h.build_request("GET", "/hello", host))
            r = c.read_response()
            t.eq(r.status, 200, "keep-alive request %d" % i)

    t.step("curl")
    cp = h.curl(["-o", "-", "http://127.0.0.1:%d/hello" % port], timeout=10)
    t.eq((cp.returncode, cp.stdout), (0, b"hello from origin\n"), "curl GET /hello")
    cp = h.curl(["-T", "-", "http://127.0.0.1:%d/sha256" % port], input=body, timeout=10)
    t.eq(json.loads(cp.stdout or b"{}").get("sha256"), h.pattern_sha256(200000, 5),
         "curl -T - (chunked, Expect: 100-continue)")

    t.step("proxy")
    px = h.TcpProxy(port)
    t.on_teardown(px.close)
    with h.HttpConn(px.port, timeout=5) as c:
        c.send(h.build_request("GET", "/hello", host))
        t.eq(c.read_response().status, 200, "through the proxy")
        t.eq(px.cut(), 1, "cut one connection")
        try:
            c.send(h.build_request("GET", "/hello", host))
            c.read_response()
            ok = False
        except (OSError, ValueError):
            ok = True
        t.check(ok, "connection is dead after cut")

    t.step("rss")
    with h.RssSampler({"origin": org.pid}, 0.05) as s:
        time.sleep(0.3)
    t.check(0 < s.max["origin"] < 200 * 1024, "RSS sampled", s.max)

    t.step("websocket origin")
    wso = t.origin(ws=True)
    import websockets

    async def ws_roundtrip():
        async with websockets.connect("ws://127.0.0.1:%d/" % wso.port, max_size=None,
                                      compression=None) as ws:
            out = []
            for size in (5, 65536, 1 << 20):
                msg = h.pattern_bytes(size, size)
                await ws.send(msg)
                out.append(await asyncio.wait_for(ws.recv(), 10) == msg)
            return out

    t.eq(asyncio.run(ws_roundtrip()), [True, True, True], "ws echo 5 B, 64 KiB, 1 MiB")
