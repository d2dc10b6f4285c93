"""DNS changes take effect without restarting anything.

- An edge that is not in DNS yet (edge 3) holds tunnels; edge 1 does not know
  it (404), and within a few seconds of edge 3's address being added to DNS,
  visitors on edges 1 and 2 are forwarded to it.
- A dead address in DNS costs at most the lookup deadline, never a hang:
  * 127.0.0.9, where nothing listens (refused): an unknown name is a 404 at
    once, and registration still works;
  * fdaa::99, an address of this namespace whose packets are dropped (nft,
    ip6tables or tc, whichever is available; skipped if none): an unknown name
    is a 503 with Retry-After within the deadline, a name some edge has is
    still found at once (first yes wins), and registration fails closed with
    the retryable `unavailable` until the address leaves DNS, when the waiting
    CLI comes online by itself.
"""

import time

import cluster as c
from cluster import h

LOOKUP_DEADLINE = 1.0  # server/fleet.c LOOKUP_DEADLINE_MS
SLACK = 0.5
APPEAR_S = 6.0  # DNS refresh: TTL 0 is raised to 2 s, plus a refresh on a miss

with c.Cluster("dns-changes", timeout=120) as t:
    e1, e2 = t.fleet(2)
    org = t.origin()

    t.step("an edge that is not in DNS")
    e3 = t.edge(3, dns=False)
    t.check(h.wait_until(lambda: t.metric(e3, "warren_peers_connected") == 2, 10, 0.1),
            "edge 3 links to the two edges it finds in DNS")
    late = t.tunnel(e3.ws_url, org.port, name="late")
    late2 = t.tunnel(e3.ws_url, org.port, name="late2")
    t.eq(t.get(e1, "/hello", "late").status, 404,
         "edge 1 does not know edge 3 yet: 404 for its tunnel")
    t.dns_add(c.FLEET, [e3.addr])
    t0 = time.monotonic()
    secs = {e.k: t.wait_status(e, "late", 200, 15) for e in (e1, e2)}
    for k, s in secs.items():
        t.check(s is not None and s <= APPEAR_S,
                "edge %d forwards to the new edge within %.0f s of the DNS change" % (k, APPEAR_S),
                "took %s" % s)
    h.log("RESULT new edge in DNS: used after %s s (no restarts)"
          % ", ".join("edge%d %.2f" % (k, s) for k, s in secs.items() if s is not None))
    t.wait_mesh([e1, e2, e3])

    t.step("a dead address in DNS: 127.0.0.9 (refused)")
    dead4 = "127.0.0.9"
    t.dns_add(c.FLEET, [dead4])
    t.check(h.wait_until(lambda: all(t.metric(e, "warren_peers_known") == 3 for e in (e1, e2, e3)),
                         10, 0.1), "every edge now has the dead address among its peers")
    r, secs, err = t.timed_get(e1, "/hello", "nobody-here", timeout=10)
    t.check(r is not None and r.status == 404 and secs <= LOOKUP_DEADLINE + SLACK,
            "unknown name with a refused peer: 404 within the deadline",
            "%s in %.3f s %s" % (r and r.status, secs, err))
    h.log("RESULT refused peer: 404 for an unknown name in %.1f ms" % (secs * 1000))
    r, secs, err = t.timed_get(e2, "/hello", "late2")
    t.check(r is not None and r.status == 200, "a live name is still found", err)
    fresh = t.tunnel(e1.ws_url, org.port, name="fresh4", wait_online=False)
    _, ev = fresh.wait_event("online", 8)
    t.check(ev is not None, "a new name can be registered while a refused address is in DNS",
            "events: %s" % fresh.events[-3:])
    t.dns_remove(c.FLEET, [dead4])
    t.check(h.wait_until(lambda: all(t.metric(e, "warren_peers_known") == 2 for e in (e1, e2, e3)),
                         10, 0.1), "the refused address leaves every edge's peers")

    t.step("a dead address in DNS: fdaa::99 (packets dropped)")
    dead6 = "fdaa::99"
    t.add_addr6(dead6)
    how = c.drop_packets_to(dead6)
    if how is None:
        h.log("SKIP part: neither nft, ip6tables nor tc can drop packets in this namespace")
    else:
        h.log("packets to %s are dropped with %s" % (dead6, how))
        t.require(c.silent(dead6, c.PEER_PORT, 1.0), "a connect to [%s]:%d hangs" % (dead6,
                                                                                 c.PEER_PORT))
        t.dns_add(c.FLEET, [dead6])
        t.check(h.wait_until(lambda: all(t.metric(e, "warren_peers_known") == 3
                                         for e in (e1, e2, e3)), 10, 0.1),
                "every edge now has the silent address among its peers")
        times = []
        for i in range(3):
            r, secs, err = t.timed_get(e1, "/hello", "nobody-%d" % i, timeout=10)
            times.append(secs)
            t.check(r is not None and r.status == 503 and r.header("Retry-After"),
                    "unknown name with a silent peer: 503 with Retry-After",
                    "%s %s" % (r and (r.status, r.headers), err))
            t.check(secs <= LOOKUP_DEADLINE + SLACK,
                    "... answered within the %.0f s deadline (+%.1f)" % (LOOKUP_DEADLINE, SLACK),
                    "%.3f s" % secs)
        if r is not None:
            t.check("retry" in r.text.lower(), "the 503 page says to retry", r.text[:300])
        h.log("RESULT silent peer: 503 for an unknown name in %s ms"
              % ", ".join("%.0f" % (x * 1000) for x in times))
        r, secs, err = t.timed_get(e2, "/hello", "late2")
        t.check(r is not None and r.status == 200 and secs < LOOKUP_DEADLINE,
                "a name another edge has is found without waiting for the silent peer",
                "%s in %.3f s %s" % (r and r.status, secs, err))
        h.log("RESULT silent peer: cold lookup of a live name in %.1f ms" % (secs * 1000))

        blocked = t.tunnel(e1.ws_url, org.port, name="blocked", wait_online=False)
        _, ev = blocked.wait_event("online", 4)
        t.check(ev is None and blocked.alive(),
                "registration fails closed while a peer cannot be asked (no online, no exit)",
                "events: %s" % blocked.events[-3:])
        why = [e.get("reason", "") for e in blocked.events if e.get("event") == "reconnecting"]
        errs = [e for e in blocked.events if e.get("event") == "error"]
        t.check(why, "the CLI retries", blocked.events[-3:])
        t.check(not errs or all(e.get("code") == "unavailable" for e in errs),
                "refused as `unavailable` (retryable), never as name_in_use", errs[-2:])
        t.check(any("unavailable" in l or "not every edge" in l
                    for l in e1.stderr_text().splitlines()),
                "edge 1 logs the refusal as unavailable")
        mark = len(blocked.events)
        t.dns_remove(c.FLEET, [dead6])
        t1 = time.monotonic()
        _, ev = blocked.wait_event("online", 20, start=mark)
        t.check(ev is not None, "once the silent address leaves DNS the CLI comes online by itself",
                blocked.events[-3:])
        if ev is not None:
            h.log("blocked CLI online %.2f s after the DNS change" % (time.monotonic() - t1))
            t.eq(t.get(e2, "/hello", "blocked").status, 200, "and is reachable from edge 2")
