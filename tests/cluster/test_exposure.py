"""From a visitor's network position only the public port answers, and the
endpoints that are not public refuse whoever is not entitled to them.

Two hosts, each a network namespace of this test, joined by a veth pair:
the "edge host" (the namespace the cluster harness runs the scenario in)
holds 10.199.0.1 and fdaa:199::1 on its end of the pair; the "visitor
host" (a second namespace made here) holds 10.199.0.2 and fdaa:199::2. The
edge runs tunneld as an operator would: the public listener on the veth
address (10.199.0.1:8080), the peer listener on its loopback
(127.0.0.1:7000, with --peers-dns and the fleet secret, as in a fleet),
the admin endpoint on 127.0.0.1:9090, --keys required for tunnels, and
dnsmasq on 127.0.0.1:53.

From the visitor host:
  - a connect scan of all 65535 TCP ports of 10.199.0.1 finds exactly one
    open port, the public one, and every other port refuses (RST, none
    silent); a scan of fdaa:199::1 finds none;
  - the positive control: a visitor gets the tunnel's page through 8080;
  - the public port is not the admin endpoint: GET /metrics there says
    nothing of the edge's metrics;
  - tunnels need a key: a CLI without one, or with a wrong one, is refused
    with auth_failed (exit 5) and never comes online.
On the edge host (the peer and admin ports are only there):
  - the peer port refuses what is not an authenticated peer: a connection
    that sends nothing is closed at the 3 s handshake deadline, one that
    sends HTTP or a hello made with another fleet secret is closed with no
    welcome (the latter counted in warren_peer_auth_failures_total); a valid
    hello gets a welcome (positive control);
  - the admin endpoint only reads: POST gets 405, and no secret of the test
    (fleet and token secrets, the key) is anywhere in /metrics.
"""

import json
import os
import re
import signal
import socket
import time

import cluster as c
from cluster import h

EDGE4, VIS4 = "10.199.0.1", "10.199.0.2"
EDGE6, VIS6 = "fdaa:199::1", "fdaa:199::2"
PUBLIC, PEER, ADMIN = c.PUBLIC_PORT, c.PEER_PORT, c.ADMIN_PORT
HERE = os.path.dirname(os.path.abspath(__file__))


class Loopback:
    """What c.PeerConn needs of an edge: the address of its peer port."""
    addr = "127.0.0.1"


