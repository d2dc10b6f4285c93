"""Runner for the request-smuggling vectors (test_smuggling_*.py).

Setup: one edge at debug log level, two tunnels, "alpha" (A) and "bravo" (B),
each in front of its own recording origin (recorder.py). Every vector is a
fresh visitor connection and a script of steps:

    bytes           send them (one write)
    int             read one response; its status must be this
    ("HEAD", int)   the same for the response to a HEAD request
    ("echo", b)     read exactly b back (bytes relayed after a 101)
    "shut"          half-close the visitor's side
    "nothing"       expect no response at all, only the close

After the script: if the vector expects the connection to stay open, a probe
request (GET /for-<name>/probe) must be answered by the same tunnel on the
same connection; otherwise the edge must close it. Then the visitor side is
closed and the runner waits until both origins saw their connections end.

What is checked per vector:
  - the statuses, the close (or the probe), the origin that answered each 200;
  - each origin parsed exactly the expected requests (method, target, body,
    body complete) and, after a 101, received exactly the expected bytes;
  - the number of whole requests each origin parsed equals the number of
    "forwarded" access-log lines the edge wrote for that tunnel (the edge
    logs a request once its last byte went into the tunnel); a request the
    edge cut short may have reached the origin only in part, never whole;
  - no parsed request at A names B (Host, X-Forwarded-Host, target marker)
    and no byte of a request marked for B ("/for-bravo/") reaches A's origin,
    and the same the other way round; X-Forwarded-For is exactly the edge's.

Requests meant for a tunnel carry "/for-<name>/" in their target; request
text hidden inside a body uses "/smuggled-<name>/", which no origin may ever
parse as a request.
"""

import http
import re
import socket
import time

import harness as h
import recorder

NAMES = ("alpha", "bravo")
PHRASES = {414: "URI Too Long"}  # RFC 9110 (Python still says "Request-URI Too Long")
OTHER = {"alpha": "bravo", "bravo": "alpha"}


class V:
    """One vector. steps: see the module doc. seen: {name: [(method, target,
    body, complete)]} the requests each origin must parse (the probe is
    added by the runner). upgraded: {name: bytes} received after a 101.
    conn: the tunnel the connection belongs to (answers the 200s and the
    probe). close: True (the edge closes), False (a probe is answered on the
    same connection) or None (neither is checked: a raw pipe after a 101).
    check: extra function(env, tag, {name: [Request]}) for header
    assertions. answers: which tunnel answers each 200, when not all conn."""

    def __init__(self, vid, what, steps, close=True, seen=None, upgraded=None, conn="alpha",
                 check=None, answers=None):
        self.vid, self.what, self.steps = vid, what, steps
        self.close, self.seen = close, seen or {}
        self.upgraded = upgraded or {}
        self.conn, self.check = conn, check
        self.answers = answers  # tunnel of each 200 in order (default: all conn)


