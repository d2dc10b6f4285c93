"""200 MiB through one tunnel in each direction, compared by SHA-256 while
streaming (nothing is held whole): a Content-Length download, a chunked
upload, and a chunked download with odd chunk sizes."""

import harness as h

MIB = 1024 * 1024
N = 200 * MIB

with h.Test("large-transfer", timeout=170) as t:
    edge = t.tunneld()
    org = t.origin()
    cli = t.tunnel(edge, org.port, name="big")
    host = edge.host("big")

    t.step("download %d MiB" % (N // MIB))
    want = h.pattern_sha256(N, 1)
    r, got, secs = h.download_sha256(edge.port, "/bytes?n=%d&seed=1" % N, host, timeout=60)
    t.eq((r.status, r.body_len), (200, N), "download status and length")
    t.eq(got, want, "download SHA-256")
    h.log("download: %.1f s, %.0f MiB/s" % (secs, N / MIB / secs))

    t.step("chunked upload %d MiB" % (N // MIB))
    r, secs = h.upload_chunked_sha256(edge.port, "/sha256", host, N, 2, chunk=256 * 1024,
                                      timeout=90)
    t.eq(r.status, 200, "upload status")
    res = r.json() if r.status == 200 else {}
    t.eq((res.get("length"), res.get("sha256")), (N, h.pattern_sha256(N, 2)),
         "upload length and SHA-256 seen by the origin")
    h.log("upload: %.1f s, %.0f MiB/s" % (secs, N / MIB / secs))

    t.step("chunked download, odd chunk sizes")
    n = 20 * MIB + 7
    r, got, secs = h.download_sha256(edge.port, "/chunked?n=%d&seed=3&chunk=33333" % n, host,
                                     timeout=60)
    t.eq((r.status, r.body_len, got), (200, n, h.pattern_sha256(n, 3)), "chunked download exact")
    t.check(cli.alive() and edge.alive(), "edge and CLI still running")