with c.Cluster("exposure", timeout=150) as t:
    outer_pid = os.environ[c.NS_ENV].rsplit("-", 1)[1]
    vis = "%sexposure-vis-%s" % (c.NS_PREFIX, outer_pid)  # reaped like the others if left

    def vsh(*argv, check=True, timeout=10):
        """A command inside the visitor namespace."""
        return c.sh(["ip", "netns", "exec", vis] + list(argv), check=check, timeout=timeout)

    t.step("two hosts joined by a veth pair")
    c.sh(["ip", "netns", "add", vis])
    t.on_teardown(lambda: c.sh(["ip", "netns", "del", vis], check=False))
    c.sh(["ip", "link", "add", "wrn-edge0", "type", "veth", "peer", "name", "wrn-vis0",
          "netns", vis])
    c.sh(["ip", "addr", "add", EDGE4 + "/24", "dev", "wrn-edge0"])
    c.sh(["ip", "-6", "addr", "add", EDGE6 + "/64", "dev", "wrn-edge0", "nodad"])
    c.sh(["ip", "link", "set", "wrn-edge0", "up"])
    vsh("ip", "link", "set", "lo", "up")
    vsh("ip", "addr", "add", VIS4 + "/24", "dev", "wrn-vis0")
    vsh("ip", "-6", "addr", "add", VIS6 + "/64", "dev", "wrn-vis0", "nodad")
    vsh("ip", "link", "set", "wrn-vis0", "up")
    rc, links = vsh("ip", "-o", "link", "show")
    t.check(len(links.splitlines()) == 2 and "wrn-vis0" in links,
            "the visitor host has its loopback and its end of the pair, nothing else", links)

    t.step("the edge, configured as an operator would")
    kf = t.path("keys")
    rc, out, _ = t.run("keys-add", [c.TUNNELD, "keys", "add", kf])
    key = out.strip()
    t.require(rc == 0 and key.startswith("wk_"), "a tunnel key made with `tunneld keys add`", out)
    t.dns_set(c.FLEET, ["127.0.0.1"])  # the fleet's name: only this edge, so far
    argv = [c.TUNNELD, "--domain", c.DOMAIN,
            "--listen", "%s:%d" % (EDGE4, PUBLIC),
            "--peer-listen", "127.0.0.1:%d" % PEER,
            "--peers-dns", c.FLEET, "--dns-server", "%s:%d" % (c.DNS_ADDR, c.DNS_PORT),
            "--fleet-secret-file", t.fleet_secret, "--secret-file", t.token_secret,
            "--instance-id", "edge1", "--admin-listen", "127.0.0.1:%d" % ADMIN,
            "--keys", kf, "--drain-timeout", "3",
            "--log-level", os.environ.get("WARREN_LOG_LEVEL") or "info"]
    edge = c.ClusterEdge(t, "edge1", argv, t.child_env(), 1, EDGE4, True, 3)
    t.procs.append(edge)
    t.edges.append(edge)
    ok = h.wait_until(lambda: (c.listening(EDGE4, PUBLIC) and c.listening("127.0.0.1", PEER) and
                               c.listening("127.0.0.1", ADMIN)) or not edge.alive(), 10)
    t.require(ok and edge.alive(), "tunneld listening on %s:%d, 127.0.0.1:%d and 127.0.0.1:%d"
              % (EDGE4, PUBLIC, PEER, ADMIN), edge.stderr_text()[-2000:])

    def metrics():
        try:
            r = h.request(ADMIN, "GET", "/metrics", "127.0.0.1:%d" % ADMIN, addr="127.0.0.1",
                          timeout=5)
        except (OSError, ValueError):
            return {}, ""
        return c.parse_metrics(r.text), r.text

    org = t.origin()
    cli = t.tunnel(edge.ws_url, org.port, name="demo", key=key)

    t.step("from the visitor host")
    code, out = vsh("curl", "-sS", "--noproxy", "*", "--max-time", "10", "-o", "/dev/null",
                    "-w", "%{http_code}", "--resolve", "demo.%s:%d:%s" % (c.DOMAIN, PUBLIC, EDGE4),
                    "http://demo.%s:%d/hello" % (c.DOMAIN, PUBLIC), check=False, timeout=15)
    t.eq(out, "200", "positive control: a visitor reaches the tunnel through %s:%d" % (EDGE4, PUBLIC))

    scans = {}
    for addr in (EDGE4, EDGE6):
        rc, out = vsh(c.PY, os.path.join(HERE, "portscan.py"), addr, check=False, timeout=120)
        try:
            scans[addr] = json.loads(out.splitlines()[-1])
        except (ValueError, IndexError):
            t.check(False, "the scan of %s ran" % addr, out[-2000:])
            continue
        s = scans[addr]
        h.log("RESULT scan of %s: open %s, %d refused, %d silent, errors %s, in %.1f s"
              % (addr, s["open"], s["refused"], len(s["timed_out"]), s["errors"], s["seconds"]))
    s4, s6 = scans.get(EDGE4), scans.get(EDGE6)
    if s4:
        t.eq(s4["open"], [PUBLIC], "scan of %s: the public port is the only one that answers"
             % EDGE4)
        t.eq((s4["refused"], s4["timed_out"], s4["errors"]), (65534, [], {}),
             "scan of %s: every other port refuses at once (none silent)" % EDGE4)
    if s6:
        t.eq(s6["open"], [], "scan of %s: nothing answers on the IPv6 address" % EDGE6)
        t.eq((s6["refused"], s6["timed_out"]), (65535, []),
             "scan of %s: every port refuses" % EDGE6)

    code, out = vsh("curl", "-sS", "--noproxy", "*", "--max-time", "10",
                    "http://%s:%d/metrics" % (EDGE4, PUBLIC), check=False, timeout=15)
    t.check("warren_" not in out and "# TYPE" not in out,
            "GET /metrics on the public port does not show the edge's metrics", out[:300])

    for label, k in (("nokey", None), ("wrongkey", key[:-1] + ("A" if key[-1] != "A" else "B"))):
        argv = ["ip", "netns", "exec", vis, c.TUNNEL, "--port", "9", "--server",
                "ws://%s:%d" % (EDGE4, PUBLIC), "--subdomain", label, "--json"]
        if k:
            argv += ["--key", k]
        rc, out, err = t.run("tunnel-" + label, argv, timeout=15)
        t.check(not any(p in err for p in c.SANITIZER_PATTERNS),
                "tunnel-%s: no sanitizer report" % label, err[-1000:])
        events = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        t.check(rc == 5 and any(e.get("code") == "auth_failed" for e in events) and
                not any(e.get("event") == "online" for e in events),
                "a tunnel from the visitor host %s is refused (auth_failed, exit 5)"
                % ("without a key" if k is None else "with a wrong key"), (rc, out, err[-500:]))

    t.step("the peer port, on the edge host")
    with open(t.fleet_secret, "rb") as f:
        fkey = c.fleet_key(f.read())
    m0, _ = metrics()
    fail0 = m0.get("warren_peer_auth_failures_total", 0)

    with t.part("a connection that says nothing"):
        p = c.PeerConn(Loopback, timeout=10)
        p.challenge()
        t0 = time.monotonic()
        closed = p.closed_without_answer(8)
        secs = time.monotonic() - t0
        p.close()
        t.check(closed and secs < 6, "closed without a welcome at the handshake deadline",
                "closed=%s after %.1f s" % (closed, secs))
        h.log("RESULT silent peer connection closed after %.2f s" % secs)
    with t.part("HTTP on the peer port"):
        p = c.PeerConn(Loopback)
        p.challenge()
        p.send(h.build_request("GET", "/metrics", "127.0.0.1"))
        t.check(p.closed_without_answer(4) and b"HTTP" not in p.buf,
                "an HTTP request on the peer port: closed, no answer", p.buf[:100])
        p.close()
    with t.part("a hello made with another fleet secret"):
        p = c.PeerConn(Loopback)
        hello, _ = c.peer_hello(c.fleet_key(b"z" * 40), p.challenge(), "stranger")
        p.send(c.frame(c.F_CTL, 0, hello))
        t.check(p.closed_without_answer(4), "closed without a welcome", p.buf[:100])
        p.close()
        t.check(h.wait_until(lambda: metrics()[0].get("warren_peer_auth_failures_total", 0)
                             == fail0 + 1, 3),
                "counted in warren_peer_auth_failures_total", metrics()[0])
    with t.part("positive control: a valid hello"):
        p = c.PeerConn(Loopback)
        hello, nonce = c.peer_hello(fkey, p.challenge(), "pytest")
        p.send(c.frame(c.F_CTL, 0, hello))
        ftype, sid, payload = p.read_frame()
        t.eq(json.loads(payload).get("type"), "peer_welcome", "a valid hello gets a peer_welcome")
        p.close()

    t.step("the admin endpoint, on the edge host")
    r = h.request(ADMIN, "POST", "/metrics", "127.0.0.1:%d" % ADMIN, addr="127.0.0.1", body=b"x")
    t.eq(r.status, 405, "POST to the admin endpoint: 405 (it only reads)")
    m, text = metrics()
    t.check(m.get("warren_tunnels") == 1, "/metrics answers on 127.0.0.1 (positive control)", m)
    secrets = {"key": key, "key secret part": key.split("_", 2)[2]}
    for name, path in (("fleet secret", t.fleet_secret), ("token secret", t.token_secret)):
        with open(path) as f:
            secrets[name] = f.read().strip()
    leaked = [name for name, v in secrets.items() if v and v in text]
    t.eq(leaked, [], "no secret of the test appears in /metrics")
