"""Request smuggling, part 3: requests on one connection. Pipelined requests
(several for A; A then B, which must never reach B's tunnel through A or A's
through B), a request that ends the connection (Connection: close, HTTP/1.0),
errors after good requests (the good ones are answered first), requests
after a 101 (raw bytes for the upgraded application of the same name only),
a 101 nobody asked for, a visitor leaving mid-request, and, on an edge in
trusted-proxy mode, a connection that carries several tunnels. Sent as raw
bytes through real tunnels to recording origins (see smuggle.py)."""

import smuggle as s
from smuggle import V, Prefix


def get(name, vid, extra="", host=None, ver="HTTP/1.1", method="GET"):
    host = host if host is not None else "Host: {%s}\r\n" % name[0].upper()
    return "%s /for-%s/%s %s\r\n%s%s\r\n" % (method, name, vid, ver, host, extra)


def post(name, vid, body, extra="", chunked=False):
    h = "Host: {%s}\r\n" % name[0].upper()
    if chunked:
        return "POST /for-%s/%s HTTP/1.1\r\n%sTransfer-Encoding: chunked\r\n%s\r\n%s" % (
            name, vid, h, extra, body)
    return "POST /for-%s/%s HTTP/1.1\r\n%sContent-Length: %d\r\n%s\r\n%s" % (
        name, vid, h, len(body), extra, body)


def g(name, vid, body=b"", done=True, method="GET"):
    return (method, "/for-%s/%s" % (name, vid), body, done)


UP = "Connection: Upgrade\r\nUpgrade: x-echo\r\n"
AFTER = "GET /after-101 HTTP/1.1\r\nHost: {B}\r\n\r\nraw bytes \x00\x01\xff"
SMUGGLED = "GET /smuggled-bravo/x HTTP/1.1\r\nHost: {B}\r\n\r\n"

