"""--max-streams 4: with 4 requests in flight on a tunnel, a 5th gets 503 at
once with a page that says why; when they finish, requests are served again."""

import threading
import time

import harness as h

with h.Test("max-streams", timeout=40) as t:
    edge = t.tunneld(args=["--max-streams", "4"])
    org = t.origin()
    t.tunnel(edge, org.port, name="narrow")
    H = edge.host("narrow")
    res = [None] * 4

    def slow(i):
        try:
            res[i] = h.request(edge.port, "GET", "/slow?delay_ms=3000", H, timeout=15).status
        except Exception as e:  # noqa: BLE001
            res[i] = repr(e)

    ths = [threading.Thread(target=slow, args=(i,), daemon=True) for i in range(4)]
    for th in ths:
        th.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    r = h.request(edge.port, "GET", "/hello", H, timeout=10)
    dt = time.monotonic() - t0
    t.eq(r.status, 503, "5th concurrent request gets 503")
    t.check(dt < 1.5, "503 at once", "%.2f s" % dt)
    t.check("narrow" in r.text, "503 page names the tunnel", r.text[:300])
    for th in ths:
        th.join(15)
    t.eq(res, [200] * 4, "the 4 in-flight requests completed")
    # A slot is held until both ends have closed the stream: the visitor's
    # close travels to the CLI and the CLI's FIN comes back, one round trip
    # after the last response byte. Retry as the 503 page asks, briefly.
    t0 = time.monotonic()
    statuses = []

    def served():
        statuses.append(h.request(edge.port, "GET", "/hello", H).status)
        return statuses[-1] == 200

    ok = h.wait_until(served, 2.0, interval=0.02)
    t.check(ok, "served again once streams are free",
            "%d tries in %.3f s, statuses %s" % (len(statuses), time.monotonic() - t0,
                                                 sorted(set(statuses))))
