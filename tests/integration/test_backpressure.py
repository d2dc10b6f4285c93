"""Back-pressure end to end: the local app pushes a large body to a visitor
that reads at 1 MiB/s. The edge and the CLI must hold back the app instead of
buffering: their RSS grows by less than the per-stream window (--window,
256 KiB) plus a constant (CONST_MIB, 2 MiB; 40 MiB under AddressSanitizer,
whose allocator keeps freed memory in a 16 MiB quarantine), the app is never
more than a bounded amount (24 MiB: the window, the CLI's send buffer and the
kernel's socket buffers on the way) ahead of the visitor, and the bytes that
arrive are byte-exact (SHA-256 of everything received, compared with the
pattern the app sent).

CI pushes 30 s worth (30 MiB); WARREN_LONG=1 pushes 2 GiB (about 35 min).
--size BYTES and --rate BYTES_PER_S override both."""

import argparse
import hashlib
import os
import threading
import time

import harness as h

MIB = 1024 * 1024
ap = argparse.ArgumentParser()
ap.add_argument("--rate", type=int, default=MIB)
ap.add_argument("--size", type=int,
                default=2048 * MIB if os.environ.get("WARREN_LONG") == "1" else 30 * MIB)
args = ap.parse_args()
WINDOW = 256 * 1024
AHEAD_MAX = 24 * MIB
SEED = 21

with h.Test("backpressure", timeout=int(args.size / args.rate) + 90) as t:
    edge = t.tunneld()
    org = t.origin()
    cli = t.tunnel(edge, org.port, name="push")
    host = edge.host("push")
    asan = h.is_sanitized(edge.pid) or h.is_sanitized(cli.pid)
    const_kib = (40 if asan else 2) * 1024

    t.step("warm up, then the baseline")
    cold = {"tunneld": h.rss_kb(edge.pid), "tunnel": h.rss_kb(cli.pid)}
    h.log("RSS KiB before any transfer: %s" % cold)
    for _ in range(3):
        r, got, _ = h.download_sha256(edge.port, "/bytes?n=%d&seed=1" % MIB, host)
        t.require(got == h.pattern_sha256(MIB, 1), "warm-up download exact")
    time.sleep(1)
    base = {"tunneld": h.rss_kb(edge.pid), "tunnel": h.rss_kb(cli.pid)}
    h.log("baseline RSS KiB: %s" % base)

    t.step("%d MiB at %.2f MiB/s" % (args.size // MIB, args.rate / MIB))
    st = {"read": 0, "err": None, "status": None, "ahead": 0, "ahead_at": 0}
    digest = hashlib.sha256()
    done = threading.Event()

    def reader():
        try:
            with h.HttpConn(edge.port, timeout=30, rcvbuf=256 * 1024) as c:
                c.send(h.build_request("GET", "/bytes?n=%d&seed=%d&tag=bp" % (args.size, SEED),
                                       host))
                r = c.read_head()
                st["status"] = r.status
                digest.update(bytes(c.buf))
                st["read"] += len(c.buf)
                c.buf.clear()
                t0 = time.monotonic()
                while st["read"] < args.size:
                    d = c.sock.recv(min(16384, args.size - st["read"]))
                    if not d:
                        st["err"] = "EOF after %d bytes" % st["read"]
                        break
                    digest.update(d)
                    st["read"] += len(d)
                    ahead = st["read"] / args.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        except Exception as e:  # noqa: BLE001
            st["err"] = repr(e)
        finally:
            done.set()

    with h.RssSampler({"tunneld": edge.pid, "tunnel": cli.pid}, interval=0.2) as rss:
        th = threading.Thread(target=reader, daemon=True)
        t0 = time.monotonic()
        th.start()
        while not done.wait(2.0):
            try:
                sent = h.request(org.port, "GET", "/_stats", "127.0.0.1", timeout=5).json()
            except (OSError, ValueError):
                continue
            ahead = sent["sent"].get("bp", 0) - st["read"]
            if ahead > st["ahead"]:
                st["ahead"], st["ahead_at"] = ahead, st["read"]
        th.join(5)
        secs = time.monotonic() - t0

    t.eq(st["status"], 200, "the download was answered")
    t.check(st["err"] is None, "and not cut", st["err"])
    t.eq(st["read"], args.size, "every byte arrived")
    t.eq(digest.hexdigest(), h.pattern_sha256(args.size, SEED), "byte-exact (SHA-256)")
    rate = st["read"] / secs
    h.log("%.1f MiB in %.1f s: %.2f MiB/s; the app was at most %.1f MiB ahead of the visitor "
          "(at %.1f MiB read)" % (st["read"] / MIB, secs, rate / MIB, st["ahead"] / MIB,
                                   st["ahead_at"] / MIB))
    t.check(rate <= args.rate * 1.1, "the visitor really read at its pace", "%.2f MiB/s"
            % (rate / MIB))
    t.check(st["ahead"] <= AHEAD_MAX, "the app was held back (at most %d MiB ahead)"
            % (AHEAD_MAX // MIB), "%.1f MiB" % (st["ahead"] / MIB))
    bound = WINDOW // 1024 + const_kib
    for k in ("tunneld", "tunnel"):
        grew = rss.max[k] - base[k]
        h.log("%s RSS KiB: baseline %d, max %d, growth %d (bound %d)"
              % (k, base[k], rss.max[k], grew, bound))
        t.check(grew < bound, "%s RSS grew by less than the window + %d MiB" %
                (k, const_kib // 1024), "%d KiB" % grew)
    r = h.request(edge.port, "GET", "/hello", host)
    t.eq(r.status, 200, "the tunnel still serves")
    print("FIGURES backpressure size_mib=%d secs=%.1f rate_mibs=%.2f ahead_mib=%.1f "
          "rss_kib=%s max_kib=%s asan=%s" % (args.size // MIB, secs, rate / MIB,
                                             st["ahead"] / MIB, base, rss.max, asan), flush=True)