vectors = [
    # ---- pipelining within one tunnel
    V("pipe-3", "three requests for A in one write",
      [get("alpha", "p1") + get("alpha", "p2") + get("alpha", "p3"), 200, 200, 200], close=False,
      seen={"alpha": [g("alpha", "p1"), g("alpha", "p2"), g("alpha", "p3")]}),
    V("pipe-10", "ten pipelined requests for A",
      ["".join(get("alpha", "q%d" % i) for i in range(10))] + [200] * 10, close=False,
      seen={"alpha": [g("alpha", "q%d" % i) for i in range(10)]}),
    V("pipe-crlf", "an empty line between two requests",
      [get("alpha", "c1") + "\r\n" + get("alpha", "c2"), 200, 200], close=False,
      seen={"alpha": [g("alpha", "c1"), g("alpha", "c2")]}),
    V("pipe-host-case", "second request names A as ALPHA.WARREN.TEST.",
      [get("alpha", "h1") + get("alpha", "h2", host="Host: ALPHA.WARREN.TEST.:{P}\r\n"), 200, 200],
      close=False, seen={"alpha": [g("alpha", "h1"), g("alpha", "h2")]}),
    V("pipe-head-get", "HEAD then GET (no body after the HEAD answer)",
      [get("alpha", "hd", method="HEAD") + get("alpha", "hg"), ("HEAD", 200), 200], close=False,
      seen={"alpha": [g("alpha", "hd", method="HEAD"), g("alpha", "hg")]}),
    V("pipe-post-get", "POST with a body then GET",
      [post("alpha", "pp", "hello") + get("alpha", "pg"), 200, 200], close=False,
      seen={"alpha": [g("alpha", "pp", b"hello", method="POST"), g("alpha", "pg")]}),
    V("pipe-chunked-get", "chunked POST, then a GET right after the last chunk",
      [post("alpha", "cp", "5\r\nhello\r\n0\r\n\r\n", chunked=True) + get("alpha", "cg"), 200, 200],
      close=False, seen={"alpha": [g("alpha", "cp", b"hello", method="POST"), g("alpha", "cg")]}),
    V("pipe-body-request", "POST whose body is a request for B, then a GET for A",
      [lambda e: e.b(post("alpha", "bp", e.b(SMUGGLED).decode("latin-1")) + get("alpha", "bg")),
       200, 200], close=False,
      seen={"alpha": [g("alpha", "bp", SMUGGLED, method="POST"), g("alpha", "bg")]}),
    V("pipe-split", "a head in three writes, then another request",
      ["GET /for-alpha/sp1 HT", "TP/1.1\r\nHo", "st: {A}\r\n\r\n", 200, get("alpha", "sp2"), 200],
      close=False, seen={"alpha": [g("alpha", "sp1"), g("alpha", "sp2")]}),
    # ---- another tunnel on the same connection: 421, never forwarded
    V("pipe-a-b", "A then B in one write",
      [get("alpha", "ab1") + get("bravo", "ab2"), 200, 421],
      seen={"alpha": [g("alpha", "ab1")]}),
    V("pipe-a-a-b", "A, A, then B",
      [get("alpha", "aab1") + get("alpha", "aab2") + get("bravo", "aab3"), 200, 200, 421],
      seen={"alpha": [g("alpha", "aab1"), g("alpha", "aab2")]}),
    V("pipe-b-a", "B then A", [get("bravo", "ba1") + get("alpha", "ba2"), 200, 421],
      conn="bravo", seen={"bravo": [g("bravo", "ba1")]}),
    V("seq-a-b", "A, its answer read, then B",
      [get("alpha", "sab1"), 200, get("bravo", "sab2"), 421],
      seen={"alpha": [g("alpha", "sab1")]}),
    V("pipe-post-b", "POST for A with a body, then B",
      [post("alpha", "pb1", "hello") + get("bravo", "pb2"), 200, 421],
      seen={"alpha": [g("alpha", "pb1", b"hello", method="POST")]}),
    V("pipe-chunked-b", "chunked POST for A, then B",
      [post("alpha", "cb1", "5\r\nhello\r\n0\r\n\r\n", chunked=True) + get("bravo", "cb2"), 200,
       421], seen={"alpha": [g("alpha", "cb1", b"hello", method="POST")]}),
    V("pipe-abs-b", "A, then an absolute-form request naming B (Host B)",
      [get("alpha", "xb1") + "GET http://{B}/for-bravo/xb2 HTTP/1.1\r\nHost: {B}\r\n\r\n", 200,
       421], seen={"alpha": [g("alpha", "xb1")]}),
    V("pipe-abs10-b", "A, then HTTP/1.0 absolute-form naming B without Host",
      [get("alpha", "yb1") + "GET http://{B}/for-bravo/yb2 HTTP/1.0\r\n\r\n", 200, 421],
      seen={"alpha": [g("alpha", "yb1")]}),
    # ---- an error after good requests: the good ones are answered first
    V("pipe-a-bad", "A, then a head with a bare LF",
      [get("alpha", "ax1") + "GET /for-alpha/ax2 HTTP/1.1\nHost: {A}\r\n\r\n", 200, 400],
      seen={"alpha": [g("alpha", "ax1")]}),
    V("pipe-a-clte", "A, then CL+TE hiding a request for B",
      [get("alpha", "ay1") + "POST /for-alpha/ay2 HTTP/1.1\r\nHost: {A}\r\nContent-Length: 4\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, 200, 400],
      seen={"alpha": [g("alpha", "ay1")]}),
    V("pipe-a-badchunk", "A, then a chunked POST whose chunk has no CRLF",
      [get("alpha", "az1") + post("alpha", "az2", "5\r\nhelloXX" + SMUGGLED, chunked=True), 200,
       400],
      seen={"alpha": [g("alpha", "az1"), g("alpha", "az2", Prefix(b"hello"), False, "POST")]}),
    V("pipe-chunk-smuggle", "a valid chunked body, then a request for B in the same write",
      [post("alpha", "cs1", "0\r\n\r\n", chunked=True) + get("bravo", "cs2"), 200, 421],
      seen={"alpha": [g("alpha", "cs1", method="POST")]}),
    # ---- the last request of a connection
    V("close-then-a", "Connection: close, then another request for A",
      [get("alpha", "ca1", "Connection: close\r\n") + get("alpha", "ca2"), 200],
      seen={"alpha": [g("alpha", "ca1")]}),
    V("close-then-b", "Connection: close, then a request for B",
      [get("alpha", "cb1", "Connection: close\r\n") + get("bravo", "cb2"), 200],
      seen={"alpha": [g("alpha", "cb1")]}),
    V("close-then-a-later", "Connection: close, answer read, then another request",
      [get("alpha", "cl1", "Connection: close\r\n"), 200, get("alpha", "cl2")],
      seen={"alpha": [g("alpha", "cl1")]}),
    V("http10-then-a", "HTTP/1.0 without keep-alive, then another request",
      [get("alpha", "ta1", ver="HTTP/1.0") + get("alpha", "ta2"), 200],
      seen={"alpha": [g("alpha", "ta1")]}),
    V("close-post-then-a", "POST with Connection: close and a body, then another request",
      [post("alpha", "cp1", "hello", "Connection: close\r\n") + get("alpha", "cp2"), 200],
      seen={"alpha": [g("alpha", "cp1", b"hello", method="POST")]}),
    # ---- upgrades
    V("up-then-b", "upgrade, and a request for B right behind it in the same write",
      [get("alpha", "upgrade", UP) + AFTER, 101, ("echo", AFTER)], close=None,
      seen={"alpha": [g("alpha", "upgrade")]}, upgraded={"alpha": AFTER}),
    V("up-wait-b", "upgrade, 101 read, then a request for B",
      [get("alpha", "upgrade", UP), 101, AFTER, ("echo", AFTER)], close=None,
      seen={"alpha": [g("alpha", "upgrade")]}, upgraded={"alpha": AFTER}),
    V("up-body", "upgrade request with a body, then raw bytes",
      [post("alpha", "upgrade", "hello", UP) + AFTER, 101, ("echo", AFTER)], close=None,
      seen={"alpha": [g("alpha", "upgrade", b"hello", method="POST")]},
      upgraded={"alpha": AFTER}),
    V("up-declined-b", "upgrade declined (200), then a request for B",
      [get("alpha", "decline", UP) + get("bravo", "db2"), 200, 421],
      seen={"alpha": [g("alpha", "decline")]}),
    V("up-declined-a", "upgrade declined (200), then a request for A",
      [get("alpha", "decline", UP) + get("alpha", "da2"), 200, 200], close=False,
      seen={"alpha": [g("alpha", "decline"), g("alpha", "da2")]}),
    V("rogue-101-b", "a 101 to a plain GET, a request for B right behind it",
      [get("alpha", "rogue-101") + get("bravo", "rb2"), 101],
      seen={"alpha": [g("alpha", "rogue-101")]}),
    V("rogue-101-later", "a 101 to a plain GET, 101 read, then a request for B",
      [get("alpha", "rogue-101"), 101, get("bravo", "rl2")],
      seen={"alpha": [g("alpha", "rogue-101")]}),
    # ---- the visitor leaves in the middle of a request
    V("cut-head", "half a head, then the visitor closes", ["GET /for-alpha/ch HTTP/1.1\r\nHo",
                                                          "shut", "nothing"]),
    V("cut-body", "Content-Length body cut short by the visitor",
      [post("alpha", "cbd", "hello")[:-2], "shut", "nothing"],
      seen={"alpha": [g("alpha", "cbd", Prefix(b""), False, "POST")]}),
    V("cut-chunked", "chunked body cut short by the visitor",
      [post("alpha", "cch", "5\r\nhello\r\n3\r\nab", chunked=True), "shut", "nothing"],
      seen={"alpha": [g("alpha", "cch", Prefix(b"hello"), False, "POST")]}),
]

# trusted-proxy mode: one connection may carry several tunnels, one after another
proxy_vectors = [
    V("proxy-a-then-b", "A, answer read, then B on the same connection",
      [get("alpha", "pab1"), 200, get("bravo", "pab2"), 200], close=False, conn="bravo",
      answers=["alpha", "bravo"],
      seen={"alpha": [g("alpha", "pab1")], "bravo": [g("bravo", "pab2")]}),
    V("proxy-pipelined", "A and B pipelined: B waits behind A's response, so 421",
      [get("alpha", "ppl1") + get("bravo", "ppl2"), 200, 421],
      seen={"alpha": [g("alpha", "ppl1")]}),
    V("proxy-rogue-101", "a 101 to a plain GET for A, then a request for B",
      [get("alpha", "rogue-101"), 101, get("bravo", "prb2")],
      seen={"alpha": [g("alpha", "rogue-101")]}),
    V("proxy-up-declined", "upgrade declined by A, then B on the same connection",
      [get("alpha", "decline", UP), 200, get("bravo", "pud2"), 200], close=False, conn="bravo",
      answers=["alpha", "bravo"],
      seen={"alpha": [g("alpha", "decline")], "bravo": [g("bravo", "pud2")]}),
]

if __name__ == "__main__":
    s.run_all("smuggling-flow", vectors, timeout=240, proxy_vectors=proxy_vectors)
