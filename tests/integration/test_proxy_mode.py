"""Behind a trusted proxy (--proxy-client-ip-header Fly-Client-IP): the
visitor address comes from that header and X-Forwarded-Proto from the proxy,
and one connection may carry requests for several tunnels in turn (a proxy
pools its upstream connections). Without the flag the same switch is a 421
(test_host_switch.py). A value that is not an IP address is ignored."""

import harness as h


def origin_headers(resp):
    return {k.lower(): v for k, v in resp.json()["headers"]}


with h.Test("proxy-mode", timeout=40) as t:
    edge = t.tunneld(args=["--proxy-client-ip-header", "Fly-Client-IP"])
    org = t.origin()
    t.tunnel(edge, org.port, name="alpha")
    t.tunnel(edge, org.port, name="beta")

    with t.part("client address and scheme from the proxy"):
        r = h.request(edge.port, "GET", "/headers", edge.host("alpha"),
                      headers=[("Fly-Client-IP", "203.0.113.7"), ("X-Forwarded-Proto", "https"),
                               ("X-Forwarded-For", "6.6.6.6")])
        t.eq(r.status, 200, "served")
        hd = origin_headers(r)
        t.eq(hd.get("x-forwarded-for"), "203.0.113.7", "X-Forwarded-For is the proxy's client IP")
        t.eq(hd.get("x-forwarded-proto"), "https", "X-Forwarded-Proto from the proxy")
        r = h.request(edge.port, "GET", "/headers", edge.host("alpha"),
                      headers=[("Fly-Client-IP", "not-an-ip")])
        t.eq(origin_headers(r).get("x-forwarded-for"), "127.0.0.1",
             "a value that is not an address falls back to the socket's")
        r = h.request(edge.port, "GET", "/headers", edge.host("alpha"),
                      headers=[("Fly-Client-IP", "2001:db8::5")])
        t.eq(origin_headers(r).get("x-forwarded-for"), "2001:db8::5", "IPv6 client address")

    with t.part("one connection, several tunnels"):
        c0 = t.origin_count(org)
        with h.HttpConn(edge.port, timeout=5) as c:
            for name in ("alpha", "beta", "alpha", "nosuch", ):
                c.send(h.build_request("GET", "/headers", edge.host(name),
                                       headers=[("Fly-Client-IP", "198.51.100.1")]))
                r = c.read_response()
                if name == "nosuch":
                    t.eq(r.status, 404, "an unknown tunnel on the shared connection: 404")
                    t.check("nosuch" in r.text, "404 names it", r.text[:200])
                else:
                    t.eq(r.status, 200, "%s served on the shared connection" % name)
                    xfh = origin_headers(r).get("x-forwarded-host", "")
                    t.check(xfh.startswith(name + "."), "%s's request reached %s" % (name, name),
                            xfh)
        t.eq(t.origin_count(org) - c0, 3, "origin saw exactly the three tunnel requests")