class Env:
    def __init__(self, t, edge_args=()):
        self.t = t
        self.edge = t.tunneld(args=list(edge_args), log_level="debug")
        self.rec = {}
        self.late_ok = set()  # (method, target) of cut requests earlier vectors allowed
        for n in NAMES:
            r = recorder.Recorder(n)
            t.on_teardown(r.close)
            self.rec[n] = r
            t.tunnel(self.edge, r.port, name=n)
        self.port = self.edge.port
        self.subs = {
            "{A}": "alpha.%s:%d" % (h.DOMAIN, self.port),
            "{B}": "bravo.%s:%d" % (h.DOMAIN, self.port),
            "{AN}": "alpha." + h.DOMAIN,
            "{BN}": "bravo." + h.DOMAIN,
            "{P}": str(self.port),
        }
        self.figures = []

    def b(self, s):
        """Template (str or bytes) -> bytes with {A}, {B}, {AN}, {BN}, {P} filled in."""
        if isinstance(s, bytes):
            s = s.decode("latin-1")
        for k, v in self.subs.items():
            s = s.replace(k, v)
        return s.encode("latin-1")

    def body(self, bd):
        """Expected body with the placeholders filled in."""
        return Prefix(self.b(bd.b)) if isinstance(bd, Prefix) else self.b(bd)

    def forwarded(self):
        """Access-log lines per tunnel so far."""
        txt = self.edge.stderr_text()
        return {n: len(re.findall(r"tunnel=%s stream=\d+ request=\d+ forwarded: " % n, txt))
                for n in NAMES}

    # ------------------------------------------------------------------ one vector
    def run(self, v):
        t = self.t
        tag = "[%s] %s" % (v.vid, v.what)
        snaps = {n: r.snapshot() for n, r in self.rec.items()}
        logged0 = self.forwarded()
        statuses, problems = [], []
        answers = list(v.answers or [])
        t0 = time.monotonic()
        c = h.HttpConn(self.port, timeout=10)
        try:
            for st in v.steps:
                if callable(st):
                    st = st(self)
                if st == "shut":
                    c.sock.shutdown(socket.SHUT_WR)
                elif st == "nothing":
                    pass
                elif isinstance(st, (bytes, str)):
                    c.send(self.b(st))
                elif isinstance(st, int) or st[0] == "HEAD":
                    method = "GET"
                    if not isinstance(st, int):
                        method, st = st
                    try:
                        r = c.read_response(method)
                    except (OSError, ValueError) as e:
                        problems.append("expected a %d, got %s" % (st, e))
                        break
                    statuses.append(r.status)
                    if r.status >= 400:
                        t.eq(r.reason, PHRASES.get(r.status, http.HTTPStatus(r.status).phrase),
                             "%s: the %d has its standard reason phrase" % (tag, r.status))
                    if r.status == 200:
                        who = answers.pop(0) if answers else v.conn
                        t.eq(r.header("X-Recorder"), who,
                             "%s: the 200 came from %s's origin" % (tag, who))
                elif st[0] == "echo":
                    want = self.b(st[1])
                    got = bytearray()
                    try:
                        c.settimeout(5)
                        while len(got) < len(want):
                            if not c.buf and not c._fill():
                                break
                            k = min(len(want) - len(got), len(c.buf))
                            got += c.buf[:k]
                            del c.buf[:k]
                    except OSError as e:
                        problems.append("echo: %s" % e)
                    t.eq(bytes(got), want, "%s: bytes after the 101 echoed by %s's upgraded "
                         "origin" % (tag, v.conn))
            want_st = [s if isinstance(s, int) else s[1] for s in v.steps
                       if isinstance(s, int) or isinstance(s, tuple) and s[0] == "HEAD"]
            t.eq(statuses, want_st, "%s: statuses" % tag)
            if problems:
                t.check(False, "%s: responses read" % tag, "; ".join(problems))
            if v.close:
                t.check(c.closed_by_peer(5), "%s: the edge closes the connection" % tag)
            elif v.close is False:
                with t.part("%s: probe" % tag):
                    c.send(h.build_request("GET", "/for-%s/probe" % v.conn,
                                           self.subs["{A}" if v.conn == "alpha" else "{B}"]))
                    r = c.read_response()
                    t.check(r.status == 200 and r.header("X-Recorder") == v.conn,
                            "%s: connection stays open (probe answered by %s)" % (tag, v.conn),
                            "%r %r" % (r, r.body[:60]))
        finally:
            c.close()
        settled = recorder.wait_all_closed(self.rec.values(), 15)
        t.check(settled, "%s: origin connections ended" % tag)
        self.figures.append((v.vid, time.monotonic() - t0))
        self.verify(v, tag, snaps, logged0)

    def verify(self, v, tag, snaps, logged0):
        t = self.t
        logged1 = self.forwarded()
        for n in NAMES:
            conns, reqs = self.rec[n].since(snaps[n])
            want = [(m, tg, self.body(bd), done) for m, tg, bd, done in v.seen.get(n, [])]
            if v.close is False and n == v.conn:
                want.append(("GET", "/for-%s/probe" % n, b"", True))
            # complete requests: exactly these; a request cut by the edge
            # (complete False) may or may not have reached the origin before
            # the stream was reset, but only as listed and never complete
            got = [(r.method, r.target, r.body, r.complete) for r in reqs]
            whole = [g for g in got if g[3]]
            t.eq(whole, [w for w in want if w[3]],
                 "%s: whole requests parsed by %s's origin" % (tag, n))
            may = [w for w in want if not w[3]]
            # a cut request an earlier vector allowed may reach the origin late
            # (the CLI's connect to it races the stream reset): not this one's
            cut = [g for g in got if not g[3] and (g[0], g[1]) not in self.late_ok]
            self.late_ok.update((w[0], w[1]) for w in may)
            t.check(all(g in may for g in cut) and len(cut) <= len(may),
                    "%s: requests %s's origin saw cut short are the expected ones" % (tag, n),
                    "got %r, allowed %r" % (cut, may))
            t.eq(len(whole), logged1[n] - logged0[n],
                 "%s: %s's origin got as many whole requests as the edge logged" % (tag, n))
            up = b"".join(bytes(c.upgraded) for c in conns)
            t.eq(up, self.b(v.upgraded.get(n, b"")),
                 "%s: bytes %s's origin got after a 101" % (tag, n))
            unparsed = b"".join(bytes(c.unparsed) for c in conns)
            t.eq(unparsed, b"", "%s: nothing reached %s's origin after a closing request"
                 % (tag, n))
            errs = [c.error for c in conns if c.error]
            t.eq(errs, [], "%s: %s's origin had no parse error" % (tag, n))
            raw = b"".join(bytes(c.raw) for c in conns)
            other = OTHER[n]
            t.check(b"/for-%s/" % other.encode() not in raw,
                    "%s: no byte of a request for %s reached %s's origin" % (tag, other, n))
            for r in reqs:
                self.invariants(tag, n, r)
        if v.check:
            v.check(self, tag, {k: self.rec[k].since(snaps[k])[1] for k in NAMES})

    def invariants(self, tag, n, r):
        t = self.t
        hosts = r.header_all("host")
        ok = len(hosts) == 1 and host_name(hosts[0]) == "%s.%s" % (n, h.DOMAIN)
        xfh = r.header_all("x-forwarded-host")
        ok = ok and len(xfh) == 1 and host_name(xfh[0]) == "%s.%s" % (n, h.DOMAIN)
        ok = ok and r.header_all("x-forwarded-for") == ["127.0.0.1"]
        ok = ok and "smuggled" not in r.target and "/for-%s/" % OTHER[n] not in r.target
        t.check(ok, "%s: %s's origin got a request for %s with the edge's X-Forwarded-*"
                % (tag, n, n), "%r %r" % (r, r.headers))


