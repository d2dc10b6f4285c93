"""A second request on the same keep-alive connection with another Host gets
421 and the connection is closed; the origin sees only the first request."""

import harness as h

with h.Test("host-switch", timeout=30) as t:
    edge = t.tunneld()
    org = t.origin()
    t.tunnel(edge, org.port, name="alpha")
    t.tunnel(edge, org.port, name="beta")

    t.step("sequential")
    c0 = t.origin_count(org)
    with h.HttpConn(edge.port, timeout=10) as c:
        c.send(h.build_request("GET", "/hello", edge.host("alpha")))
        r = c.read_response()
        t.eq(r.status, 200, "first request (alpha) served")
        c.send(h.build_request("GET", "/hello", edge.host("alpha")))
        r = c.read_response()
        t.eq(r.status, 200, "same Host again on the connection served")
        c.send(h.build_request("GET", "/hello", edge.host("beta")))
        r = c.read_response()
        t.eq(r.status, 421, "other Host on the same connection gets 421")
        t.check(c.closed_by_peer(3), "connection closed after 421")
    t.eq(t.origin_count(org) - c0, 2, "origin saw only the two alpha requests")

    t.step("pipelined")
    c0 = t.origin_count(org)
    with h.HttpConn(edge.port, timeout=10) as c:
        c.send(h.build_request("GET", "/hello", edge.host("beta"))
               + h.build_request("GET", "/hello", edge.host("alpha")))
        r1 = c.read_response()
        r2 = c.read_response()
        t.eq((r1.status, r2.status), (200, 421), "pipelined beta then alpha: 200 then 421")
        t.check(c.closed_by_peer(3), "connection closed after pipelined 421")
    t.eq(t.origin_count(org) - c0, 1, "origin saw only the beta request")
