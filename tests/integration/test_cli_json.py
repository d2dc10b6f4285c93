"""tunnel --json prints one JSON object per line: online, then one request
event per request with method, path, status, ms and byte counts. The CLI exits
0 on SIGINT and on SIGTERM, also while streams are busy."""

import json
import signal
import threading
import time

import harness as h

with h.Test("cli-json", timeout=40) as t:
    edge = t.tunneld()
    org = t.origin()
    cli = t.tunnel(edge, org.port, name="events")
    H = edge.host("events")
    t.check(all(l.startswith("{") for l in cli.lines), "every stdout line is JSON", cli.lines)

    reqs = [("GET", "/hello", None, 200), ("POST", "/echo", b"x" * 1000, 200),
            ("GET", "/nope", None, 404), ("GET", "/status?code=418", None, 418),
            ("GET", "/bytes?n=100000&seed=1", None, 200), ("PUT", "/sha256", b"y" * 5000, 200)]
    for m, p, b, st in reqs:
        r = h.request(edge.port, m, p, H, body=b)
        t.eq(r.status, st, "%s %s -> %d" % (m, p, st))

    start = 0
    for m, p, b, st in reqs:
        i, ev = cli.wait_event("request", 5, start=start)
        if ev is None:
            t.check(False, "request event for %s %s" % (m, p), cli.stdout_text()[-800:])
            break
        start = i + 1
        t.eq((ev.get("method"), ev.get("path", "").split("?")[0], ev.get("status")),
             (m, p.split("?")[0], st), "request event %s %s" % (m, p))
        t.check(isinstance(ev.get("ms"), (int, float)) and ev["ms"] >= 0, "event has ms", ev)
        t.check(isinstance(ev.get("bytes_in"), int) and isinstance(ev.get("bytes_out"), int),
                "event has bytes_in/bytes_out", ev)
        if p.startswith("/bytes"):
            t.check(max(ev.get("bytes_in", 0), ev.get("bytes_out", 0)) >= 100000,
                    "download event counts the 100000 body bytes", ev)
        if m == "PUT":
            t.check(max(ev.get("bytes_in", 0), ev.get("bytes_out", 0)) >= 5000,
                    "upload event counts the 5000 body bytes", ev)
    for line in cli.lines:
        try:
            json.loads(line)
        except ValueError:
            t.check(False, "stdout line is JSON", line)

    t.step("signals")
    rc = cli.stop(signal.SIGINT, 5)
    cli.checked_exit = True
    t.eq(rc, 0, "exit 0 on SIGINT")
    cli2 = t.tunnel(edge, org.port, name="events2")
    rc = cli2.stop(signal.SIGTERM, 5)
    cli2.checked_exit = True
    t.eq(rc, 0, "exit 0 on SIGTERM")

    t.step("SIGTERM / SIGINT while downloads are running")
    for rnd in range(6):
        sig = signal.SIGTERM if rnd % 2 == 0 else signal.SIGINT
        busy = t.tunnel(edge, org.port, name="busy%d" % rnd)

        def pull(name=busy.name):
            for _ in range(4):
                try:
                    h.download_sha256(edge.port, "/bytes?n=%d&seed=3" % (64 << 20),
                                      edge.host(name), timeout=10)
                except Exception:  # noqa: BLE001  (cut by the exit: expected)
                    pass

        ths = [threading.Thread(target=pull, daemon=True) for _ in range(4)]
        for th in ths:
            th.start()
        time.sleep(0.3 + 0.1 * rnd)
        rc = busy.stop(sig, 5)
        busy.checked_exit = True
        t.eq(rc, 0, "exit 0 on %s with 4 downloads running (round %d)" % (sig.name, rnd))
        for th in ths:
            th.join(15)
