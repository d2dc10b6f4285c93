"""100 concurrent streams on one tunnel, all byte-exact: 50 downloads and 50
uploads of different sizes and seeds, started together."""

import hashlib
import threading

import harness as h

STREAMS = 100

with h.Test("concurrent", timeout=90) as t:
    edge = t.tunneld()
    org = t.origin()
    cli = t.tunnel(edge, org.port, name="many")
    host = edge.host("many")
    c0 = t.origin_count(org)

    barrier = threading.Barrier(STREAMS, timeout=20)
    results = [None] * STREAMS

    def run(i):
        n = 50 * 1024 + i * 20011
        seed = 1000 + i
        try:
            barrier.wait()
            if i % 2 == 0:
                r, got, _ = h.download_sha256(edge.port, "/bytes?n=%d&seed=%d" % (n, seed), host,
                                              timeout=60)
                ok = r.status == 200 and r.body_len == n and got == h.pattern_sha256(n, seed)
                results[i] = ok or "download %d: status %d, %d bytes" % (i, r.status, r.body_len)
            else:
                body = h.pattern_bytes(n, seed)
                r = h.request(edge.port, "POST", "/sha256", host, body=body, timeout=60)
                want = {"sha256": hashlib.sha256(body).hexdigest(), "length": n}
                ok = r.status == 200 and r.json() == want
                results[i] = ok or "upload %d: status %d, %r" % (i, r.status, r.body[:120])
        except Exception as e:  # noqa: BLE001
            results[i] = "stream %d: %r" % (i, e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(STREAMS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(80)
    bad = [r for r in results if r is not True]
    t.check(not bad, "%d concurrent streams byte-exact" % STREAMS,
            "%d bad: %s" % (len(bad), "; ".join(map(str, bad[:8]))))
    t.eq(t.origin_count(org) - c0, STREAMS, "origin saw exactly %d requests" % STREAMS)
    r = h.request(edge.port, "GET", "/hello", host)
    t.eq(r.status, 200, "tunnel still serves afterwards")
