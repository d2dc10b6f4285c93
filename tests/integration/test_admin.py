"""The admin endpoint (--admin-listen): /healthz answers 200 "ok"; /readyz
answers 200 "ready", then 503 "draining" during a SIGTERM drain held open by
an in-flight slow download (while /healthz and /metrics keep answering);
/metrics is Prometheus text format 0.0.4 that a strict parser accepts, with
every documented family; its counters move exactly with the traffic
(requests_total by the number of requests forwarded, a 404 by one, nothing
for the admin requests themselves). HTTP handling: keep-alive and pipelining,
HEAD without a body, unknown path 404, POST 405 with Allow, malformed heads
400 and close, an oversized head 431, HTTP/1.0 closes, at most 64
connections (the 65th gets 503), an idle connection is closed after about
10 s, garbage does not hurt. A busy admin port makes tunneld exit non-zero
with a message naming the address."""

import math
import random
import re
import socket
import threading
import time

import harness as h

MIB = 1024 * 1024
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ParseError(Exception):
    pass


def _unescape(s, allow_quote):
    out, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            if i + 1 >= len(s):
                raise ParseError("dangling backslash in %r" % s)
            n = s[i + 1]
            if n == "\\":
                out.append("\\")
            elif n == "n":
                out.append("\n")
            elif n == '"' and allow_quote:
                out.append('"')
            else:
                raise ParseError("bad escape \\%s in %r" % (n, s))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ParseError("bad value %r" % s)
    return float(s)


def _labels(s, lineno):
    """s: text after '{'. Returns (dict, rest after '}')."""
    labels, i = {}, 0
    while True:
        if i < len(s) and s[i] == "}":
            return labels, s[i + 1:]
        j = s.find("=", i)
        if j < 0:
            raise ParseError("line %d: label without '='" % lineno)
        name = s[i:j]
        if not LABEL_RE.match(name):
            raise ParseError("line %d: bad label name %r" % (lineno, name))
        if name in labels:
            raise ParseError("line %d: duplicate label %r" % (lineno, name))
        if j + 1 >= len(s) or s[j + 1] != '"':
            raise ParseError("line %d: label value not quoted" % lineno)
        k, raw = j + 2, []
        while True:
            if k >= len(s):
                raise ParseError("line %d: unterminated label value" % lineno)
            if s[k] == "\\":
                raw.append(s[k:k + 2])
                k += 2
                continue
            if s[k] == '"':
                break
            raw.append(s[k])
            k += 1
        labels[name] = _unescape("".join(raw), True)
        i = k + 1
        if i < len(s) and s[i] == ",":
            i += 1
        elif i >= len(s) or s[i] != "}":
            raise ParseError("line %d: expected ',' or '}' after a label" % lineno)


