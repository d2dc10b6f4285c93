"""Server-sent events are delivered incrementally: each event reaches the
visitor soon after the origin flushes it, not all at the end."""

import harness as h

N = 6
INTERVAL = 0.4

with h.Test("sse", timeout=60) as t:
    edge = t.tunneld()
    org = t.origin()
    t.tunnel(edge, org.port, name="events")
    r, evs = h.sse_arrivals(edge.port, "/sse?n=%d&interval_ms=%d" % (N, INTERVAL * 1000),
                            edge.host("events"), N, timeout=20)
    t.eq((r.status, r.header("Content-Type")), (200, "text/event-stream"), "event-stream response")
    t.eq(len(evs), N, "all %d events arrived" % N)
    if len(evs) == N:
        arr = [a for a, _, _ in evs]
        h.log("arrivals: %s" % ", ".join("%.2f" % a for a in arr))
        t.check(arr[0] < 1.0, "first event within 1 s", arr[0])
        t.check(arr[-1] - arr[0] > (N - 1) * INTERVAL * 0.6, "events spread over time", arr)
        lags = []
        for _, wall, text in evs:
            sent = float(text.split("t=")[1].split()[0])
            lags.append(wall - sent)
        t.check(max(lags) < 0.5, "each event arrives within 0.5 s of being sent",
                ["%.3f" % x for x in lags])
