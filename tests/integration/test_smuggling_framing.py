"""Request smuggling, part 1: body framing. Content-Length with
Transfer-Encoding, Transfer-Encoding variants, invalid and duplicate
Content-Length, chunk sizes, chunk extensions and trailers, sent as raw bytes
through a real tunnel to a recording origin (see smuggle.py for what every
vector asserts). Refused heads get 400 and a close and reach no origin;
errors inside a chunked body come after the head was forwarded, so the
origin sees that one request, never complete, and nothing after it."""

import smuggle as s
from smuggle import V, Prefix

SMUGGLED = "GET /smuggled-bravo/x HTTP/1.1\r\nHost: {B}\r\n\r\n"


def post(vid, hdrs, body="", ver="HTTP/1.1", host="Host: {A}\r\n"):
    return "POST /for-alpha/%s %s\r\n%s%s\r\n%s" % (vid, ver, host, hdrs, body)


def refused(vid, what, hdrs, body="", status=400, **kw):
    """A head the edge must refuse: status, close, no origin reached."""
    return V(vid, what, [post(vid, hdrs, body, **kw), status])


def accepted(vid, what, hdrs, body, want_body):
    """Forwarded normalised: A's origin parses exactly one request with this body."""
    return V(vid, what, [post(vid, hdrs, body), 200], close=False,
             seen={"alpha": [("POST", "/for-alpha/" + vid, want_body, True)]})


def body_error(vid, what, body, good_prefix=b""):
    """Chunked body with an error: the head went out, the decoded body the
    origin got stops before the error (a prefix of good_prefix), 400, close."""
    return V(vid, what, [post(vid, "Transfer-Encoding: chunked\r\n", body), 400],
             seen={"alpha": [("POST", "/for-alpha/" + vid, Prefix(good_prefix), False)]})




CHUNKED = "5\r\nhello\r\n0\r\n\r\n"