def parse_prometheus(text):
    """Strict parser of the text exposition format 0.0.4. Returns
    {family: {"type", "help", "samples": [(name, labels, value)]}}."""
    if not text.endswith("\n"):
        raise ParseError("exposition does not end with a newline")
    if "\r" in text:
        raise ParseError("carriage return in exposition")
    fams, order, current = {}, [], None
    series = set()

    def fam(name):
        if name not in fams:
            fams[name] = {"type": None, "help": None, "samples": []}
        return fams[name]

    def family_of(sample):
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample[:-len(suffix)]
            if sample.endswith(suffix) and fams.get(base, {}).get("type") in ("histogram",
                                                                             "summary"):
                return base
        return sample

    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            raise ParseError("line %d: empty line" % lineno)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
                raise ParseError("line %d: unexpected comment %r" % (lineno, line))
            name = parts[2]
            if not NAME_RE.match(name):
                raise ParseError("line %d: bad metric name %r" % (lineno, name))
            f = fam(name)
            if f["samples"]:
                raise ParseError("line %d: %s of %s after its samples" % (lineno, parts[1], name))
            if parts[1] == "HELP":
                if f["help"] is not None:
                    raise ParseError("line %d: second HELP for %s" % (lineno, name))
                f["help"] = _unescape(parts[3] if len(parts) > 3 else "", False)
            else:
                if f["type"] is not None:
                    raise ParseError("line %d: second TYPE for %s" % (lineno, name))
                if len(parts) != 4 or parts[3] not in TYPES:
                    raise ParseError("line %d: bad TYPE line %r" % (lineno, line))
                f["type"] = parts[3]
            if current != name:
                if name in order:
                    raise ParseError("line %d: family %s interleaved" % (lineno, name))
                order.append(name)
                current = name
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if not m:
            raise ParseError("line %d: no metric name in %r" % (lineno, line))
        name, rest = m.group(0), line[m.end():]
        labels = {}
        if rest.startswith("{"):
            labels, rest = _labels(rest[1:], lineno)
        if not rest.startswith(" "):
            raise ParseError("line %d: expected a space before the value" % lineno)
        fields = rest[1:].split(" ")
        if len(fields) not in (1, 2):
            raise ParseError("line %d: trailing garbage %r" % (lineno, rest))
        value = _value(fields[0])
        if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
            raise ParseError("line %d: bad timestamp %r" % (lineno, fields[1]))
        base = family_of(name)
        if base != current:
            if base in order:
                raise ParseError("line %d: family %s interleaved" % (lineno, base))
            order.append(base)
            current = base
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            raise ParseError("line %d: duplicate series %s%r" % (lineno, name, labels))
        series.add(key)
        fam(base)["samples"].append((name, labels, value))
    for name, f in fams.items():
        if f["type"] == "counter" and any(v < 0 or math.isnan(v) for _, _, v in f["samples"]):
            raise ParseError("counter %s has a negative or NaN value" % name)
        if f["type"] == "histogram":
            check_histogram(name, f["samples"])
    return fams


def check_histogram(name, samples):
    buckets = [(l, v) for n, l, v in samples if n == name + "_bucket"]
    count = [v for n, _, v in samples if n == name + "_count"]
    total = [v for n, _, v in samples if n == name + "_sum"]
    if not buckets or len(count) != 1 or len(total) != 1:
        raise ParseError("histogram %s needs buckets, one _sum and one _count" % name)
    les = []
    for l, v in buckets:
        if set(l) != {"le"}:
            raise ParseError("histogram %s bucket labels %r" % (name, l))
        les.append((_value(l["le"]), v))
    if les != sorted(les, key=lambda x: x[0]) or les[-1][0] != math.inf:
        raise ParseError("histogram %s: le not increasing or no +Inf" % name)
    if any(les[i][1] > les[i + 1][1] for i in range(len(les) - 1)):
        raise ParseError("histogram %s: buckets not cumulative" % name)
    if les[-1][1] != count[0]:
        raise ParseError("histogram %s: +Inf bucket %r != _count %r" % (name, les[-1][1],
                                                                        count[0]))


def value(fams, family, sample=None, **labels):
    for n, l, v in fams[family]["samples"]:
        if n == (sample or family) and l == labels:
            return v
    raise KeyError("%s%r" % (sample or family, labels))


# Every family the edge must expose, with its type.
EXPECTED = {
    "warren_tunnels": "gauge",
    "warren_reserved_names": "gauge",
    "warren_visitor_connections": "gauge",
    "warren_sessions": "gauge",
    "warren_draining": "gauge",
    "warren_edge_visitors_accepted_total": "counter",
    "warren_edge_requests_total": "counter",
    "warren_edge_tunnels_opened_total": "counter",
    "warren_edge_bytes_in_total": "counter",
    "warren_edge_bytes_out_total": "counter",
    "warren_edge_errors_total": "counter",
    "warren_lookups_total": "counter",
    "warren_peers_asked_total": "counter",
    "warren_forwards_total": "counter",
    "warren_forward_errors_total": "counter",
    "warren_loops_refused_total": "counter",
    "warren_claims_started_total": "counter",
    "warren_claims_total": "counter",
    "warren_peer_auth_failures_total": "counter",
    "warren_dns_resolutions_total": "counter",
    "warren_dns_failures_total": "counter",
    "warren_peers_known": "gauge",
    "warren_peers_connected": "gauge",
    "warren_lookup_duration_seconds": "histogram",
    "warren_admin_connections": "gauge",
    "warren_build_info": "gauge",
    "process_start_time_seconds": "gauge",
}


