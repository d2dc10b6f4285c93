"""The CLI reconnects with backoff and keeps its name (explicit and random)
when its control connection breaks; while it is away nobody else can take the
name; once the grace period has passed after its owner died, the name is free.

The CLI reaches the edge through a TCP proxy that the test can cut."""

import signal
import time

import harness as h

GRACE = 3

with h.Test("reconnect", timeout=90) as t:
    edge = t.tunneld(args=["--grace-period", str(GRACE)])
    org = t.origin()
    px = h.TcpProxy(edge.port)
    t.on_teardown(px.close)
    via = "ws://127.0.0.1:%d" % px.port
    named = t.tunnel(via, org.port, name="keep")
    anon = t.tunnel(via, org.port)
    rname = anon.name
    t.check(bool(rname) and rname != "keep", "random name assigned (%s)" % rname)
    for n in ("keep", rname):
        r = h.request(edge.port, "GET", "/hello", edge.host(n))
        t.eq(r.status, 200, "%s serves before the cut" % n)

    t.step("cut the control connections, refuse reconnects for 3 s")
    px.refuse = True
    t.eq(px.cut(), 2, "two control connections cut")
    t0 = time.monotonic()
    i, ev = named.wait_event("reconnecting", 5)
    t.check(ev is not None, "CLI reports reconnecting", named.stdout_text()[-500:])
    if ev:
        t.check(isinstance(ev.get("attempt"), int) and isinstance(ev.get("delay_ms"), (int, float)),
                "reconnecting event has attempt and delay_ms", ev)
    r = h.request(edge.port, "GET", "/hello", edge.host("keep"))
    t.eq(r.status, 502, "while the owner is away its name answers 502 (tunnel offline)")
    rc, out, err = t.run("tunnel-thief", [h.TUNNEL, "--port", str(org.port), "--server",
                                          edge.ws_url, "--subdomain", "keep", "--json"],
                         timeout=15)
    t.eq(rc, 3, "another CLI cannot take the name during the grace period")
    rc, out, err = t.run("tunnel-thief2", [h.TUNNEL, "--port", str(org.port), "--server",
                                           edge.ws_url, "--subdomain", rname, "--json"],
                         timeout=15)
    t.eq(rc, 3, "nor the random name")
    time.sleep(max(0, 3.0 - (time.monotonic() - t0)))
    with named.cond:
        recs = [e for e in named.events if e.get("event") == "reconnecting"]
    h.log("reconnecting events: %s" % recs)
    t.check(len(recs) >= 2, "several attempts while refused (%d)" % len(recs))
    if len(recs) >= 2:
        d = [e.get("delay_ms", 0) for e in recs]
        t.check(200 <= d[0] <= 1500, "first delay about 0.5 s", d)
        t.check(d[1] > d[0], "delay grows", d)
        t.check(all(x <= 30000 * 1.5 for x in d), "delay capped near 30 s", d)

    t.step("let it back in")
    px.refuse = False
    _, ev = named.wait_event("online", 15, start=0, pred=lambda e: e is not named.online)
    t.check(ev is not None and ev.get("name") == "keep", "named CLI back online as keep", ev)
    _, ev2 = anon.wait_event("online", 15, start=0, pred=lambda e: e is not anon.online)
    t.check(ev2 is not None and ev2.get("name") == rname, "random-name CLI back with %s" % rname,
            ev2)
    h.log("back after %.1f s" % (time.monotonic() - t0))
    for n in ("keep", rname):
        r = h.request(edge.port, "GET", "/hello", edge.host(n))
        t.eq(r.status, 200, "%s serves after reconnect" % n)

    t.step("owner dies: name held for the grace period, then free")
    named.send(signal.SIGKILL)
    named.wait_exit(5)
    named.checked_exit = True
    t_dead = time.monotonic()
    rc, out, err = t.run("tunnel-early", [h.TUNNEL, "--port", str(org.port), "--server",
                                          edge.ws_url, "--subdomain", "keep", "--json"],
                         timeout=15)
    t.eq(rc, 3, "name still held right after its owner died")
    t.check(time.monotonic() - t_dead < GRACE, "(that attempt was inside the grace period)")
    time.sleep(max(0, GRACE + 1.5 - (time.monotonic() - t_dead)))
    late = t.tunnel(edge, org.port, name="keep", wait_online=False, label="tunnel-late")
    _, ev = late.wait_event("online", 10)
    t.check(ev is not None and ev.get("name") == "keep", "name free after the grace period",
            late.output_text()[-500:])