class Prefix:
    """Matches any prefix of these bytes: how much of a body went out before
    the edge found an error in it depends on how TCP split the bytes."""

    def __init__(self, b):
        self.b = b

    def __eq__(self, other):
        return isinstance(other, bytes) and self.b.startswith(other)

    def __repr__(self):
        return "Prefix(%r)" % self.b


def header_is(name, want, tunnel="alpha"):
    """A check: the one request at `tunnel` carries exactly these values of
    field `name` (placeholders filled in)."""
    def check(env, tag, reqs):
        r = reqs[tunnel][0] if reqs[tunnel] else None
        got = r.header_all(name) if r else None
        env.t.eq(got, [env.b(w).decode("latin-1") for w in want],
                 "%s: %s's origin sees %s as %r" % (tag, tunnel, name, want))
    return check


def host_name(v):
    v = v.lower()
    if ":" in v:
        v = v.rsplit(":", 1)[0]
    return v[:-1] if v.endswith(".") else v


def run_all(name, vectors, timeout, proxy_vectors=()):
    """Run vectors on a plain edge, then proxy_vectors on an edge in
    trusted-proxy mode (--proxy-client-ip-header: one connection may carry
    requests for several tunnels one after another)."""
    ids = [v.vid for v in list(vectors) + list(proxy_vectors)]
    assert len(ids) == len(set(ids)), "duplicate vector id"
    with h.Test(name, timeout=timeout) as t:
        for args, vecs in (((), vectors),
                           (("--proxy-client-ip-header", "Fly-Client-IP"), proxy_vectors)):
            if not vecs:
                continue
            env = Env(t, args)
            t0 = time.monotonic()
            for v in vecs:
                t.step("vector %s: %s" % (v.vid, v.what))
                with t.part(v.vid):
                    env.run(v)
            dt = time.monotonic() - t0
            slow = max(env.figures, key=lambda x: x[1])
            h.log("%d vectors%s in %.1f s (slowest %s: %.2f s)"
                  % (len(vecs), " (proxy mode)" if args else "", dt, slow[0], slow[1]))
            t.check(env.edge.alive(), "the edge is still running")
