"""Malformed requests get their status (400, 431, 505) and the connection is
closed; none of them reaches the origin. Positive controls near the limits
pass."""

import harness as h

with h.Test("malformed", timeout=60) as t:
    edge = t.tunneld()
    org = t.origin()
    t.tunnel(edge, org.port, name="strict")
    H = edge.host("strict")

    def req(head, body=b""):
        return head.replace("{H}", H).encode("latin-1") + body

    many = "".join("X-H%d: v\r\n" % i for i in range(100))
    cases = [
        ("CL + TE", 400, req("POST /echo HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n", b"0\r\n\r\n")),
        ("TE + CL", 400, req("POST /echo HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n"
                             "Content-Length: 5\r\n\r\n", b"0\r\n\r\n")),
        ("duplicate Content-Length (same value)", 400,
         req("POST /echo HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
             b"hello")),
        ("duplicate Content-Length (different)", 400,
         req("POST /echo HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
             b"hello!")),
        ("duplicate Host", 400, req("GET /hello HTTP/1.1\r\nHost: {H}\r\nHost: {H}\r\n\r\n")),
        ("missing Host", 400, req("GET /hello HTTP/1.1\r\nAccept: */*\r\n\r\n")),
        ("bare LF line ends", 400, req("GET /hello HTTP/1.1\nHost: {H}\n\n")),
        ("one bare LF in the head", 400, req("GET /hello HTTP/1.1\r\nHost: {H}\r\nX-A: b\n\r\n")),
        ("obs-fold", 400, req("GET /hello HTTP/1.1\r\nHost: {H}\r\nX-A: b\r\n  folded\r\n\r\n")),
        ("head over 16 KiB", 431, req("GET /hello HTTP/1.1\r\nHost: {H}\r\nX-Big: "
                                      + "a" * 17000 + "\r\n\r\n")),
        ("over 100 header fields", 431, req("GET /hello HTTP/1.1\r\nHost: {H}\r\n" + many
                                            + "\r\n")),
        ("Transfer-Encoding other than chunked", 400,
         req("POST /echo HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: gzip\r\n\r\n")),
        ("invalid Content-Length", 400,
         req("POST /echo HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5x\r\n\r\n", b"hello")),
        ("space before colon", 400, req("GET /hello HTTP/1.1\r\nHost : {H}\r\n\r\n")),
        ("NUL in a header value", 400, req("GET /hello HTTP/1.1\r\nHost: {H}\r\nX-A: a\0b\r\n\r\n")),
        ("HTTP/2.0 request line", 505, req("GET /hello HTTP/2.0\r\nHost: {H}\r\n\r\n")),
    ]

    for what, want, data in cases:
        c0 = t.origin_count(org)
        r, closed, err = h.raw_exchange(edge.port, data, timeout=10)
        got = r.status if r else "no response (%s)" % err
        t.eq(got, want, "%s -> %d" % (what, want))
        t.check(closed, "%s: connection closed after the error" % what)
        t.eq(t.origin_count(org) - c0, 0, "%s: origin not reached" % what)

    t.step("positive controls")
    c0 = t.origin_count(org)
    hdrs = [("X-H%d" % i, "v") for i in range(90)]
    r = h.request(edge.port, "GET", "/hello", H, headers=hdrs)
    t.eq(r.status, 200, "91 header fields pass")
    r = h.request(edge.port, "GET", "/hello", H, headers=[("X-Big", "a" * 15000)])
    t.eq(r.status, 200, "a 15 KiB head passes")
    r = h.request(edge.port, "POST", "/echo", H, body=b"hello")
    t.eq((r.status, r.body), (200, b"hello"), "a well-formed POST passes")
    r, closed, err = h.raw_exchange(edge.port, req("GET /hello HTTP/1.0\r\nHost: {H}\r\n\r\n"))
    t.eq(r.status if r else err, 200, "HTTP/1.0 request passes")
    t.eq(t.origin_count(org) - c0, 4, "the 4 good requests reached the origin")
