"""Fleet benchmark: 16 edges in one namespace, tunnels on edge 1.

Latency (one request per new connection, GET of a 28-byte body from a
minimal asyncio origin, timed in Python around connect + request + response):
  local     a visitor on edge 1, which holds the tunnel;
  cold      a visitor on edge k (2..16) for a name it has never looked up: the
            edge asks its 15 peers in parallel and forwards to the first yes;
  cached    the same edge and name right after: the owner comes from the
            cache (5 s), so this is the forwarding overhead alone;
  404       a name nobody has: every peer must answer no.
Also the edges' own lookup histogram (warren_lookup_duration_seconds, which
excludes the client), and, with wrk, requests per second over 16 keep-alive
connections for 5 s: the origin directly, through edge 1 (local), and through
edge 2 (forwarded to edge 1 over the peer link).

Prints a Markdown table (the figures for docs/benchmarks.md, "Fleet").
Checks only what must hold on any machine: every answer right, no wrk
errors, lookups far below the 1 s deadline. Run by hand with more samples:
    WARREN_BUILD=build /usr/bin/python3 tests/cluster/test_bench.py --names 40
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import time

import cluster as c
from cluster import h

ap = argparse.ArgumentParser()
ap.add_argument("--edges", type=int, default=16)
ap.add_argument("--names", type=int, default=20, help="tunnels on edge 1 (cold samples per edge)")
ap.add_argument("--wrk-seconds", type=int, default=5)
ap.add_argument("--runs", type=int, default=1, help="wrk runs per path, alternating; medians")
ap.add_argument("--connections", type=int, default=16)
args = ap.parse_args()

ORIGIN = os.path.join(c.HERE, "hello_origin.py")


class QuietTunnel:
    """A CLI whose per-request output goes to a file, not through a Python pipe
    (at tens of thousands of requests per second the reader would cost CPU)."""

    def __init__(self, t, edge, port, name):
        self.name = name
        self.out = t.path("cli-%s.stdout" % name)
        self.err = open(t.path("cli-%s.stderr" % name), "wb")
        with open(self.out, "wb") as out:
            self.p = subprocess.Popen([c.TUNNEL, "--port", str(port), "--server", edge.ws_url,
                                       "--subdomain", name, "--json"],
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=self.err,
                                      env=t.child_env(), preexec_fn=h._pdeathsig)

    def online(self):
        try:
            with open(self.out, "rb") as f:
                return b'"event":"online"' in f.read(4096)
        except OSError:
            return False

    def stop(self):
        rc = self.p.poll()
        if rc is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                rc = self.p.wait(8)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
                rc = None
        self.err.close()
        return rc


def wrk(t, addr, port, host, seconds, conns):
    """Run wrk; returns (req/s, non-2xx count, socket errors text, avg latency text)."""
    argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "5s",
            "-H", "Host: %s" % host, "http://%s/" % c.hostport(addr, port)]
    h.log(" ".join(argv))
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=seconds + 30)
    out = r.stdout.decode(errors="replace")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    lat = re.search(r"Latency\s+(\S+)", out)
    return (float(rps.group(1)) if rps else 0.0, int(non2xx.group(1)) if non2xx else 0,
            errs.group(0) if errs else "", lat.group(1) if lat else "?", out)


def cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


with c.Cluster("bench", timeout=240) as t:
    t0 = time.monotonic()
    edges = t.fleet(args.edges, mesh=False)
    t.wait_mesh(edges, timeout=30)
    h.log("RESULT %d edges up and fully linked (%d links) in %.1f s"
          % (len(edges), len(edges) * (len(edges) - 1), time.monotonic() - t0))
    e1 = edges[0]
    port = h.free_port()
    org = t.spawn("hello-origin", [c.PY, ORIGIN, "--port", str(port)])
    t.require(h.wait_until(lambda: c.listening("127.0.0.1", port), 10), "bench origin listening")
    names = ["bench%02d" % i for i in range(args.names)]
    clis = [QuietTunnel(t, e1, port, n) for n in names]

    def stop_clis():
        for q in clis:
            rc = q.stop()
            t.check(rc == 0, "CLI %s exits 0 on SIGTERM" % q.name, rc)
            c.check_no_sanitizer_report(t, t.path("cli-%s.stderr" % q.name), "CLI " + q.name)
    t.on_teardown(stop_clis)
    t.require(h.wait_until(lambda: all(q.online() for q in clis), 20),
              "%d tunnels online on edge 1" % len(clis),
              [q.name for q in clis if not q.online()])

    local, cold, cached, notfound = [], [], [], []
    wrong = []

    def sample(e, name, want, into):
        r, secs, err = t.timed_get(e, "/", name, timeout=5)
        if r is None or r.status != want:
            wrong.append((e.k, name, r.status if r else err))
        else:
            into.append(secs)

    t.step("latency samples")
    LK = "warren_lookup_duration_seconds"

    def lookup_hist(before, after):
        """The edges' own lookup timer between two metric snapshots of edges
        2..16: (count, mean ms, p50 bucket bound ms, p99 bucket bound ms)."""
        def d(key):
            return sum(b.get(key, 0) - a.get(key, 0) for a, b in zip(before, after))
        n = d(LK + "_count")
        bounds = sorted({float(m.group(1)) for m in
                         (re.match(LK + r'_bucket\{le="([0-9.]+)"\}', k) for k in after[0])
                         if m})

        def bound(p):
            for le in bounds:
                if d(LK + '_bucket{le="%s"}' % _fmt(le, after[0])) >= p / 100.0 * n:
                    return le * 1000
            return float("inf")
        return n, (d(LK + "_sum") / n * 1000) if n else float("nan"), bound(50), bound(99)

    def _fmt(le, m):
        for k in m:
            g = re.match(LK + r'_bucket\{le="([0-9.]+)"\}', k)
            if g and float(g.group(1)) == le:
                return g.group(1)
        return str(le)

    m0 = [t.metrics(e) for e in edges[1:]]
    for name in names:
        for e in edges[1:]:
            sample(e1, name, 200, local)
            sample(e, name, 200, cold)
            sample(e, name, 200, cached)
    m1 = [t.metrics(e) for e in edges[1:]]
    for name in names:
        for e in edges[1:]:
            sample(e, "nobody-" + h.rand_name("")[:6], 404, notfound)
    m2 = [t.metrics(e) for e in edges[1:]]
    t.check(not wrong, "every sample got the expected status", wrong[:5])
    hits = sum(b.get('warren_lookups_total{result="cache_hit"}', 0) -
               a.get('warren_lookups_total{result="cache_hit"}', 0) for a, b in zip(m0, m1))
    t.eq(int(hits), len(cached), "every 'cached' sample was a cache hit")
    hf = lookup_hist(m0, m1)
    hn = lookup_hist(m1, m2)

    def ms(xs, p):
        return c.percentile(xs, p) * 1000

    rows = [("local (edge 1 holds the tunnel)", local),
            ("forwarded, cached owner", cached),
            ("forwarded, cold lookup (15 peers asked)", cold),
            ("404, every peer says no", notfound)]
    table = ["| visitor request (new connection, GET) | samples | p50 ms | p99 ms |",
             "|---|---:|---:|---:|"]
    for label, xs in rows:
        table.append("| %s | %d | %.2f | %.2f |" % (label, len(xs), ms(xs, 50), ms(xs, 99)))
    over_cached = ms(cached, 50) - ms(local, 50)
    over_cold = ms(cold, 50) - ms(cached, 50)
    lines = ["edges %d, tunnels %d on edge 1" % (len(edges), len(names))] + table + [
        "", "cached path overhead vs local (p50): %.2f ms; a cold lookup adds (p50): %.2f ms"
        % (over_cached, over_cold), "",
        "| lookup, timed by the edge (warren_lookup_duration_seconds) | lookups | mean ms "
        "| p50 bucket | p99 bucket |", "|---|---:|---:|---:|---:|"]
    for label, (n, mean, p50, p99) in (("found (first yes wins)", hf),
                                       ("not found (all 15 answer)", hn)):
        lines.append("| %s | %d | %.2f | <= %g ms | <= %g ms |" % (label, n, mean, p50, p99))
    t.check(ms(cold, 99) < 500 and ms(notfound, 99) < 500,
            "cold lookups and 404s stay far below the 1 s deadline (p99 %.1f / %.1f ms)"
            % (ms(cold, 99), ms(notfound, 99)))

    if shutil.which("wrk"):
        t.step("throughput with wrk")
        host = "%s.%s:%d" % (names[0], c.DOMAIN, c.PUBLIC_PORT)
        e2 = edges[1]
        paths = (("origin directly", "127.0.0.1", port),
                 ("through edge 1 (local)", e1.addr, c.PUBLIC_PORT),
                 ("through edge 2 -> edge 1 (forwarded)", e2.addr, c.PUBLIC_PORT))
        runs = {label: [] for label, _, _ in paths}
        watched = (("edge1", e1.pid), ("edge2", e2.pid), ("cli", clis[0].p.pid))
        for _ in range(args.runs):
            for label, addr, p in paths:
                before = {k: cpu_s(pid) for k, pid in watched}
                rps, non2xx, errs, lat, out = wrk(t, addr, p, host, args.wrk_seconds,
                                                   args.connections)
                cpu = {k: cpu_s(pid) - before[k] for k, pid in watched}
                runs[label].append((rps, lat, cpu))
                t.check(rps > 0 and non2xx == 0 and not errs,
                        "wrk %s: %.0f req/s, no errors" % (label, rps), out[-600:])
        res = {}
        lines += ["", "| wrk -t1 -c%d -d%ds, GET 28 B (median of %d) | req/s | mean latency "
                  "| CPU s edge 1 / edge 2 / CLI |" % (args.connections, args.wrk_seconds,
                                                      args.runs), "|---|---:|---:|---|"]
        for label, rs in runs.items():
            rps, lat, cc = sorted(rs, key=lambda x: x[0])[len(rs) // 2]
            res[label] = (rps, lat)
            lines.append("| %s | %.0f | %s | %.1f / %.1f / %.1f |"
                         % (label, rps, lat, cc["edge1"], cc["edge2"], cc["cli"]))
        loc = res["through edge 1 (local)"][0]
        fwd = res["through edge 2 -> edge 1 (forwarded)"][0]
        if loc:
            lines.append("forwarded / local: %.2f" % (fwd / loc))
    else:
        h.log("SKIP part: wrk is not installed (deploy/install-deps.sh installs it)")
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    lines.append("build %s, %d cores, load average %.2f" % (c.BUILD_KIND(), os.cpu_count(), load))
    print("\n".join("RESULT " + l for l in lines), flush=True)
