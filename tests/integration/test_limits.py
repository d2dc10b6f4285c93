"""The edge's limits against flooding clients, each with the answer
docs/operations.md documents, and the counters /metrics shows for them:

  - --max-tunnels-per-ip (set through its TUNNELD_ twin): the tunnel over the
    limit gets ERROR too_many_tunnels naming the limit and the address, the
    CLI prints it and exits 8; another address is not affected; an owner
    reconnecting with its token at the limit replaces its old connection
    (4000); a tunnel that ends gives its place back; behind
    --proxy-client-ip-header the count is per address the proxy names (IPv6
    per /64), and per socket address when the header is missing;
  - --handshake-rate / --handshake-burst: the handshake over the burst gets
    429 with Retry-After, another address is not affected, a token comes back
    after 1/rate s; the CLI rides a 429 out (reconnects, then online); behind a
    proxy the bucket is per named address;
  - --max-connections: the connection over the limit is answered 503 with
    Retry-After and closed at once; a freed slot serves again;
  - --max-streams: 503 over the limit, counted;
  - out of file descriptors (RLIMIT_NOFILE lowered under the running edge):
    accept() fails, the edge pauses accepting instead of spinning (CPU time
    over 3 s), says so once, and serves again once descriptors are free;
  - the open-files soft limit is raised to the hard one at start, and logged,
    by tunneld and by tunnel;
  - every new flag is in --help with its environment twin, and a bad value
    names the flag."""

import json
import resource
import socket
import threading
import time

import harness as h
import loadgen as lg


def refusals(port, limit):
    return h.metrics(port).get('warren_limit_refusals_total{limit="%s"}' % limit)


class Raw:
    """A tunnel client speaking the protocol over a plain socket."""

    def __init__(self, port, source="127.0.0.1", headers=(), hello=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(source, 0))
        extra = b"".join(("%s: %s\r\n" % kv).encode() for kv in headers)
        self.s.sendall(lg.ws_upgrade("warren.test:%d" % port, extra))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            if not d:
                break
            self.buf += d
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.body = self.buf
        self.frames = []
        self.head = head.decode("iso-8859-1")
        self.status = lg.status_of(head)
        self.msg = self.close_code = None
        if self.status == 101:
            self.frames, self.buf = lg.ws_parse(self.buf)
        if self.status == 101 and hello is not None:
            self.s.sendall(lg.ws_frame(1, json.dumps(hello).encode()))
            self.msg = self.next_message()

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None

    def next_message(self, timeout=10):
        """The next text message as JSON; a close frame sets close_code and
        gives None."""
        self.s.settimeout(timeout)
        while True:
            while self.frames:
                op, p = self.frames.pop(0)
                if op == 1:
                    return json.loads(p)
                if op == 8:
                    self.close_code = int.from_bytes(p[:2], "big") if len(p) >= 2 else 1005
                    return None
            try:
                d = self.s.recv(65536)
            except OSError:
                return None
            if not d:
                return None
            frames, self.buf = lg.ws_parse(self.buf + d)
            self.frames += frames

    def wait_close(self, timeout=10):
        while self.close_code is None:
            if self.next_message(timeout) is None and self.close_code is None:
                return None
        return self.close_code

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def hello(name=None, token=None):
    m = {"type": "hello", "version": 1, "kind": "http", "client": "test_limits"}
    if name:
        m["name"] = name
    if token:
        m["reconnect_token"] = token
    return m