vectors = [
    # ---- Content-Length together with Transfer-Encoding
    refused("cl-te", "CL then TE, smuggled request after the 0 chunk",
            "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n" + SMUGGLED),
    refused("te-cl", "TE then CL, body holds a request for B",
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            "%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED) + 2, SMUGGLED)),
    refused("cl0-te", "Content-Length: 0 with TE",
            "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", CHUNKED),
    refused("te-cl-http10", "TE and CL in HTTP/1.0", "Transfer-Encoding: chunked\r\n"
            "Content-Length: 5\r\n", "hello", ver="HTTP/1.0"),
    # ---- Transfer-Encoding variants
    refused("te-chunked-chunked", "TE: chunked, chunked", "Transfer-Encoding: chunked, chunked\r\n",
            CHUNKED),
    refused("te-xchunked", "TE: xchunked", "Transfer-Encoding: xchunked\r\n", CHUNKED),
    refused("te-chunkedx", "TE: chunked-false", "Transfer-Encoding: chunked-false\r\n", CHUNKED),
    refused("te-gzip-chunked", "TE: gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n",
            CHUNKED),
    refused("te-chunked-identity", "TE: chunked, identity",
            "Transfer-Encoding: chunked, identity\r\n", CHUNKED),
    refused("te-identity", "TE: identity with a body", "Transfer-Encoding: identity\r\n",
            "hello"),
    refused("te-empty", "TE with an empty value", "Transfer-Encoding:\r\n", CHUNKED),
    refused("te-comma", "TE: chunked, (empty list member)", "Transfer-Encoding: chunked,\r\n",
            CHUNKED),
    refused("te-quoted", "TE: \"chunked\"", "Transfer-Encoding: \"chunked\"\r\n", CHUNKED),
    refused("te-inner-space", "TE: chun ked", "Transfer-Encoding: chun ked\r\n", CHUNKED),
    refused("te-trailing-tab", "TE: chunked followed by a tab", "Transfer-Encoding: chunked\t\r\n",
            CHUNKED),
    refused("te-vtab", "TE value after a vertical tab", "Transfer-Encoding:\x0bchunked\r\n",
            CHUNKED),
    refused("te-nul", "TE: chunked followed by NUL", "Transfer-Encoding: chunked\x00\r\n", CHUNKED),
    refused("te-twice", "two TE fields", "Transfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n", CHUNKED),
    refused("te-twice-split", "TE: gzip then TE: chunked", "Transfer-Encoding: gzip\r\n"
            "Transfer-Encoding: chunked\r\n", CHUNKED),
    refused("te-http10", "TE: chunked in HTTP/1.0", "Transfer-Encoding: chunked\r\n", CHUNKED,
            ver="HTTP/1.0"),
    refused("te-space-colon", "\"Transfer-Encoding : chunked\"", "Transfer-Encoding : chunked\r\n",
            CHUNKED),
    refused("te-underscore", "Transfer_Encoding: chunked", "Transfer_Encoding: chunked\r\n",
            CHUNKED),
    refused("te-obs-fold", "TE value on a folded line", "Transfer-Encoding:\r\n chunked\r\n",
            CHUNKED),
    accepted("te-upper", "TE: CHUNKED", "Transfer-Encoding: CHUNKED\r\n", CHUNKED, b"hello"),
    accepted("te-leading-tab", "TE: <tab>chunked", "Transfer-Encoding:\tchunked\r\n", CHUNKED,
             b"hello"),
    accepted("te-spaces", "TE with spaces around chunked", "transfer-encoding:   chunked   \r\n",
             CHUNKED, b"hello"),
    # ---- Content-Length
    refused("cl-dup-equal", "two equal Content-Length", "Content-Length: 5\r\n"
            "Content-Length: 5\r\n", "hello"),
    refused("cl-dup-differ", "Content-Length 5 and 6", "Content-Length: 5\r\n"
            "Content-Length: 6\r\n", "hello!"),
    refused("cl-list", "Content-Length: 5,5", "Content-Length: 5,5\r\n", "hello"),
    refused("cl-plus", "Content-Length: +12", "Content-Length: +12\r\n", "hello world!"),
    refused("cl-hex", "Content-Length: 0x10", "Content-Length: 0x10\r\n", "0123456789abcdef"),
    refused("cl-exp", "Content-Length: 1e3", "Content-Length: 1e3\r\n", "x" * 1000),
    refused("cl-negative", "Content-Length: -1", "Content-Length: -1\r\n"),
    refused("cl-huge", "Content-Length over 10^18", "Content-Length: 99999999999999999999\r\n",
            "hello"),
    refused("cl-empty", "empty Content-Length", "Content-Length:\r\n"),
    refused("cl-inner-space", "Content-Length: 5 5", "Content-Length: 5 5\r\n", "hello"),
    refused("cl-trailing-tab", "Content-Length: 5 then a tab", "Content-Length: 5\t\r\n", "hello"),
    refused("cl-underscore", "Content_Length: 5", "Content_Length: 5\r\n", "hello"),
    refused("cl-space-colon", "\"Content-Length : 5\"", "Content-Length : 5\r\n", "hello"),
    accepted("cl-leading-space", "Content-Length: \" 5\" (leading OWS)", "Content-Length:  5\r\n",
             "hello", b"hello"),
    accepted("cl-leading-zeros", "Content-Length: 005", "Content-Length: 005\r\n", "hello",
             b"hello"),
    V("cl-body-holds-request", "a body that looks like a request for B",
      [lambda e: e.b(post("cl-body-holds-request", "Content-Length: %d\r\n" % len(e.b(SMUGGLED))))
       + e.b(SMUGGLED), 200], close=False,
      seen={"alpha": [("POST", "/for-alpha/cl-body-holds-request", SMUGGLED, True)]}),
    V("cl-max", "Content-Length 10^18-1, the visitor leaves after 5 bytes: no answer",
      [post("cl-max", "Content-Length: 999999999999999999\r\n", "hello"), "shut", "nothing"],
      seen={"alpha": [("POST", "/for-alpha/cl-max", Prefix(b"hello"), False)]}),
    # ---- chunk sizes
    body_error("chunk-negative", "chunk size -1", "-1\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-overflow", "chunk size of 17 hex digits",
               "fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-overflow-2^60", "chunk size 2^60", "1000000000000000\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-0x", "chunk size 0x5", "0x5\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-empty-size", "empty chunk size line", "\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-size-space", "chunk size followed by a space", "5 \r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-size-tab", "chunk size, tab, extension", "5\t;a=b\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-missing-crlf", "no CRLF after chunk data",
               "5\r\nhelloXX0\r\n\r\n" + SMUGGLED, b"hello"),
    body_error("chunk-size-bare-lf", "bare LF after the chunk size", "5\nhello\r\n0\r\n\r\n"),
    body_error("chunk-data-bare-lf", "bare LF after chunk data", "5\r\nhello\n0\r\n\r\n",
               b"hello"),
    body_error("chunk-last-bare-lf", "bare LF in the last chunk line", "5\r\nhello\r\n0\n\r\n",
               b"hello"),
    body_error("chunk-too-long", "chunk data longer than its size", "2\r\nabc\r\n0\r\n\r\n",
               b"ab"),
    body_error("chunk-bare-cr", "bare CR in a chunk size line", "5\rX\r\nhello\r\n0\r\n\r\n"),
    # ---- chunk extensions
    body_error("chunk-ext-long", "chunk extension over 16 KiB",
               "5;a=" + "x" * 17000 + "\r\nhello\r\n0\r\n\r\n"),
    accepted("chunk-ext-8k", "8 KiB chunk extension", "Transfer-Encoding: chunked\r\n",
             "5;a=" + "x" * 8000 + "\r\nhello\r\n0\r\n\r\n", b"hello"),
    accepted("chunk-ext-quoted", "quoted extension with ; and an escaped quote",
             "Transfer-Encoding: chunked\r\n",
             "5;name=\"va;l\\\"ue\";b\r\nhello\r\n0\r\n\r\n", b"hello"),
    body_error("chunk-ext-ctl", "control byte in a chunk extension",
               "5;a=\x01\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-ext-nul-quoted", "NUL inside a quoted extension",
               "5;a=\"x\x00y\"\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-ext-unterminated", "unterminated quoted extension",
               "5;a=\"x\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-ext-bare-lf", "bare LF in a chunk extension",
               "5;a\nb\r\nhello\r\n0\r\n\r\n"),
    body_error("chunk-ext-bad-name", "extension name not a token",
               "5;a@b\r\nhello\r\n0\r\n\r\n"),
    # ---- trailers
    body_error("trailer-cl", "Content-Length in the trailer",
               "5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\nhello",
               b"hello"),
    body_error("trailer-te", "Transfer-Encoding in the trailer",
               "0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    body_error("trailer-host", "Host in the trailer", "0\r\nHost: {B}\r\n\r\n"),
    body_error("trailer-obs-fold", "folded trailer line", "0\r\nX-T: a\r\n b\r\n\r\n"),
    accepted("trailer-ok", "an ordinary trailer field", "Transfer-Encoding: chunked\r\n",
             "5\r\nhello\r\n0\r\nX-Trailer: v\r\n\r\n", b"hello"),
]

for v in vectors:
    if v.vid in ("te-upper", "te-leading-tab", "te-spaces"):
        v.check = s.header_is("transfer-encoding", ["chunked"])
    if v.vid in ("cl-leading-space", "cl-leading-zeros"):
        v.check = s.header_is("content-length", ["5"])

if __name__ == "__main__":
    s.run_all("smuggling-framing", vectors, timeout=240)
