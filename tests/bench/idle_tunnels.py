#!/usr/bin/python3
"""Edge memory per idle tunnel.

Starts tunneld on a loopback port, opens N control WebSockets that complete
the handshake (HELLO -> WELCOME) and then stay idle, and reports the edge's
RSS before and after, the RSS per tunnel, and how long the N tunnels took to
come online. Bounded: every connection has a deadline; everything started is
stopped by PID.

usage: idle_tunnels.py BUILD_DIR [N ...]        (default N: 1000)
"""
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time

import websockets


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def open_tunnel(port, i, conns):
    ws = await asyncio.wait_for(
        websockets.connect(f"ws://127.0.0.1:{port}/_tunnel", subprotocols=["warren-tunnel"],
                           max_size=None, ping_interval=None, compression=None), 20)
    await ws.send(json.dumps({"type": "hello", "version": 1, "kind": "http",
                              "name": f"idle{i}"}))
    msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
    if msg.get("type") != "welcome":
        raise RuntimeError(f"tunnel {i}: {msg}")
    conns.append(ws)


async def run(build, n):
    port = free_port()
    edge = subprocess.Popen([f"{build}/server/tunneld", "--domain", "localhost", "--listen",
                             f"127.0.0.1:{port}", "--log-level", "warn",
                             "--max-tunnels", str(n + 10)],
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)
        before = rss_kib(edge.pid)
        conns = []
        t0 = time.monotonic()
        batch = 200
        for start in range(0, n, batch):
            await asyncio.gather(*(open_tunnel(port, i, conns)
                                   for i in range(start, min(n, start + batch))))
        online_s = time.monotonic() - t0
        await asyncio.sleep(1.0)
        after = rss_kib(edge.pid)
        per = (after - before) * 1024 / n
        print(f"tunnels={n} rss_before_kib={before} rss_after_kib={after} "
              f"per_tunnel_bytes={per:.0f} online_s={online_s:.2f}")
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        return per
    finally:
        edge.terminate()
        try:
            edge.wait(10)
        except subprocess.TimeoutExpired:
            edge.kill()


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    counts = [int(a) for a in sys.argv[2:]] or [1000]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for n in counts:
        asyncio.run(run(os.path.abspath(build), n))


if __name__ == "__main__":
    main()
