"""WebSocket through the tunnel (the edge turns the connection into a raw pipe
after 101): echo of 5 B, 64 KiB and 1 MiB messages, text and binary, several
connections at once, a clean close; plain HTTP still works afterwards."""

import asyncio

import websockets

import harness as h

with h.Test("websocket", timeout=60) as t:
    edge = t.tunneld()
    wso = t.origin(ws=True)
    org = t.origin()
    t.tunnel(edge, wso.port, name="wsapp")
    t.tunnel(edge, org.port, name="plain")
    uri = "ws://%s/echo" % edge.host("wsapp")

    async def one(k):
        out = []
        async with websockets.connect(uri, host="127.0.0.1", port=edge.port, max_size=None,
                                      compression=None, open_timeout=10, close_timeout=5) as ws:
            for size in (5, 64 * 1024, 1024 * 1024):
                msg = h.pattern_bytes(size, size + k)
                await ws.send(msg)
                back = await asyncio.wait_for(ws.recv(), 20)
                out.append(("bin", size, back == msg))
                txt = (("%d-" % k) + "x" * size)[:size]
                await ws.send(txt)
                back = await asyncio.wait_for(ws.recv(), 20)
                out.append(("text", size, back == txt))
            pong = await ws.ping(b"are-you-there")
            await asyncio.wait_for(pong, 10)
            out.append(("ping", 0, True))
        out.append(("close", ws.close_code, ws.close_code == 1000))
        return out

    async def many(n):
        return await asyncio.gather(*(one(k) for k in range(n)), return_exceptions=True)

    t.step("one connection")
    res = asyncio.run(many(1))[0]
    if isinstance(res, Exception):
        t.check(False, "WebSocket echo through the tunnel", repr(res))
    else:
        for kind, size, ok in res:
            t.check(ok, "ws %s %s" % (kind, size))

    t.step("five connections at once")
    res = asyncio.run(many(5))
    bad = [r if isinstance(r, Exception) else [x for x in r if not x[2]] for r in res]
    t.check(all(not b for b in bad), "5 concurrent WebSocket echo sessions", bad)

    r = h.request(edge.port, "GET", "/hello", edge.host("plain"))
    t.eq(r.status, 200, "plain HTTP tunnel unaffected")