with h.Test("admin", timeout=120) as t:
    aport = h.free_port()
    AHOST = "127.0.0.1:%d" % aport
    edge = t.tunneld(drain=20, args=["--admin-listen", AHOST])
    t.require(h.wait_until(lambda: h.is_listening(aport), 5), "admin port listening")
    org = t.origin()
    cli = t.tunnel(edge, org.port, name="adm")
    H = edge.host("adm")

    def admin(method, path, headers=(), body=None):
        return h.request(aport, method, path, AHOST, headers=headers, body=body, timeout=10)

    def metrics():
        r = admin("GET", "/metrics")
        if r.status != 200:
            raise AssertionError("/metrics answered %d" % r.status)
        return parse_prometheus(r.text)

    # an idle connection with half a head: closed by the 10 s deadline
    idle = {}

    def idle_conn():
        s = socket.create_connection(("127.0.0.1", aport), timeout=20)
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            d = s.recv(4096)
            idle["data"] = d
        except OSError as e:
            idle["err"] = repr(e)
        idle["secs"] = time.monotonic() - t0
        s.close()

    idle_th = threading.Thread(target=idle_conn, daemon=True)
    idle_th.start()

    with t.part("health and readiness"):
        r = admin("GET", "/healthz")
        t.eq((r.status, r.text), (200, "ok\n"), "/healthz answers 200 ok")
        t.check((r.header("Content-Type") or "").startswith("text/plain"), "/healthz is text",
                r.header("Content-Type"))
        r = admin("GET", "/readyz")
        t.eq((r.status, r.text), (200, "ready\n"), "/readyz answers 200 ready")
        r = admin("GET", "/healthz?verbose=1")
        t.eq(r.status, 200, "a query string does not change the route")

    with t.part("metrics page"):
        r = admin("GET", "/metrics")
        t.eq(r.status, 200, "/metrics answers 200")
        t.check((r.header("Content-Type") or "").startswith("text/plain; version=0.0.4"),
                "/metrics Content-Type is the 0.0.4 text format", r.header("Content-Type"))
        fams = parse_prometheus(r.text)
        t.check(True, "/metrics parses strictly (%d families)" % len(fams))
        for name, typ in EXPECTED.items():
            f = fams.get(name)
            t.check(f is not None and f["type"] == typ and f["help"],
                    "%s present as %s with HELP" % (name, typ), f and (f["type"], f["help"]))
        for name, f in fams.items():
            if f["type"] == "counter":
                t.check(name.endswith("_total"), "counter %s ends in _total" % name)
        t.eq(value(fams, "warren_build_info", version="0.1.0"), 1, "build_info version 0.1.0")
        st = value(fams, "process_start_time_seconds")
        t.check(time.time() - 120 < st <= time.time(), "process start time is recent", st)
        t.eq(value(fams, "warren_tunnels"), 1, "one tunnel online")
        t.check(value(fams, "warren_sessions") >= 1, "a session is counted")
        t.check(value(fams, "warren_edge_tunnels_opened_total") >= 1, "tunnels opened counted")
        t.eq(value(fams, "warren_draining"), 0, "not draining")
        statuses = sorted(l["status"] for _, l, _ in fams["warren_edge_errors_total"]["samples"])
        t.eq(statuses, ["404", "4xx", "502", "503", "504"], "error statuses")
        results = sorted(l["result"] for _, l, _ in fams["warren_lookups_total"]["samples"])
        t.eq(results, ["cache_hit", "found", "not_found", "unanswered"], "lookup results")
        les = [l["le"] for n, l, _ in fams["warren_lookup_duration_seconds"]["samples"]
               if n.endswith("_bucket")]
        t.eq(len(les), 12, "12 latency buckets (11 bounds and +Inf)")
        t.eq(les[0], "0.00025", "first bucket is 250 us")

    with t.part("strict parser rejects what it must"):
        bad = [
            "x 1",                                     # no final newline
            "# TYPE x counter\n# TYPE x counter\nx 1\n",
            "x 1\n# TYPE x counter\n",
            "x{a=\"1\"} 1\ny 2\nx{a=\"2\"} 3\n",          # interleaved
            "x{a=1} 1\n",
            "x 1 2 3\n",
            "x abc\n",
            "x{a=\"1\"} 1\nx{a=\"1\"} 2\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\n"
            "h_count 1\n",
        ]
        ok = 0
        for text in bad:
            try:
                parse_prometheus(text)
            except ParseError:
                ok += 1
        t.eq(ok, len(bad), "the test's parser rejects %d malformed expositions" % len(bad))

    with t.part("counters move with the traffic"):
        m0 = metrics()
        sent = recv = 0
        N = 7
        with h.HttpConn(edge.port) as c:            # 4 requests on one keep-alive connection
            for _ in range(4):
                req = h.build_request("GET", "/hello", H)
                c.send(req)
                r = c.read_response()
                sent += len(req)
                recv += len(r.raw_head) + r.body_len
                t.eq(r.status, 200, "GET /hello through the tunnel")
        for _ in range(N - 4):                       # and 3 on fresh connections
            r = h.request(edge.port, "GET", "/hello", H)
            sent += len(h.build_request("GET", "/hello", H))
            recv += len(r.raw_head) + r.body_len
        admin("GET", "/healthz")                     # admin requests count nowhere
        m1 = metrics()

        def delta(fam, **labels):
            return value(m1, fam, **labels) - value(m0, fam, **labels)

        t.eq(delta("warren_edge_requests_total"), N, "requests_total grew by exactly %d" % N)
        t.eq(delta("warren_edge_visitors_accepted_total"), 4,
             "visitors_accepted grew by the 4 connections")
        t.eq(delta("warren_edge_bytes_in_total"), sent, "bytes_in grew by the bytes sent")
        t.eq(delta("warren_edge_bytes_out_total"), recv, "bytes_out grew by the bytes received")
        t.eq(delta("warren_edge_errors_total", status="404"), 0, "no 404 yet")

        r = h.request(edge.port, "GET", "/hello", edge.host("ghost"))
        t.eq(r.status, 404, "unknown tunnel gives 404")
        m2 = metrics()
        t.eq(value(m2, "warren_edge_errors_total", status="404")
             - value(m1, "warren_edge_errors_total", status="404"), 1,
             "errors_total{status=404} grew by 1")
        t.eq(value(m2, "warren_edge_requests_total") - value(m1, "warren_edge_requests_total"), 0,
             "a 404 is not a forwarded request")
        r, closed, err = h.raw_exchange(edge.port, b"GET /hello HTTP/1.1\r\nHost: %s\r\n"
                                        b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n"
                                        % H.encode())
        t.check(r is not None and r.status == 400, "duplicate Content-Length gives 400", err or r)
        m3 = metrics()
        t.eq(value(m3, "warren_edge_errors_total", status="4xx")
             - value(m2, "warren_edge_errors_total", status="4xx"), 1,
             "errors_total{status=4xx} grew by 1")

        t.check(h.wait_until(lambda: value(metrics(), "warren_visitor_connections") == 0, 5),
                "no visitor connection open")
        with h.HttpConn(edge.port) as c:             # an open visitor connection is a gauge
            c.send(b"GET /hello HTTP/1.1\r\nHost: " + H.encode() + b"\r\n\r\n")
            c.read_response()
            t.eq(value(metrics(), "warren_visitor_connections"), 1, "one visitor connection open")
        t.check(h.wait_until(lambda: value(metrics(), "warren_visitor_connections") == 0, 5),
                "visitor gauge back to 0 after close")

    with t.part("HTTP handling"):
        with h.HttpConn(aport) as c:
            c.send(h.build_request("HEAD", "/metrics", AHOST))
            r = c.read_response("HEAD")
            t.eq(r.status, 200, "HEAD /metrics answers 200")
            cl = int(r.header("Content-Length") or -1)
            c.send(h.build_request("GET", "/metrics", AHOST))
            r2 = c.read_response()
            t.eq(r2.status, 200, "keep-alive: GET after HEAD on one connection")
            t.eq(cl, r2.body_len, "HEAD Content-Length matches the GET body, no body sent")
            c.send(h.build_request("GET", "/healthz", AHOST)
                   + h.build_request("GET", "/readyz", AHOST)
                   + h.build_request("GET", "/nope", AHOST))
            got = [c.read_response() for _ in range(3)]
            t.eq([(x.status, x.text) for x in got[:2]], [(200, "ok\n"), (200, "ready\n")],
                 "pipelined requests answered in order")
            t.eq(got[2].status, 404, "pipelined unknown path 404, connection kept")
            c.send(h.build_request("GET", "/healthz", AHOST))
            t.eq(c.read_response().status, 200, "connection still usable after a 404")

        r = admin("GET", "/")
        t.eq(r.status, 404, "GET / is 404")
        r = admin("GET", "/metrics/extra")
        t.eq(r.status, 404, "GET /metrics/extra is 404")
        r = admin("POST", "/metrics")
        t.eq(r.status, 405, "POST /metrics is 405")
        t.check("GET" in (r.header("Allow") or ""), "405 carries Allow", r.header("Allow"))
        r, closed, err = h.raw_exchange(aport, h.build_request("POST", "/healthz", AHOST,
                                                              body=b"x" * 100))
        t.check(r is not None and r.status == 405, "POST with a body is 405", err or r)
        t.check(closed, "connection closed after a request with a body (not read)")
        r = admin("DELETE", "/readyz")
        t.eq(r.status, 405, "DELETE /readyz is 405")

        for label, data in [
            ("no Host in HTTP/1.1", b"GET /healthz HTTP/1.1\r\n\r\n"),
            ("garbage", b"HELLO THERE\r\n\r\n"),
            ("bare LF", b"GET /healthz HTTP/1.1\nHost: x\n\n"),
            ("two Hosts", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ]:
            r, closed, err = h.raw_exchange(aport, data)
            t.check(r is not None and r.status == 400, "%s: 400" % label, err or r)
            t.check(closed, "%s: closed after the 400" % label)
        r, closed, err = h.raw_exchange(aport, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
                                        + b"a" * 9000 + b"\r\n\r\n")
        t.check(r is not None and r.status == 431, "a head over 8 KiB: 431", err or r)
        t.check(closed, "closed after the 431")
        r, closed, err = h.raw_exchange(aport, b"GET /healthz HTTP/1.0\r\n\r\n")
        t.check(r is not None and r.status == 200, "HTTP/1.0 request answered", err or r)
        t.check(closed, "HTTP/1.0 without keep-alive: closed after the answer")
        with h.HttpConn(aport) as c:
            c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            t.eq((r.status, (r.header("Connection") or "").lower()), (200, "keep-alive"),
                 "HTTP/1.0 keep-alive honoured")
            c.send(b"GET /readyz HTTP/1.0\r\n\r\n")
            t.eq(c.read_response().status, 200, "second HTTP/1.0 request on the connection")

    with t.part("garbage does not hurt"):
        rnd = random.Random(7)
        answered = 0
        for i in range(150):
            n = rnd.choice((1, 5, 40, 300, 2000))
            data = bytes(rnd.randrange(256) for _ in range(n))
            if i % 3 == 0:
                data = b"GET /" + data + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            try:
                with h.HttpConn(aport, timeout=5) as c:
                    c.send(data)
                    c.sock.shutdown(socket.SHUT_WR)
                    try:
                        r = c.read_response()
                        answered += 1
                        if not (400 <= r.status < 500 or r.status == 200):
                            t.check(False, "garbage answered with %d" % r.status)
                    except (ConnectionError, ValueError):
                        pass
            except OSError:
                pass
        t.check(edge.alive(), "tunneld alive after 150 garbage requests (%d answered)" % answered)
        t.eq(admin("GET", "/healthz").status, 200, "/healthz still answers")

    with t.part("idle deadline"):
        idle_th.join(20)
        t.check("secs" in idle and not idle.get("data") and 9.0 <= idle["secs"] <= 13.0,
                "a connection with half a head is closed after about 10 s", idle)

    with t.part("at most 64 admin connections"):
        conns = []
        try:
            first = h.HttpConn(aport, timeout=5)   # one keep-alive connection watches the count
            conns.append(first)

            def admin_conns():
                first.send(h.build_request("GET", "/metrics", AHOST))
                return value(parse_prometheus(first.read_response().text),
                             "warren_admin_connections")

            t.check(h.wait_until(lambda: admin_conns() == 1, 5),
                    "only the watching connection is open")
            statuses = []
            for _ in range(63):
                c = h.HttpConn(aport, timeout=5)
                conns.append(c)
                c.send(h.build_request("GET", "/healthz", AHOST))
                statuses.append(c.read_response().status)
            t.eq(statuses, [200] * 63, "63 more admin connections answered")
            t.eq(admin_conns(), 64, "64 keep-alive admin connections open")
            with h.HttpConn(aport, timeout=5) as c:  # it is answered without asking
                r = c.read_response()
                t.eq(r.status, 503, "the 65th connection gets 503")
                t.check(c.closed_by_peer(3), "and is closed")
            t.eq(admin_conns(), 64, "the refused one was not counted")
        finally:
            for c in conns:
                c.close()
        t.check(h.wait_until(lambda: admin("GET", "/healthz").status == 200, 5),
                "a new connection is served once they closed")

    with t.part("readiness during a drain"):
        res = {}
        unpace = threading.Event()
        N = 24 * MIB

        def dl():
            try:
                res["r"] = h.download_sha256(edge.port, "/bytes?n=%d&seed=5" % N, H, timeout=60,
                                             rcvbuf=128 * 1024, rate=4 * MIB, unpace=unpace)
            except Exception as e:  # noqa: BLE001
                res["r"] = e

        th = threading.Thread(target=dl, daemon=True)
        th.start()
        time.sleep(1.0)
        edge.send(h.signal.SIGTERM)
        t.check(h.wait_until(lambda: not h.is_listening(edge.port), 3),
                "public listener closed after SIGTERM")
        t.check(edge.alive() and h.is_listening(aport), "admin endpoint still up while draining")
        r = admin("GET", "/readyz")
        t.eq((r.status, r.text), (503, "draining\n"), "/readyz answers 503 draining")
        r = admin("GET", "/healthz")
        t.eq(r.status, 200, "/healthz still 200 while draining")
        m = metrics()
        t.eq(value(m, "warren_draining"), 1, "warren_draining is 1")
        t.eq(value(m, "warren_visitor_connections"), 1, "the download is still in flight")
        t.check(th.is_alive(), "download still running when /readyz said draining")
        unpace.set()
        th.join(40)
        got = res.get("r")
        if isinstance(got, tuple):
            t.eq((got[0].status, got[0].body_len), (200, N), "in-flight download completed")
            t.eq(got[1], h.pattern_sha256(N, 5), "in-flight download exact")
        else:
            t.check(False, "in-flight download completed", got)
        t.eq(edge.wait_exit(15), 0, "tunneld exits 0 after the drain")
        edge.checked_exit = True
        t.check(not h.is_listening(aport), "admin port closed at exit")

    with t.part("busy admin port"):
        busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        bport = busy.getsockname()[1]
        t.on_teardown(busy.close)
        e2 = t.tunneld(args=["--admin-listen", "127.0.0.1:%d" % bport], wait=False,
                       label="tunneld-busy")
        rc = e2.wait_exit(10)
        e2.checked_exit = True
        t.check(rc not in (None, 0), "tunneld exits non-zero when the admin port is busy", rc)
        err = e2.stderr_text()
        t.check("127.0.0.1:%d" % bport in err, "the error names the admin address", err[-500:])
        t.check(not h.is_listening(e2.port), "the public port is not left listening")
