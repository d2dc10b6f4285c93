"""The edge sets X-Forwarded-For/-Proto/-Host and drops the visitor's own
(any case, repeated); over IPv6 the address is ::1."""

import harness as h


def fwd(resp):
    hd = resp.json()["headers"]
    return {k.lower(): [v for kk, v in hd if kk.lower() == k.lower()] for k, _ in hd}


with h.Test("forwarded", timeout=30) as t:
    listen = ["127.0.0.1:%d" % h.free_port()]
    v6 = h.ipv6_available()
    if v6:
        p6 = h.free_port(h.socket.AF_INET6)
        listen.append("[::1]:%d" % p6)
    edge = t.tunneld(listen=listen)
    org = t.origin()
    t.tunnel(edge, org.port, name="fwd")
    H = edge.host("fwd")

    spoof = [("X-Forwarded-For", "6.6.6.6"), ("x-forwarded-for", "7.7.7.7"),
             ("X-Forwarded-Proto", "https"), ("X-FORWARDED-HOST", "evil.example"),
             ("X-Forwarded-Host", "evil2.example")]
    r = h.request(edge.port, "GET", "/headers", H, headers=spoof)
    t.eq(r.status, 200, "GET /headers")
    f = fwd(r)
    h.log("origin saw: %s" % r.json()["headers"])
    t.eq(f.get("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For is the visitor address only")
    t.eq(f.get("x-forwarded-proto"), ["http"], "X-Forwarded-Proto is http")
    xfh = f.get("x-forwarded-host")
    t.check(xfh in ([H], ["fwd.%s" % h.DOMAIN]), "X-Forwarded-Host is the visitor's Host", xfh)
    body = r.text
    for bad in ("6.6.6.6", "7.7.7.7", "evil.example", "https"):
        t.check(bad not in body, "visitor-supplied %s dropped" % bad)

    r = h.request(edge.port, "GET", "/headers", H)
    f = fwd(r)
    t.eq(f.get("x-forwarded-for"), ["127.0.0.1"], "X-Forwarded-For set without any from visitor")

    if v6:
        r = h.request(p6, "GET", "/headers", "fwd.%s:%d" % (h.DOMAIN, p6), headers=spoof,
                      addr="::1")
        t.eq(r.status, 200, "request over [::1]")
        f = fwd(r)
        t.eq(f.get("x-forwarded-for"), ["::1"], "X-Forwarded-For over IPv6 is ::1")
