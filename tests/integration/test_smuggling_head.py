"""Request smuggling, part 2: the request head. Bare LF and bare CR, obs-fold,
header lines without a colon or with space before it, NUL and control bytes
in names, values and targets, Host variants, absolute-form targets, oversized
heads and request lines, HTTP/0.9 and the HTTP/2 preface, method oddities and
the fields the edge drops or rewrites. Sent as raw bytes through a real
tunnel to a recording origin (see smuggle.py for what every vector asserts):
a refused head gets its status and a close and reaches no origin; an
accepted one reaches exactly its own tunnel, normalised."""

import smuggle as s
from smuggle import V


def get(vid, extra="", host="Host: {A}\r\n", ver="HTTP/1.1", method="GET", target=None):
    return "%s %s %s\r\n%s%s\r\n" % (method, target or "/for-alpha/" + vid, ver, host, extra)


def refused(vid, what, data, status=400):
    return V(vid, what, [data, status])


def fwd(vid, what, data, target=None, method="GET", conn="alpha", close=False, check=None):
    """Forwarded: the origin of `conn` parses exactly this one request."""
    t = target or "/for-%s/%s" % (conn, vid)
    return V(vid, what, [data, 200], close=close, conn=conn, check=check,
             seen={conn: [(method, t, b"", True)]})


BIG = "X-Big: " + "a" * 17000 + "\r\n"
MANY = "".join("X-H%d: v\r\n" % i for i in range(100))