with h.Test("limits", timeout=180) as t:
    org = t.origin()
    raws = []
    t.on_teardown(lambda: [r.close() for r in raws])

    with t.part("tunnels per address"):
        adm = h.free_port()
        edge = t.tunneld(args=["--admin-listen", "127.0.0.1:%d" % adm],
                         env={"TUNNELD_MAX_TUNNELS_PER_IP": "2"})
        t.tunnel(edge, org.port, name="one")
        two = t.tunnel(edge, org.port, name="two")
        rc, out, err = t.run("tunnel-three", [h.TUNNEL, "--port", str(org.port), "--server",
                                              edge.ws_url, "--subdomain", "three", "--json"])
        t.eq(rc, 8, "the third tunnel from one address exits 8")
        evs = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        errs = [e for e in evs if e.get("event") == "error"]
        t.check(errs and errs[0].get("code") == "too_many_tunnels", "error code too_many_tunnels",
                out[-400:])
        msg = errs[0].get("message", "") if errs else ""
        t.check("--max-tunnels-per-ip 2" in msg and "127.0.0.1" in msg,
                "the message names the limit and the address", msg)
        t.check(not any(e.get("event") == "reconnecting" for e in evs), "no reconnect after it")
        rc, out, err = t.run("tunnel-three-human", [h.TUNNEL, "--port", str(org.port),
                                                    "--server", edge.ws_url, "--subdomain",
                                                    "three"])
        t.eq(rc, 8, "without --json: exit 8 too")
        t.check("--max-tunnels-per-ip" in err and "too_many_tunnels" in err,
                "without --json the limit and the code are printed", err[-300:])

        r1 = Raw(edge.port, "127.0.0.2", hello=hello("ra"))
        raws.append(r1)
        t.eq((r1.status, (r1.msg or {}).get("type")), (101, "welcome"),
             "another address (127.0.0.2) is not affected")
        r2 = Raw(edge.port, "127.0.0.2", hello=hello("rb"))
        raws.append(r2)
        t.eq((r2.msg or {}).get("type"), "welcome", "127.0.0.2's second tunnel")
        r3 = Raw(edge.port, "127.0.0.2", hello=hello("ra", (r1.msg or {}).get("reconnect_token")))
        raws.append(r3)
        t.eq((r3.msg or {}).get("type"), "welcome",
             "at the limit, the owner reconnecting with its token is let in")
        t.eq(r1.wait_close(), 4000, "and its old connection is closed with 4000")
        r4 = Raw(edge.port, "127.0.0.2", hello=hello("rc"))
        raws.append(r4)
        t.eq((r4.msg or {}).get("code"), "too_many_tunnels", "a new name at the limit is refused")
        t.eq(r4.wait_close(), 1008, "with close code 1008")
        t.eq(refusals(adm, "tunnels_per_ip"), 3.0, "metrics count the 3 refusals")

        two.stop()
        four = t.tunnel(edge, org.port, name="four")
        t.check(four.online is not None, "a tunnel that ended gives its place back")
        r = h.request(edge.port, "GET", "/hello", edge.host("four"))
        t.eq(r.status, 200, "and the new one serves")

    with t.part("tunnels per address behind a proxy"):
        adm_p = h.free_port()
        px = t.tunneld(args=["--proxy-client-ip-header", "Fly-Client-IP",
                             "--max-tunnels-per-ip", "1", "--handshake-rate", "1",
                             "--handshake-burst", "2", "--admin-listen", "127.0.0.1:%d" % adm_p],
                       label="tunneld-proxy")

        def via(addr, name):
            r = Raw(px.port, "127.0.0.1",
                    headers=[("Fly-Client-IP", addr)] if addr else [], hello=hello(name))
            raws.append(r)
            return r

        t.eq((via("203.0.113.7", "pa").msg or {}).get("type"), "welcome", "203.0.113.7: first")
        r = via("203.0.113.7", "pb")
        t.eq((r.msg or {}).get("code"), "too_many_tunnels", "203.0.113.7: second refused")
        t.check("203.0.113.7" in (r.msg or {}).get("message", ""), "the message names it")
        t.eq((via("203.0.113.8", "pc").msg or {}).get("type"), "welcome",
             "203.0.113.8 is another address")
        t.eq((via("2001:db8:1:2::1", "pd").msg or {}).get("type"), "welcome",
             "2001:db8:1:2::1: first")
        r = via("2001:db8:1:2::99", "pe")
        t.eq((r.msg or {}).get("code"), "too_many_tunnels", "the same /64 counts as one address")
        t.check("2001:db8:1:2::/64" in (r.msg or {}).get("message", ""), "named as the /64",
                (r.msg or {}).get("message"))
        t.eq((via(None, "pf").msg or {}).get("type"), "welcome",
             "without the header the socket address counts")

    with t.part("handshakes per second per address"):
        adm_h = h.free_port()
        hs = t.tunneld(args=["--handshake-rate", "1", "--handshake-burst", "3",
                             "--admin-listen", "127.0.0.1:%d" % adm_h], label="tunneld-hs")
        got = []
        for _ in range(5):
            r = Raw(hs.port, "127.0.0.5")
            got.append((r.status, r.header("Retry-After")))
            r.close()
        h.log("handshakes from 127.0.0.5: %s" % got)
        t.eq([g[0] for g in got[:3]], [101] * 3, "the burst (3) is let through")
        t.check(got[3][0] == 429 and got[3][1] and int(got[3][1]) >= 1,
                "the 4th gets 429 with Retry-After", got[3])
        t.eq(Raw(hs.port, "127.0.0.6").status, 101, "another address is not affected")
        time.sleep(1.2)
        t.eq(Raw(hs.port, "127.0.0.5").status, 101, "a token is back after 1/rate s")
        r = Raw(hs.port, "127.0.0.5")
        t.eq(r.status, 429, "and only one")
        body = r.body.decode("utf-8", "replace")
        t.check("--handshake-rate" in body, "the 429 page names the limit", body[:300])

        # the CLI connects from 127.0.0.1: spend that address's burst first
        for _ in range(3):
            Raw(hs.port, "127.0.0.1").close()
        cli = t.tunnel(hs, org.port, name="patient", wait_online=False)
        _, rec = cli.wait_event("reconnecting", 10)
        t.check(rec is not None, "the CLI is refused (429) and reconnects", cli.stdout_text()[-300:])
        _, on = cli.wait_event("online", 15)
        t.check(on is not None, "then comes online", cli.stdout_text()[-300:])
        n429 = sum(1 for g in got if g[0] == 429) + 1  # and at least one of the CLI's
        t.check(refusals(adm_h, "handshake_rate") >= n429 + 1, "metrics count the 429s",
                refusals(adm_h, "handshake_rate"))

        # behind a proxy the bucket is per named address (--handshake-burst 2 there)
        codes = [Raw(px.port, headers=[("Fly-Client-IP", "198.51.100.9")]).status
                 for _ in range(3)]
        t.eq(codes, [101, 101, 429], "proxy: the named address has its own bucket")
        t.eq(Raw(px.port, headers=[("Fly-Client-IP", "198.51.100.10")]).status, 101,
             "proxy: another named address is not affected")

    with t.part("total connections and streams"):
        adm_c = h.free_port()
        cn = t.tunneld(args=["--max-connections", "6", "--head-timeout", "60", "--max-streams",
                             "1", "--admin-listen", "127.0.0.1:%d" % adm_c], label="tunneld-conn")
        t.tunnel(cn, org.port, name="busy")
        idle = []
        for _ in range(5):  # with the tunnel's WebSocket: 6
            s = socket.create_connection(("127.0.0.1", cn.port), timeout=5)
            idle.append(s)
        h.wait_until(lambda: h.metrics(adm_c).get("warren_visitor_connections") == 5.0, 5)
        t0 = time.monotonic()
        r, closed, e = h.raw_exchange(cn.port, h.build_request("GET", "/hello", cn.host("busy")))
        dt = time.monotonic() - t0
        t.check(r is not None and r.status == 503, "over --max-connections: 503", e)
        t.check(r is not None and r.header("Retry-After") == "1", "with Retry-After: 1")
        t.check(closed, "and the connection is closed")
        t.check(dt < 1.0, "at once", "%.2f s" % dt)
        t.eq(refusals(adm_c, "connections"), 1.0, "metrics count it")
        t.eq(h.metrics(adm_c).get("warren_max_connections"), 6.0, "and show the limit")
        for s in idle[:3]:
            s.close()
        h.wait_until(lambda: h.metrics(adm_c).get("warren_visitor_connections") == 2.0, 5)
        r = h.request(cn.port, "GET", "/hello", cn.host("busy"))
        t.eq(r.status, 200, "a freed slot serves again")
        slow = {}
        for _ in range(20):  # the previous request's stream may still be closing
            seen = t.origin_count(org)
            slow.clear()
            th = threading.Thread(target=lambda: slow.update(r=h.request(
                cn.port, "GET", "/slow?delay_ms=3000", cn.host("busy"))), daemon=True)
            th.start()
            if h.wait_until(lambda: t.origin_count(org) > seen or "r" in slow, 5) and \
                    "r" not in slow:
                break
            th.join(5)
            time.sleep(0.2)
        t.require("r" not in slow, "a slow request holds the tunnel's one stream", slow)
        r = h.request(cn.port, "GET", "/hello", cn.host("busy"))
        t.eq(r.status, 503, "over --max-streams: 503")
        th.join(10)
        t.eq(getattr(slow.get("r"), "status", None), 200, "the stream in flight completes")
        t.eq(refusals(adm_c, "streams"), 1.0, "metrics count it")
        for s in idle[3:]:
            s.close()
        warned = cn.stderr_text().count("at the connection limit")
        t.eq(warned, 1, "the limit is logged once")

    with t.part("out of file descriptors"):
        ef = t.tunneld(args=["--max-connections", "1000"], label="tunneld-emfile")
        t.tunnel(ef, org.port, name="fds")
        base = h.fd_count(ef.pid)
        # lower the soft limit only: raising it again needs no privilege
        _, ef_hard = resource.prlimit(ef.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(ef.pid, resource.RLIMIT_NOFILE, (base + 6, ef_hard))
        clients = [socket.create_connection(("127.0.0.1", ef.port), timeout=5)
                   for _ in range(40)]
        time.sleep(0.5)
        c0 = h.cpu_seconds(ef.pid)
        time.sleep(3)
        used = h.cpu_seconds(ef.pid) - c0
        h.log("with accept() failing: %.3f s of CPU in 3 s, %d fds" % (used, h.fd_count(ef.pid)))
        t.check(used < 0.3, "no busy loop while accept() fails (CPU time in 3 s)", "%.2f s" % used)
        t.check(h.wait_until(lambda: "pausing accepts" in ef.stderr_text(), 5),
                "the edge says it pauses accepting")
        t.eq(ef.stderr_text().count("pausing accepts"), 1, "once, not per attempt")
        for c in clients:
            c.close()
        resource.prlimit(ef.pid, resource.RLIMIT_NOFILE, (ef_hard, ef_hard))
        r = None
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                r = h.request(ef.port, "GET", "/hello", ef.host("fds"), timeout=3)
                break
            except (OSError, ValueError):
                time.sleep(0.2)
        t.check(r is not None and r.status == 200, "serves again once descriptors are free", r)

    with t.part("open-files limit raised at start"):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard <= 1024:
            h.log("hard limit %d: nothing to raise, skipped" % hard)
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
            try:
                rl = t.tunneld(label="tunneld-rlimit")
                cl = t.tunnel(rl, org.port, name="rlim", args=["--log-level", "info"])
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            line = [x for x in rl.stderr_text().splitlines() if "open files" in x]
            want = min(hard, 65536)  # the edge's cap (docs/operations.md, "Open files")
            t.check(line and "raised from 1024 to %d" % want in line[0],
                    "tunneld logs the raise", line)
            with open("/proc/%d/limits" % rl.pid) as f:
                lim = [x.split() for x in f if x.startswith("Max open files")][0]
            t.eq((int(lim[3]), int(lim[4])), (want, hard),
                 "tunneld's soft limit is the hard one, at most 65536")
            # the CLI takes at most 4096: libwebsockets scans a table of that size
            # per new socket (docs/operations.md, "Open files")
            t.check("open files: limit %d (was 1024)" % min(hard, 4096) in cl.stderr_text(),
                    "tunnel logs its limit too (the hard one, at most 4096)",
                    cl.stderr_text()[-300:])

    with t.part("flags"):
        rc, out, err = t.run("help", [h.TUNNELD, "--help"])
        for flag in ("max-connections", "max-tunnels-per-ip", "handshake-rate", "handshake-burst",
                     "body-timeout", "send-timeout", "min-rate"):
            env = "TUNNELD_" + flag.upper().replace("-", "_")
            t.check("--" + flag in out and env in out, "--help lists --%s and %s" % (flag, env))
        rc, out, err = t.run("bad", [h.TUNNELD, "--domain", "x.test", "--handshake-burst", "0"])
        t.eq(rc, 2, "a bad value exits 2")
        t.check("--handshake-burst" in err, "and names the flag", err)
