"""--head-timeout 2: a request head not complete within 2 s gets 408 and the
connection is closed, also when bytes keep trickling in (the deadline covers
the whole head). A connection that sends nothing is closed too."""

import select
import socket
import time

import harness as h

TMO = 2

with h.Test("head-timeout", timeout=60) as t:
    edge = t.tunneld(args=["--head-timeout", str(TMO)])
    org = t.origin()
    t.tunnel(edge, org.port, name="patient")
    H = edge.host("patient")
    c0 = t.origin_count(org)

    t.step("partial head, then silence")
    with h.HttpConn(edge.port, timeout=TMO + 6) as c:
        t0 = time.monotonic()
        c.send(("GET /hello HTTP/1.1\r\nHost: %s\r\nX-Partial: " % H).encode())
        try:
            r = c.read_response()
            got = r.status
        except (OSError, ValueError) as e:
            got = "no response (%r)" % e
        dt = time.monotonic() - t0
        t.eq(got, 408, "incomplete head gets 408")
        t.check(TMO - 0.5 <= dt <= TMO + 2.5, "408 after about %d s" % TMO, "%.2f s" % dt)
        t.check(c.closed_by_peer(3), "connection closed after 408")

    t.step("head trickling in one byte every 300 ms")
    head = ("GET /hello HTTP/1.1\r\nHost: %s\r\nX-Slow: %s\r\n\r\n" % (H, "z" * 200)).encode()
    s = socket.create_connection(("127.0.0.1", edge.port), timeout=5)
    t0 = time.monotonic()
    resp = b""
    try:
        for i in range(len(head)):
            try:
                s.send(head[i:i + 1])
            except OSError:
                break
            rd, _, _ = select.select([s], [], [], 0.3)
            if rd:
                d = s.recv(4096)
                resp += d
                if not d or time.monotonic() - t0 > TMO + 5:
                    break
                while True:
                    rd, _, _ = select.select([s], [], [], 0.5)
                    if not rd:
                        break
                    d = s.recv(4096)
                    if not d:
                        break
                    resp += d
                break
            if time.monotonic() - t0 > TMO + 5:
                break
    finally:
        dt = time.monotonic() - t0
        s.close()
    t.check(resp.startswith(b"HTTP/1.1 408") or resp.startswith(b"HTTP/1.0 408"),
            "trickled head gets 408", resp[:100])
    t.check(dt <= TMO + 2.5, "trickling does not extend the deadline", "%.2f s" % dt)

    t.step("connection that sends nothing")
    with h.HttpConn(edge.port, timeout=TMO + 6) as c:
        t0 = time.monotonic()
        try:
            d = c.sock.recv(4096)
            while d and time.monotonic() - t0 < TMO + 5:
                more = c.sock.recv(4096)
                if not more:
                    break
                d += more
        except socket.timeout:
            d = "timeout"
        except OSError:
            d = b""
        dt = time.monotonic() - t0
        t.check(d != "timeout" and dt <= TMO + 2.5, "idle new connection closed after about %d s"
                % TMO, "%.2f s, got %r" % (dt, d[:60] if isinstance(d, bytes) else d))

    t.eq(t.origin_count(org) - c0, 0, "nothing reached the origin")
    r = h.request(edge.port, "GET", "/hello", H)
    t.eq(r.status, 200, "a prompt request is served")
