"""A second request on the same keep-alive connection with another Host gets
421 and the connection is closed; the origin sees only the requests before
the switch."""

import harness as h

with h.Test("host-switch", timeout=40) as t:
    edge = t.tunneld()
    org = t.origin()
    t.tunnel(edge, org.port, name="alpha")
    t.tunnel(edge, org.port, name="beta")

    def switch(first_hosts, then, what):
        c0 = t.origin_count(org)
        with h.HttpConn(edge.port, timeout=5) as c:
            for i, name in enumerate(first_hosts):
                c.send(h.build_request("GET", "/hello", edge.host(name)))
                r = c.read_response()
                t.eq(r.status, 200, "%s: request %d (%s) served" % (what, i + 1, name))
            c.send(h.build_request("GET", "/hello", edge.host(then)))
            r = c.read_response()
            t.eq(r.status, 421, "%s: then %s on the same connection gets 421" % (what, then))
            t.check(c.closed_by_peer(3), "%s: connection closed after 421" % what)
        t.eq(t.origin_count(org) - c0, len(first_hosts),
             "%s: origin saw only the requests before the switch" % what)

    with t.part("alpha then beta"):
        switch(["alpha"], "beta", "alpha then beta")
    with t.part("alpha, alpha, beta"):
        switch(["alpha", "alpha"], "beta", "alpha twice then beta")
    with t.part("pipelined"):
        c0 = t.origin_count(org)
        with h.HttpConn(edge.port, timeout=5) as c:
            c.send(h.build_request("GET", "/hello", edge.host("beta"))
                   + h.build_request("GET", "/hello", edge.host("alpha")))
            r1 = c.read_response()
            t.eq(r1.status, 200, "pipelined: beta served")
            r2 = c.read_response()
            t.eq(r2.status, 421, "pipelined: then alpha gets 421")
            t.check(c.closed_by_peer(3), "pipelined: connection closed after 421")
        t.eq(t.origin_count(org) - c0, 1, "pipelined: origin saw only the beta request")
