"""Stream churn and junk handshakes on one edge must not slow another tunnel
down or make the edge grow.

For 30 s (--duration), in separate loadgen.py processes:
  - 16 visitors loop on tunnel "churn": each GETs an 8 MiB body and resets
    the connection after its first 64 KiB;
  - 16 visitors loop on tunnel "wild", whose client (loadgen rawtunnel,
    speaking the protocol itself) resets every third stream at once, cuts
    every third after 8 kB of a 20 kB response, and answers the rest;
  - 10,000 junk tunnel handshakes spread over the run and over 253 source
    addresses (127.0.0.2-254): garbage, a TLS hello, half a head, bad JSON,
    wrong protocol version, a HELLO of the wrong type, a binary frame first,
    an oversized message, no HELLO at all, a bad WebSocket version, no key;
  - 300 handshakes as fast as they are answered from one address (127.0.1.1).
Meanwhile a probe GETs /hello from tunnel "calm" 20 times a second, each on a
new connection; its p99 was measured for 15 s before the churn. The load
generators and the churned tunnels' clients and app stand for other machines:
they run at nice 19, so that the probe measures the edge rather than this
machine's scheduler.

Checks: the probe's p99 during the churn stays under max(2 x baseline p99,
50 ms, 2 x control p99) and every probe request answers 200, where the
control probe asks the calm tunnel's app directly, past the edge, during the
churn: on this shared machine other work can stall any process for hundreds
of milliseconds, and the control's tail shows how much; each junk kind gets its
documented answer (400 for garbage and TLS; 101 then ERROR bad_hello and
close 1002 for bad JSON or a wrong type; close 1009 for a HELLO over 4,096
bytes; ERROR version_unsupported and 1008 for a wrong protocol version; close
1002 for a frame before HELLO; 400 for an upgrade without a key or with a
WebSocket version other than 13), and none
is rate limited; the flood gets exactly its burst of 101s plus the tokens
that came back, and 429 with Retry-After for the rest, as /metrics counts;
churn visitors only ever see 200 or the documented 502; the edge's RSS in
the last third of the run is within 8 MiB (64 MiB under ASan) of its peak
in the first third; afterwards its descriptors are back to baseline."""

import argparse
import json
import os
import threading
import time

import harness as h

ap = argparse.ArgumentParser()
ap.add_argument("--duration", type=float,
                default=float(os.environ.get("WARREN_CHURN_DURATION", "30")))
ap.add_argument("--junk", type=int, default=10000)
args = ap.parse_args()
LOADGEN = os.path.join(h.HERE, "loadgen.py")
FLOOD = 300


def probe(port, host, seconds, rate=20.0):
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            r = h.request(port, "GET", "/hello", host, timeout=10)
            out.append((time.monotonic() - t0, r.status))
        except (OSError, ValueError) as e:
            out.append((time.monotonic() - t0, repr(e)))
        time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t0)))
    return out


def result(p):
    return json.loads(p.stdout_text().splitlines()[-1])


