"""A slow consumer must throttle its producer, not grow memory, and must not
slow the other streams of the same tunnel.

On one tunnel, at the same time:
  - a visitor downloads a 1 GiB body but reads only 64 KiB/s;
  - a visitor uploads a 1 GiB body to an origin endpoint that reads 64 KiB/s;
  - a third visitor downloads 100 MiB at full speed.
The fast download must finish at about the speed it has alone; the origin
must have produced (and the uploader sent) only a bounded amount more than was
consumed; edge and CLI RSS, sampled every 100 ms, must stay under the bound
(WARREN_RSS_LIMIT_MB, default 64)."""

import os
import socket
import threading
import time

import harness as h

MIB = 1024 * 1024
RATE = 64 * 1024
FAST_N = 100 * MIB
SLOW_N = 1024 * MIB
SLACK = 32 * MIB  # socket buffers + windows on the way
LIMIT_KB = int(os.environ.get("WARREN_RSS_LIMIT_MB", "64")) * 1024
RUN = 8.0

with h.Test("slow-visitor", timeout=120) as t:
    edge = t.tunneld()
    org = t.origin()
    cli = t.tunnel(edge, org.port, name="slowpoke")
    host = edge.host("slowpoke")

    t.step("baseline: 100 MiB alone")
    r, got, base = h.download_sha256(edge.port, "/bytes?n=%d&seed=5" % FAST_N, host, timeout=60)
    t.require(r.status == 200 and got == h.pattern_sha256(FAST_N, 5), "baseline download exact",
              r)
    h.log("baseline %.2f s (%.0f MiB/s)" % (base, FAST_N / MIB / base))

    stop = threading.Event()
    slow = {"read": 0, "data": bytearray(), "err": None, "status": None}
    up = {"sent": 0, "err": None}

    def slow_reader():
        try:
            with h.HttpConn(edge.port, timeout=30, rcvbuf=RATE) as c:
                c.send(h.build_request("GET", "/bytes?n=%d&seed=6&tag=slow" % SLOW_N, host))
                r = c.read_head()
                slow["status"] = r.status
                slow["data"] += c.buf
                t0 = time.monotonic()
                while not stop.is_set():
                    d = c.sock.recv(16384)
                    if not d:
                        slow["err"] = "EOF after %d bytes" % len(slow["data"])
                        break
                    if len(slow["data"]) < 4 * MIB:
                        slow["data"] += d
                    slow["read"] += len(d)
                    ahead = slow["read"] / RATE - (time.monotonic() - t0)
                    if ahead > 0:
                        stop.wait(ahead)
        except Exception as e:  # noqa: BLE001
            slow["err"] = repr(e)

    def slow_upload():
        try:
            with h.HttpConn(edge.port, timeout=30) as c:
                c.send(h.build_request("POST", "/sha256?rate=%d&tag=up" % RATE, host,
                                       [("Content-Length", str(SLOW_N))]))
                block = bytes(h.pattern_bytes(MIB, 9))
                c.sock.settimeout(0.2)
                off = 0
                while not stop.is_set():
                    try:
                        n = c.sock.send(block[off:off + 256 * 1024])
                    except socket.timeout:
                        continue
                    up["sent"] += n
                    off = (off + n) % MIB
        except Exception as e:  # noqa: BLE001
            up["err"] = repr(e)

    t.step("slow reader + slow upload + fast download")
    with h.RssSampler({"tunneld": edge.pid, "tunnel": cli.pid}) as rss:
        ths = [threading.Thread(target=f, daemon=True) for f in (slow_reader, slow_upload)]
        t_start = time.monotonic()
        for th in ths:
            th.start()
        time.sleep(2.0)
        r, got, fast = h.download_sha256(edge.port, "/bytes?n=%d&seed=7" % FAST_N, host,
                                         timeout=60)
        h.log("fast download beside the slow ones: %.2f s (%.0f MiB/s)"
              % (fast, FAST_N / MIB / fast))
        left = RUN - (time.monotonic() - t_start)
        if left > 0:
            time.sleep(left)
        stats = h.request(org.port, "GET", "/_stats", "127.0.0.1", timeout=5).json()
        elapsed = time.monotonic() - t_start
        stop.set()
        for th in ths:
            th.join(10)

    t.eq((r.status, r.body_len), (200, FAST_N), "fast download complete")
    t.eq(got, h.pattern_sha256(FAST_N, 7), "fast download exact")
    t.check(fast <= max(3 * base, base + 3.0),
            "fast download at full speed beside slow streams",
            "%.2f s vs %.2f s alone" % (fast, base))

    t.eq(slow["status"], 200, "slow download answered")
    t.check(slow["err"] is None, "slow download not cut", slow["err"])
    exp = RATE * (elapsed - 0.5)
    t.check(slow["read"] >= 0.5 * exp, "slow visitor kept receiving (%d bytes in %.1f s)"
            % (slow["read"], elapsed), "expected about %d" % exp)
    data = bytes(slow["data"])
    t.check(data == h.pattern_bytes(len(data), 6), "slow download bytes exact (%d)" % len(data))
    sent = stats["sent"].get("slow", 0)
    t.check(sent <= slow["read"] + len(data) + SLACK,
            "origin throttled by the slow reader: produced %.1f MiB for %.1f MiB read"
            % (sent / MIB, slow["read"] / MIB), "bound: read + %d MiB" % (SLACK // MIB))

    recv = stats["recv"].get("up", 0)
    t.check(up["err"] is None, "slow upload not cut", up["err"])
    t.check(recv > 0, "origin received upload bytes (%d)" % recv)
    t.check(up["sent"] <= recv + SLACK,
            "uploader throttled by the slow origin: sent %.1f MiB for %.1f MiB consumed"
            % (up["sent"] / MIB, recv / MIB), "bound: consumed + %d MiB" % (SLACK // MIB))

    if h.is_sanitized(edge.pid) or h.is_sanitized(cli.pid):
        LIMIT_KB *= 4
        h.log("AddressSanitizer build: RSS bound raised to %d MiB" % (LIMIT_KB // 1024))
    h.log("max RSS: tunneld %d KiB, tunnel %d KiB (%d samples)"
          % (rss.max["tunneld"], rss.max["tunnel"], rss.samples))
    t.check(rss.max["tunneld"] <= LIMIT_KB, "tunneld RSS <= %d MiB" % (LIMIT_KB // 1024),
            "%d KiB" % rss.max["tunneld"])
    t.check(rss.max["tunnel"] <= LIMIT_KB, "tunnel RSS <= %d MiB" % (LIMIT_KB // 1024),
            "%d KiB" % rss.max["tunnel"])

    r = h.request(edge.port, "GET", "/hello", host)
    t.eq(r.status, 200, "tunnel serves after the slow visitors left")