vectors = [
    # ---- line ends
    refused("lf-request-line", "request line ends in bare LF",
            "GET /for-alpha/x HTTP/1.1\nHost: {A}\r\n\r\n"),
    refused("lf-header", "a header line ends in bare LF", get("lf-header", "X-A: b\n")),
    refused("lf-only", "every line ends in bare LF", "GET /for-alpha/x HTTP/1.1\nHost: {A}\n\n"),
    refused("lf-end", "head ends in CRLF LF", "GET /for-alpha/x HTTP/1.1\r\nHost: {A}\r\n\n"),
    refused("cr-request-line", "bare CR in the request line",
            "GET /for-alpha/x HTTP/1.1\rHost: {A}\r\n\r\n"),
    refused("cr-value", "bare CR inside a value", get("cr-value", "X-A: a\rb\r\n")),
    refused("cr-cr-lf", "CR CR LF", get("cr-cr-lf", "X-A: a\r\r\n")),
    refused("cr-hides-header", "bare CR hides a Transfer-Encoding",
            get("cr-hides-header", "X-A: a\rTransfer-Encoding: chunked\r\n")),
    # ---- obs-fold
    refused("fold-space", "obs-fold with a space", get("fold-space", "X-A: a\r\n b\r\n")),
    refused("fold-tab", "obs-fold with a tab", get("fold-tab", "X-A: a\r\n\tb\r\n")),
    refused("fold-first", "first header line starts with a space",
            "GET /for-alpha/x HTTP/1.1\r\n Host: {A}\r\n\r\n"),
    refused("fold-host", "Host folded onto two lines",
            "GET /for-alpha/x HTTP/1.1\r\nHost:\r\n {A}\r\n\r\n"),
    # ---- header syntax
    refused("no-colon", "header line without a colon", get("no-colon", "NoColon\r\n")),
    refused("space-colon", "space before the colon", get("space-colon", "X-A : b\r\n")),
    refused("tab-colon", "tab before the colon", get("tab-colon", "X-A\t: b\r\n")),
    refused("empty-name", "empty field name", get("empty-name", ": b\r\n")),
    refused("name-not-token", "field name with ( )", get("name-not-token", "X(A): b\r\n")),
    refused("name-obs-text", "field name with a UTF-8 byte", get("name-obs-text", "X\xe9: b\r\n")),
    refused("conn-cl", "Connection names Content-Length",
            "POST /for-alpha/conn-cl HTTP/1.1\r\nHost: {A}\r\nConnection: keep-alive, "
            "Content-Length\r\nContent-Length: 5\r\n\r\nhello"),
    refused("conn-te", "Connection names Transfer-Encoding",
            get("conn-te", "Connection: transfer-encoding\r\n")),
    refused("conn-host", "Connection names Host", get("conn-host", "Connection: host\r\n")),
    # ---- NUL and control bytes
    refused("nul-name", "NUL in a field name", get("nul-name", "X-\x00A: b\r\n")),
    refused("nul-value", "NUL in a value", get("nul-value", "X-A: a\x00b\r\n")),
    refused("nul-target", "NUL in the target", get("nul-target", target="/for-alpha/a\x00b")),
    refused("nul-method", "NUL in the method", get("nul-method", method="G\x00T")),
    V("nul-after-head", "NUL right after a whole head: the request goes, the NUL gets 400",
      ["GET /for-alpha/nul-after-head HTTP/1.1\r\nHost: {A}\r\n\r\n\x00", 200, 400],
      seen={"alpha": [("GET", "/for-alpha/nul-after-head", b"", True)]}),
    refused("ctl-value", "control byte 0x01 in a value", get("ctl-value", "X-A: a\x01b\r\n")),
    refused("del-value", "DEL in a value", get("del-value", "X-A: a\x7fb\r\n")),
    refused("esc-name", "ESC in a field name", get("esc-name", "X\x1bA: b\r\n")),
    refused("ctl-target", "control byte in the target",
            get("ctl-target", target="/for-alpha/\x1b")),
    refused("vtab-host", "vertical tab before the Host value", get("vtab-host",
            host="Host:\x0b{A}\r\n")),
    refused("tls-hello", "a TLS ClientHello on the plain port",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\r\n\r\n"),
    # ---- Host
    fwd("host-port", "Host with another port", get("host-port", host="Host: {AN}:1\r\n"),
        check=s.header_is("host", ["{AN}:1"])),
    fwd("host-dot", "Host with a trailing dot", get("host-dot", host="Host: {AN}.:{P}\r\n")),
    fwd("host-upper", "Host in upper case",
        get("host-upper", host="Host: ALPHA.WARREN.TEST:{P}\r\n")),
    fwd("host-no-port", "Host without a port", get("host-no-port", host="Host: {AN}\r\n")),
    refused("host-missing", "HTTP/1.1 without Host", get("host-missing", host="")),
    refused("host-missing-10", "HTTP/1.0 without Host, origin-form (not routable)",
            get("host-missing-10", host="", ver="HTTP/1.0")),
    refused("host-dup", "Host twice, equal", get("host-dup", "Host: {A}\r\n")),
    refused("host-dup-b", "Host for A, then Host for B", get("host-dup-b", "Host: {B}\r\n")),
    refused("host-dup-b-first", "Host for B, then Host for A",
            get("host-dup-b-first", "Host: {A}\r\n", host="Host: {B}\r\n")),
    refused("host-empty", "empty Host", get("host-empty", host="Host:\r\n")),
    refused("host-blank", "Host of spaces", get("host-blank", host="Host:   \r\n")),
    refused("host-userinfo", "Host with userinfo naming B",
            get("host-userinfo", host="Host: {AN}@{BN}\r\n")),
    refused("host-path", "Host with a path", get("host-path", host="Host: {AN}/x\r\n")),
    refused("host-port-big", "Host port 65536", get("host-port-big", host="Host: {AN}:65536\r\n")),
    refused("host-comma", "Host: A, B", get("host-comma", host="Host: {AN}, {BN}\r\n")),
    V("host-unknown", "Host under the domain but no such tunnel",
      [get("host-unknown", host="Host: charlie.warren.test:{P}\r\n"), 404]),
    V("host-other-domain", "Host outside the domain",
      [get("host-other-domain", host="Host: example.com\r\n"), 404]),
    # ---- absolute-form
    fwd("abs-same", "absolute-form naming A, Host A",
        get("abs-same", target="http://{A}/for-alpha/abs-same?q=1"),
        target="/for-alpha/abs-same?q=1"),
    fwd("abs-case", "absolute-form with upper-case scheme and host",
        get("abs-case", target="HTTP://ALPHA.warren.test:{P}/for-alpha/abs-case"),
        target="/for-alpha/abs-case"),
    fwd("abs-https", "absolute-form with https scheme",
        get("abs-https", target="https://{A}/for-alpha/abs-https"),
        target="/for-alpha/abs-https"),
    fwd("abs-no-path", "absolute-form without a path", get("abs-no-path", target="http://{A}?x=1"),
        target="/?x=1"),
    refused("abs-other", "absolute-form naming B, Host A",
            get("abs-other", target="http://{B}/for-bravo/abs-other")),
    refused("abs-other-port", "absolute-form with another port than Host",
            get("abs-other-port", target="http://{AN}:1/for-alpha/x")),
    refused("abs-scheme", "absolute-form with scheme ftp",
            get("abs-scheme", target="ftp://{A}/for-alpha/x")),
    refused("abs-userinfo", "absolute-form with userinfo",
            get("abs-userinfo", target="http://u@{A}/for-alpha/x")),
    refused("abs-empty-auth", "absolute-form with an empty authority",
            get("abs-empty-auth", target="http:///for-alpha/x")),
    refused("abs-relative", "relative target without a slash",
            get("abs-relative", target="for-alpha/x")),
    refused("authority-form", "authority-form target", get("authority-form", target="{A}")),
    fwd("abs-10", "HTTP/1.0 absolute-form naming B without Host: routed to B, Host added",
        get("abs-10", host="", ver="HTTP/1.0", target="http://{B}/for-bravo/abs-10"),
        conn="bravo", close=True),
    # ---- size limits
    refused("head-16k", "head over 16 KiB", get("head-16k", BIG), 431),
    refused("line-16k", "request line (target) over 16 KiB",
            get("line-16k", target="/for-alpha/" + "a" * 17000), 414),
    refused("method-16k", "a 17 KiB token with no space", "G" * 17000, 431),
    refused("headers-101", "101 header fields", get("headers-101", MANY), 431),
    fwd("head-15k", "a 15 KiB head is forwarded",
        get("head-15k", "X-Big: " + "a" * 15000 + "\r\n")),
    fwd("headers-100", "100 header fields are forwarded",
        get("headers-100", "".join("X-H%d: v\r\n" % i for i in range(99)))),
    # ---- versions
    refused("http09", "HTTP/0.9 simple request", "GET /for-alpha/http09\r\n\r\n"),
    refused("http09-version", "HTTP/0.9 version", get("http09-version", ver="HTTP/0.9"), 505),
    refused("http2-version", "HTTP/2.0 version", get("http2-version", ver="HTTP/2.0"), 505),
    refused("h2-preface", "HTTP/2 connection preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    refused("http12", "HTTP/1.2", get("http12", ver="HTTP/1.2"), 505),
    refused("http-lower", "http/1.1 in lower case", get("http-lower", ver="http/1.1")),
    refused("http110", "HTTP/1.10", get("http110", ver="HTTP/1.10")),
    fwd("http10-keep", "HTTP/1.0 with keep-alive",
        get("http10-keep", "Connection: keep-alive\r\n", ver="HTTP/1.0")),
    # ---- methods
    refused("method-lower", "method get in lower case", get("method-lower", method="get"), 501),
    refused("method-unknown", "unknown method FOO", get("method-unknown", method="FOO"), 501),
    refused("method-long", "an unknown 30-letter method", get("method-long", method="A" * 30), 501),
    refused("method-connect", "CONNECT", get("method-connect", method="CONNECT", target="{A}")),
    refused("method-tab", "tab between method and target",
            "GET\t/for-alpha/x HTTP/1.1\r\nHost: {A}\r\n\r\n"),
    refused("method-2sp", "two spaces after the method",
            "GET  /for-alpha/x HTTP/1.1\r\nHost: {A}\r\n\r\n"),
    refused("method-trailing-sp", "space after the version",
            "GET /for-alpha/x HTTP/1.1 \r\nHost: {A}\r\n\r\n"),
    refused("method-star-get", "GET *", get("method-star-get", target="*")),
    refused("space-in-target", "space inside the target",
            "GET /for-alpha/a b HTTP/1.1\r\nHost: {A}\r\n\r\n"),
    refused("fragment", "fragment in the target", get("fragment", target="/for-alpha/x#y")),
    fwd("options-star", "OPTIONS *", get("options-star", method="OPTIONS", target="*"),
        method="OPTIONS", target="*"),
    fwd("propfind", "PROPFIND (WebDAV)", get("propfind", method="PROPFIND"), method="PROPFIND"),
    V("head", "HEAD", [get("head", method="HEAD"), ("HEAD", 200)], close=False,
      seen={"alpha": [("HEAD", "/for-alpha/head", b"", True)]}),
    fwd("get-with-body", "GET with a Content-Length body",
        get("get-with-body", "Content-Length: 5\r\n") + "hello"),
    # ---- what the edge adds and drops
    fwd("leading-crlf", "empty lines before the request line",
        "\r\n\r\n" + get("leading-crlf")),
    fwd("xff", "visitor's X-Forwarded-*, Forwarded and X-Real-IP are replaced",
        get("xff", "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: {B}\r\nForwarded: for=6.6.6.6;"
            "host={BN}\r\nX-Real-IP: 6.6.6.6\r\nx-forwarded-proto: https\r\n")),
    fwd("xff-underscore", "X_Forwarded_For and X_Real_IP (underscore spellings) are dropped",
        get("xff-underscore", "X_Forwarded_For: 6.6.6.6\r\nX-Forwarded_Host: {B}\r\n"
            "X_Real_IP: 6.6.6.6\r\n")),
]

def xff_check(env, tag, reqs):
    r = reqs["alpha"][0] if reqs["alpha"] else None
    names = {k.lower().replace("_", "-") for k, _ in r.headers} if r else set()
    env.t.check(r is not None and r.header_all("x-forwarded-proto") == ["http"]
                and "forwarded" not in names and "x-real-ip" not in names
                and [k for k, _ in r.headers if "_" in k] == [],
                "%s: only the edge's X-Forwarded-* reach the origin" % tag,
                r.headers if r else "no request")


for v in vectors:
    if v.vid in ("xff", "xff-underscore"):
        v.check = xff_check
    if v.vid == "get-with-body":
        v.seen = {"alpha": [("GET", "/for-alpha/get-with-body", b"hello", True)]}
    if v.vid == "host-dot":
        v.check = s.header_is("host", ["{AN}.:{P}"])
    if v.vid == "abs-10":
        v.check = s.header_is("host", ["{B}"], tunnel="bravo")

if __name__ == "__main__":
    s.run_all("smuggling-head", vectors, timeout=240)