with h.Test("churn", timeout=int(args.duration) + 150) as t:
    adm = h.free_port()
    edge = t.tunneld(args=["--admin-listen", "127.0.0.1:%d" % adm])
    org_c, org_q = t.origin(), t.origin()
    cli_c = t.tunnel(edge, org_c.port, name="churn")
    t.tunnel(edge, org_q.port, name="calm")
    wild = t.spawn("rawtunnel", [h.PY, LOADGEN, "rawtunnel", "--port", str(edge.port),
                                 "--name", "wild", "--duration", str(args.duration + 20)])
    # The load generators, and the churned tunnel's client and app, stand for
    # machines elsewhere: nice 19 keeps them from taking this (shared, 2-core)
    # machine's CPU from the edge and the probed tunnel, whose latency is
    # what is measured.
    background = [org_c, cli_c, wild]
    t.require(wild.wait_line(lambda l: l == "online", 10), "the raw tunnel client is online",
              wild.stdout_text() + wild.stderr_text())
    asan = h.is_sanitized(edge.pid)
    calm = edge.host("calm")

    t.step("baseline: the probe alone for 15 s")
    base = probe(edge.port, calm, 15)
    b_lat = [x for x, s in base if s == 200]
    t.require(len(b_lat) == len(base), "baseline probe all 200", base[:5])
    b50, b99 = h.pct(b_lat, 50), h.pct(b_lat, 99)
    h.log("baseline: %d requests, p50 %.2f ms, p99 %.2f ms; slowest: %s"
          % (len(b_lat), b50 * 1e3, b99 * 1e3, [round(x * 1e3, 1) for x in sorted(b_lat)[-6:]]))
    fd0 = h.fd_count(edge.pid)

    t.step("churn + junk + flood for %.0f s, probe meanwhile" % args.duration)
    rss = []
    stop = threading.Event()

    def sample():
        t0 = time.monotonic()
        while not stop.is_set():
            v = h.rss_kb(edge.pid)
            if v:
                rss.append((time.monotonic() - t0, v))
            stop.wait(0.5)

    sm = threading.Thread(target=sample, daemon=True)
    sm.start()
    churn = t.spawn("churn", [h.PY, LOADGEN, "churn", "--port", str(edge.port), "--host",
                              edge.host("churn"), "--raw-host", edge.host("wild"),
                              "--duration", str(args.duration), "--concurrency", "16"])
    junk = t.spawn("junk", [h.PY, LOADGEN, "junk", "--port", str(edge.port), "--count",
                            str(args.junk), "--duration", str(args.duration), "--sources", "2-254",
                            "--concurrency", "32"])
    flood = t.spawn("flood", [h.PY, LOADGEN, "flood", "--port", str(edge.port), "--count",
                              str(FLOOD), "--source", "127.0.1.1"])
    for p in background + [churn, junk, flood]:
        os.setpriority(os.PRIO_PROCESS, p.pid, 19)
    procs = [p for p in t.procs if p.alive()]
    cpu0 = {p.label: h.cpu_seconds(p.pid) for p in procs}
    # a control probe straight to the calm tunnel's app, past the edge: when
    # its tail grows too, this machine is busy, not the edge
    ctl = []
    cth = threading.Thread(target=lambda: ctl.extend(probe(org_q.port, "127.0.0.1",
                                                           args.duration, 10)), daemon=True)
    cth.start()
    during = probe(edge.port, calm, args.duration)
    cth.join(15)
    cpu = {p.label: round(h.cpu_seconds(p.pid) - cpu0[p.label], 1) for p in procs}
    h.log("CPU seconds used during the run: %s" % cpu)
    for p in (churn, junk, flood):
        rc = p.wait_exit(120)
        p.checked_exit = True
        t.require(rc == 0, "%s finished" % p.label, "rc=%r %s" % (rc, p.stderr_text()[-1500:]))
    stop.set()
    sm.join(2)

    t.step("the other tunnel")
    d_lat = [x for x, s in during if s == 200]
    t.check(len(d_lat) == len(during), "every probe request answered 200",
            [p for p in during if p[1] != 200][:5])
    d50, d99 = h.pct(d_lat, 50), h.pct(d_lat, 99)
    c_lat = [x for x, s in ctl if s == 200]
    c50, c99 = h.pct(c_lat, 50), h.pct(c_lat, 99)
    h.log("control (straight to the app, 10/s): %d requests, p50 %.2f ms, p99 %.2f ms"
          % (len(c_lat), c50 * 1e3, c99 * 1e3))
    # the bound: twice the baseline, at least 50 ms, and at least twice what
    # this machine's own noise gave the control probe meanwhile
    bound = max(2 * b99, 0.050, 2 * c99)
    h.log("during: %d requests, p50 %.2f ms, p99 %.2f ms (bound %.1f ms); slowest: %s"
          % (len(d_lat), d50 * 1e3, d99 * 1e3, bound * 1e3,
             [round(x * 1e3, 1) for x in sorted(d_lat)[-6:]]))
    t.check(d99 < bound, "probe p99 under max(2 x baseline p99, 50 ms, 2 x control p99)",
            "%.1f ms vs %.1f ms" % (d99 * 1e3, bound * 1e3))

    t.step("churn outcomes")
    cr = result(churn)
    h.log("churn: %s in %.1f s" % (cr["counts"], cr["seconds"]))
    allowed = {"churn 200", "wild 200", "wild 502", "wild reset", "wild eof"}
    odd = {k: v for k, v in cr["counts"].items() if k not in allowed}
    t.check(not odd, "visitors only saw 200, or 502 / a cut for streams their client reset",
            odd)
    t.check(cr["counts"].get("churn 200", 0) >= 100, "the churn tunnel served many aborted "
            "requests", cr["counts"])
    t.check(cr["counts"].get("wild 502", 0) >= 10 and cr["counts"].get("wild 200", 0) >= 10,
            "the raw client's resets reached visitors as 502", cr["counts"])
    wr = result(wild) if wild.wait_exit(60) == 0 else {}
    wild.checked_exit = True
    h.log("raw tunnel client: %s" % wr.get("counts"))

    t.step("junk handshakes")
    jr = result(junk)["records"]
    t.eq(len(jr), args.junk, "every junk handshake was made")
    want = {
        "garbage": lambda r: r["status"] == 400,
        "tls": lambda r: r["status"] == 400,
        "bad_json": lambda r: (r["status"], r.get("error"), r.get("close")) == (101, "bad_hello",
                                                                                1002),
        "bad_type": lambda r: (r["status"], r.get("error"), r.get("close")) == (101, "bad_hello",
                                                                                1002),
        "huge_text": lambda r: (r["status"], r.get("close")) == (101, 1009),
        "wrong_version": lambda r: (r["status"], r.get("error"), r.get("close")) == (
            101, "version_unsupported", 1008),
        "binary_first": lambda r: (r["status"], r.get("close")) == (101, 1002),
        "no_key": lambda r: r["status"] == 400,
        "bad_ws_version": lambda r: r["status"] == 400,
        "no_hello": lambda r: r["status"] == 101,
        "half": lambda r: True,
    }
    for kind, ok in want.items():
        rs = [r for r in jr if r["kind"] == kind]
        bad = [r for r in rs if not ok(r)]
        t.check(rs and not bad, "junk %s (%d): the documented answer" % (kind, len(rs)), bad[:3])
    t.check(not [r for r in jr if r.get("status") == 429],
            "no junk handshake was rate limited (about 1.3/s per address)")

    t.step("one address flooding handshakes")
    fr = result(flood)["records"]
    n101 = sum(1 for r in fr if r["status"] == 101)
    limited = [r for r in fr if r["status"] == 429]
    h.log("flood: %d x 101, %d x 429" % (n101, len(limited)))
    t.eq(n101 + len(limited), FLOOD, "every flood handshake got 101 or 429")
    t.check(20 <= n101 <= 20 + 5 * (args.duration + 5), "101s: the burst (20) plus 5/s at most",
            n101)
    t.check(limited and all(r.get("retry_after", 0) >= 1 for r in limited),
            "every 429 has Retry-After")
    m = h.metrics(adm)
    t.eq(m.get('warren_limit_refusals_total{limit="handshake_rate"}'), float(len(limited)),
         "metrics count the 429s")

    t.step("memory and descriptors")
    T = args.duration
    first = [v for s, v in rss if s <= T / 3]
    last = [v for s, v in rss if s >= 2 * T / 3]
    slack = (64 if asan else 8) * 1024
    h.log("edge RSS KiB: first third max %d, last third max %d, overall max %d"
          % (max(first), max(last), max(v for _, v in rss)))
    t.check(max(last) <= max(first) + slack, "edge RSS flat: last third within %d KiB of the "
            "first" % slack, "%d vs %d" % (max(last), max(first)))
    ok = h.wait_until(lambda: h.fd_count(edge.pid) <= fd0 + 4, 20, 0.5)
    t.check(ok, "descriptors back to baseline (%d, +4)" % fd0, h.fd_count(edge.pid))
    r = h.request(edge.port, "GET", "/hello", calm)
    t.eq(r.status, 200, "the edge still serves")
    print("FIGURES churn %s" % json.dumps({
        "baseline_p50_ms": round(b50 * 1e3, 2), "baseline_p99_ms": round(b99 * 1e3, 2),
        "during_p50_ms": round(d50 * 1e3, 2), "during_p99_ms": round(d99 * 1e3, 2),
        "control_p50_ms": round(c50 * 1e3, 2), "control_p99_ms": round(c99 * 1e3, 2),
        "churn": cr["counts"], "flood_101": n101, "flood_429": len(limited),
        "rss_kib_first_last_max": [max(first), max(last), max(v for _, v in rss)],
        "asan": asan}), flush=True)
