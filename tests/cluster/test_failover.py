"""Kill the edge a tunnel is on (SIGKILL). A mixed fleet: edge 1 on IPv6,
edges 2 and 3 on IPv4. The CLI was started with --server
ws://edges.example.test:8080, a name that first resolves to edge 1 only; before
the kill DNS gives it all three edges, and getaddrinfo lists the dead IPv6 one
first (glibc's default precedence ranks IPv6 above IPv4), so the CLI has to
try addresses until one answers. It reconnects to another edge and keeps
its random name through its reconnect token; visitors on both remaining edges
reach it again within a few seconds (the times are printed). Then edge 1
leaves DNS and the other edges drop it from their peer set."""

import signal
import time

import cluster as c
from cluster import h

RECOVER_S = 6.0  # "within a few seconds": measured from the SIGKILL

with c.Cluster("failover", timeout=90) as t:
    e1, e2, e3 = t.fleet(3, family=[6, 4, 4])
    org = t.origin()
    t.dns_set(c.EDGES, [e1.addr])
    server = "ws://%s:%d" % (c.EDGES, c.PUBLIC_PORT)
    cli = t.tunnel(server, org.port, args=("--log-level", "debug"))
    name = cli.name
    h.log("CLI online as %s (a random name)" % name)
    t.eq([t.metric(e, "warren_tunnels") for e in (e1, e2, e3)], [1, 0, 0],
         "the tunnel is on edge 1")
    for e in (e2, e3):
        t.eq(t.get(e, "/hello", name).status, 200, "edge %d forwards to edge 1" % e.k)

    t.dns_set(c.EDGES, [e1.addr, e2.addr, e3.addr])
    order = c.resolve(c.EDGES)
    h.log("the CLI's next resolution of %s: %s" % (c.EDGES, order))
    first_online, _ = cli.wait_event("online", 1)
    err_mark = len(cli.stderr_text())

    t.step("SIGKILL edge 1")
    t0 = time.monotonic()
    e1.send(signal.SIGKILL)
    t.eq(e1.wait_exit(5), -signal.SIGKILL, "edge 1 is gone")

    _, ev = cli.wait_event("online", 15, start=first_online + 1)
    t_cli = time.monotonic() - t0
    t.require(ev is not None, "the CLI comes back online",
              "exit status %r, last events %s" % (cli.rc, cli.events[-3:]))
    h.log("CLI online again %.2f s after the kill: %s" % (t_cli, ev))
    t.eq(ev.get("name"), name, "the CLI keeps its name on the new edge")
    t.check(cli.alive(), "the CLI did not exit")
    tried = [l.split("(")[-1].rstrip(")") for l in cli.stderr_text()[err_mark:].splitlines()
             if "connecting to" in l]
    h.log("addresses the CLI dialled after the kill, in order: %s" % tried)
    t.check(tried and tried[-1] in (e2.addr, e3.addr),
            "its last connection went to a live edge", tried)
    if order and order[0] == e1.addr:
        t.check(tried[:1] == [e1.addr] and len(tried) >= 2,
                "it tried the dead edge first, then the next address of the name", tried)

    back = {}
    for e in (e2, e3):
        secs = t.wait_status(e, name, 200, 15)
        back[e.k] = None if secs is None else time.monotonic() - t0
    for k, secs in back.items():
        t.check(secs is not None and secs <= RECOVER_S,
                "a visitor on edge %d reaches the tunnel again within %.0f s of the kill"
                % (k, RECOVER_S), "took %s" % ("forever" if secs is None else "%.2f s" % secs))
    h.log("RESULT failover: CLI back online after %.2f s; visitors served again after "
          "%s s (edge: seconds since the SIGKILL)"
          % (t_cli, ", ".join("edge%d %.2f" % (k, v) for k, v in back.items()
                              if v is not None)))
    now = [t.metric(e, "warren_tunnels") for e in (e2, e3)]
    t.eq(sorted(now), [0, 1], "exactly one remaining edge holds the tunnel")

    with t.part("byte-exact after the move"):
        for e in (e2, e3):
            n = 1024 * 1024
            r, got, _ = t.download_sha256(e, "/bytes?n=%d&seed=%d" % (n, e.k), name, 20)
            t.eq((r.status, got), (200, h.pattern_sha256(n, e.k)),
                 "edge %d: 1 MiB byte-exact after the failover" % e.k)

    t.step("edge 1 leaves DNS")
    t1 = time.monotonic()
    t.dns_set(c.FLEET, [e2.addr, e3.addr])
    t.dns_set(c.EDGES, [e2.addr, e3.addr])
    ok = h.wait_until(lambda: all(t.metric(e, "warren_peers_known") == 1 for e in (e2, e3)), 10,
                      0.1)
    t.check(ok, "edges 2 and 3 drop edge 1 from their peers",
            {e.k: t.metric(e, "warren_peers_known") for e in (e2, e3)})
    h.log("peer sets updated %.2f s after the DNS change" % (time.monotonic() - t1))
    t.check(any("left the fleet" in l for l in e2.stderr_text().splitlines()),
            "edge 2 logs that edge 1 left the fleet")
    for e in (e2, e3):
        t.eq(t.get(e, "/hello", name).status, 200, "edge %d still serves %s" % (e.k, name))
    t.eq(t.get(e2, "/hello", "nobody-here").status, 404,
         "an unknown name is a plain 404 once the dead edge is gone from DNS")
