"""--body-timeout 2 --min-rate 1000: a request body must bring 2,000 bytes
per 2 s window while the edge waits for it (docs/operations.md).

  - a visitor that sends a burst filling the tunnel's stream buffer (64 KiB)
    and then nothing for 3 s before the rest (what `curl --limit-rate` does)
    keeps the credit of its burst: the upload completes, byte-exact;
  - a fast visitor behind a slow local service (the origin takes the body at
    20 KiB/s, so the tunnel holds it back for about 10 s, five windows) is
    not cut: the time the tunnel holds the body back does not count;
  - a visitor that sends a few bytes of its body and then nothing is still
    cut: 408 naming the rate, after about one window."""

import hashlib
import json
import time

import harness as h
import origin as o

TMO, RATE = 2, 1000

with h.Test("body-pace", timeout=90) as t:
    edge = t.tunneld(args=["--body-timeout", str(TMO), "--min-rate", str(RATE)])
    org = t.origin()
    t.tunnel(edge, org.port, name="pace")
    H = edge.host("pace")

    def post(path, total, pieces, timeout=40):
        """POST `total` pattern bytes with Content-Length, sent as `pieces`:
        (bytes, pause after) pairs. Returns (response, seconds)."""
        body = o.pattern_bytes(total, seed=7)
        with h.HttpConn(edge.port, timeout=timeout) as c:
            t0 = time.monotonic()
            c.send(("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
                    % (path, H, total)).encode())
            off = 0
            for n, pause in pieces:
                try:
                    c.send(body[off:off + n])
                except OSError:
                    break
                off += n
                time.sleep(pause)
            try:
                r = c.read_response()
            except (OSError, ValueError) as e:
                r = e
            return r, time.monotonic() - t0, hashlib.sha256(body).hexdigest()

    t.step("a burst that fills the stream's buffer, 3 s of nothing, then the rest")
    total = 70000
    r, dt, want = post("/sha256", total, [(65536, 3.0), (total - 65536, 0)])
    t.eq(getattr(r, "status", r), 200, "the paced upload completes")
    if getattr(r, "status", None) == 200:
        got = json.loads(r.body)
        t.eq((got["length"], got["sha256"]), (total, want), "the body arrived intact")
    t.check(dt >= 3.0, "the client did pause 3 s (more than one window)", "%.2f s" % dt)

    t.step("a fast visitor, a slow local service (20 KiB/s for 200 KiB: ~10 s held)")
    total = 200 * 1024
    r, dt, want = post("/sha256?rate=20480", total, [(total, 0)])
    t.eq(getattr(r, "status", r), 200, "not cut while the tunnel holds the body back")
    if getattr(r, "status", None) == 200:
        got = json.loads(r.body)
        t.eq((got["length"], got["sha256"]), (total, want), "the body arrived intact")
    t.check(dt >= 3 * TMO, "the hold lasted several windows", "%.2f s" % dt)

    t.step("a few bytes of the body, then silence")
    r, dt, _ = post("/sha256", 5000, [(100, 0)], timeout=TMO * 3 + 5)
    t.eq(getattr(r, "status", r), 408, "a body slower than --min-rate gets 408")
    if getattr(r, "status", None) == 408:
        t.check(b"slower than %d bytes/s" % RATE in r.body, "the 408 names the rate",
                r.body[:200])
    t.check(TMO - 0.5 <= dt <= 2 * TMO + 2, "cut after about one window", "%.2f s" % dt)
