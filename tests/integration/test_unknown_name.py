"""Unknown tunnel name: 404 with a page that names it; nothing reaches any
origin. Hosts outside the domain are not routed to a tunnel either."""

import harness as h

with h.Test("unknown-name", timeout=30) as t:
    edge = t.tunneld()
    org = t.origin()
    t.tunnel(edge, org.port, name="known")
    c0 = t.origin_count(org)

    r = h.request(edge.port, "GET", "/hello", edge.host("ghost"))
    t.eq(r.status, 404, "unknown name gives 404")
    t.check("ghost" in r.text, "404 page names the tunnel", r.text[:300])
    r = h.request(edge.port, "GET", "/hello", edge.host("ghost"),
                  headers=[("Accept", "text/html")])
    t.eq(r.status, 404, "unknown name gives 404 to a browser too")
    t.check("ghost" in r.text, "HTML 404 page names the tunnel", r.text[:300])
    r = h.request(edge.port, "GET", "/hello", "known.example.com:%d" % edge.port)
    t.check(400 <= r.status < 500, "a host outside the domain is not routed (4xx)", r.status)
    r = h.request(edge.port, "GET", "/hello", "deep.known.%s:%d" % (h.DOMAIN, edge.port))
    t.check(r.status != 200, "a deeper subdomain does not reach the tunnel", r.status)
    t.eq(t.origin_count(org) - c0, 0, "no request reached the origin")
    r = h.request(edge.port, "GET", "/hello", edge.host("known"))
    t.eq(r.status, 200, "the known name still serves")
