#!/usr/bin/python3
"""Idle tunnels for the edge-memory benchmark (run by compare.py, several at once).

usage: idle_clients.py PORT FIRST COUNT

Prints "started" once imported and ready, waits for a line on stdin, then
opens COUNT control WebSockets to ws://127.0.0.1:PORT/_tunnel (at most 200
handshakes in flight), sends each a HELLO for the name idleN (N from FIRST)
and waits for its WELCOME, as docs/protocol.md describes. Then prints
"ready SECONDS" (time from the go line to the last WELCOME) and keeps the
connections open and idle (answering the edge's pings) until stdin closes or
gets another line. Any failure prints "error ..." and exits 1. Every
handshake has a 60 s deadline; the whole process gives up after 600 s.
"""

import asyncio
import json
import os
import resource
import sys
import time

import websockets


async def open_one(port, name, sem):
    async with sem:
        ws = await websockets.connect("ws://127.0.0.1:%d/_tunnel" % port,
                                      subprotocols=["warren-tunnel"], ping_interval=None,
                                      compression=None, max_size=None, open_timeout=60)
        await ws.send(json.dumps({"type": "hello", "version": 1, "kind": "http",
                                  "name": name, "client": "bench-idle"}))
        msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if msg.get("type") != "welcome":
            raise RuntimeError("%s: %s" % (name, msg))
        return ws


async def main(port, first, count):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("started", flush=True)
    await reader.readline()
    t0 = time.monotonic()
    sem = asyncio.Semaphore(200)
    # the connections stay referenced (open and idle) until told to exit
    conns = await asyncio.gather(*(open_one(port, "idle%d" % i, sem)
                                   for i in range(first, first + count)))
    print("ready %.3f %d" % (time.monotonic() - t0, len(conns)), flush=True)
    await reader.readline()
    sys.stdout.flush()
    os._exit(0)  # the kernel closes the sockets; no close handshakes to wait for


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        asyncio.run(asyncio.wait_for(main(*(int(a) for a in sys.argv[1:4])), 600))
    except Exception as e:  # report any failure in one line to the parent
        print("error %s: %s" % (type(e).__name__, e), flush=True)
        sys.stdout.flush()
        os._exit(1)
