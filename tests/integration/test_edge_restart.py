"""CLIs keep their names across an edge restart that uses the same secret
file: after SIGTERM (graceful) and after SIGKILL, a new tunneld on the same
port accepts their reconnect tokens and the names serve again."""

import signal
import time

import harness as h

with h.Test("edge-restart", timeout=90) as t:
    secret = t.secret_file()
    edge = t.tunneld(secret_file=secret)
    port = edge.port
    org = t.origin()
    named = t.tunnel(edge, org.port, name="persist")
    anon = t.tunnel(edge, org.port)
    rname = anon.name
    online = {named: 1, anon: 1}

    def restart(old, sig, what):
        t.step("%s the edge" % what)
        t0 = time.monotonic()
        rc = old.stop(sig, 10)
        old.checked_exit = True
        if sig == signal.SIGTERM:
            t.eq(rc, 0, "tunneld exits 0 on SIGTERM")
        for c in (named, anon):
            _, ev = c.wait_event("reconnecting", 5)
            t.check(ev is not None, "%s reports reconnecting" % c.label)
        new = t.tunneld(secret_file=secret, listen=["127.0.0.1:%d" % port])
        for c, want in ((named, "persist"), (anon, rname)):
            evs = []
            h.wait_until(lambda: len([e for e in c.events if e.get("event") == "online"])
                         > online[c], 15)
            with c.cond:
                evs = [e for e in c.events if e.get("event") == "online"]
            ok = len(evs) > online[c]
            t.check(ok and evs[-1].get("name") == want,
                    "%s online again as %s" % (c.label, want), evs[-1:] if evs else c.stdout_text())
            online[c] = len(evs)
        h.log("both back %.1f s after the %s" % (time.monotonic() - t0, what))
        for n in ("persist", rname):
            r = h.request(port, "GET", "/hello", new.host(n))
            t.eq(r.status, 200, "%s serves after the %s" % (n, what))
        return new

    edge = restart(edge, signal.SIGTERM, "graceful restart of")
    edge = restart(edge, signal.SIGKILL, "SIGKILL and restart of")
    t.check(named.alive() and anon.alive(), "CLIs never exited")
