"""Local service down or misbehaving: the edge answers 502 with a page that
names the tunnel; when the service comes back, the tunnel serves again; a
service too slow to answer gets 504 (--response-timeout). Also --local-host
with 127.0.0.1 and ::1."""

import signal
import time

import harness as h

with h.Test("local-down", timeout=60) as t:
    edge = t.tunneld()
    dead_port = h.free_port()
    cli = t.tunnel(edge, dead_port, name="nobody")
    host = edge.host("nobody")

    t.step("nothing listening on the local port")
    t0 = time.monotonic()
    r = h.request(edge.port, "GET", "/hello", host)
    t.eq(r.status, 502, "refused local service gives 502")
    t.check("nobody" in r.text, "502 page names the tunnel", r.text[:300])
    t.check(time.monotonic() - t0 < 5, "502 comes quickly")
    t.check(cli.alive(), "CLI keeps running when the local service is down")

    t.step("local service appears on that port")
    org = t.spawn("origin-late", [h.PY, h.ORIGIN, "--port", str(dead_port)])
    t.require(h.wait_until(lambda: h.is_listening(dead_port), 10), "late origin listening")
    r = h.request(edge.port, "GET", "/hello", host)
    t.eq(r.status, 200, "serves once the local service is up")

    with t.part("local service closes without answering"):
        r = h.request(edge.port, "GET", "/drop", host, timeout=5)
        t.eq(r.status, 502, "connection closed before a response gives 502")

    with t.part("local service killed"):
        org.stop(signal.SIGKILL)
        r = h.request(edge.port, "GET", "/hello", host, timeout=5)
        t.eq(r.status, 502, "502 after the local service died")

    t.step("local service too slow: 504 with --response-timeout 1")
    slow_edge = t.tunneld(args=["--response-timeout", "1"], label="tunneld-rt")
    org3 = t.origin()
    t.tunnel(slow_edge, org3.port, name="sloth")
    t0 = time.monotonic()
    r = h.request(slow_edge.port, "GET", "/slow?delay_ms=4000", slow_edge.host("sloth"))
    dt = time.monotonic() - t0
    t.eq(r.status, 504, "no response head within the response timeout gives 504")
    t.check(0.5 <= dt <= 3.0, "504 after about 1 s", "%.2f s" % dt)
    t.check("sloth" in r.text, "504 page names the tunnel", r.text[:300])
    r = h.request(slow_edge.port, "GET", "/hello", slow_edge.host("sloth"))
    t.eq(r.status, 200, "a prompt answer still passes")

    t.step("--local-host")
    org4 = t.origin()
    t.tunnel(edge, org4.port, name="v4", args=["--local-host", "127.0.0.1"])
    r = h.request(edge.port, "GET", "/hello", edge.host("v4"))
    t.eq(r.status, 200, "--local-host 127.0.0.1")
    if h.ipv6_available():
        p6 = h.free_port()
        o6 = t.spawn("origin-v6", [h.PY, h.ORIGIN, "--port", str(p6), "--host", "::1"])
        t.require(h.wait_until(lambda: h.is_listening(p6), 10), "::1 origin listening")
        t.tunnel(edge, p6, name="v6", args=["--local-host", "::1"])
        r = h.request(edge.port, "GET", "/hello", edge.host("v6"))
        t.eq(r.status, 200, "--local-host ::1")
