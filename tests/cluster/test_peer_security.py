"""The peer port refuses what is not an authenticated peer, and a stream is
never forwarded twice.

A Python client dials edge 1's peer port, reads its challenge nonce, and
answers with a peer_hello whose MAC (built from the fleet secret file as
tunneld derives it) covers that nonce: it gets a peer_welcome whose MAC checks
out, the positive control. Refused, each closing the connection without a
welcome and counted in warren_peer_auth_failures_total (exactly): a bad MAC,
the captured valid hello replayed byte for byte on a new connection (its MAC
covers the old challenge), the same to edge 2, a valid MAC with a timestamp a
minute old, and a hello made with another fleet secret. A frame
before the handshake and a plain HTTP request are dropped without an answer.

On the authenticated link: a stream OPEN for a tunnel on edge 1 with hops=1
is served (GET /hello comes back through it, the positive control); hops=2 and
hops=0 get RST `loop` and count in warren_loops_refused_total; a name edge 1
does not have gets RST `not_here`.

Visitor level: a visitor on edge 2 for a name whose owner just went away
(its cached route now points at an edge that no longer has it) gets a 502
at once, not a second forward; after the owning edge is killed, a visitor
gets a quick answer (never a hang) and a 404 within a few seconds.
"""

import json
import signal
import struct
import time

import cluster as c
from cluster import h

with c.Cluster("peer-security", timeout=90) as t:
    e1, e2 = t.fleet(2)
    org = t.origin()
    cli = t.tunnel(e1.ws_url, org.port, name="demo")
    with open(t.fleet_secret, "rb") as f:
        key = c.fleet_key(f.read())

    def failures():
        return t.metric(e1, "warren_peer_auth_failures_total")

    def log_has(text):
        return any(text in l for l in e1.stderr_text().splitlines())

    base = failures()
    t.eq(base, 0, "no authentication failures yet")

    t.step("a valid hello (positive control)")
    link = c.PeerConn(e1)
    hello, nonce = c.peer_hello(key, link.challenge(), "pytest")
    captured = c.frame(c.F_CTL, 0, hello)
    link.send(captured)
    ftype, sid, payload = link.read_frame()
    t.eq((ftype, sid), (c.F_CTL, 0), "edge 1 answers with a control frame")
    w = json.loads(payload)
    t.eq(w.get("type"), "peer_welcome", "the answer is a peer_welcome")
    want = c.peer_mac(key, "peer_welcome", w.get("instance", ""), w.get("ts", 0),
                      w.get("nonce", ""), nonce)
    t.eq(w.get("mac"), c.b64u(want), "the welcome's MAC covers our nonce and checks out")
    t.eq(w.get("instance"), "edge1", "the welcome names edge 1")
    link.seal(key, nonce, link.challenge())
    t.eq(failures(), base, "a valid hello is not counted as a failure")

    refused = 0

    def refused_hello(what, wire, log_text):
        """wire: the exact bytes sent (a length-prefixed CTL frame), or a
        function of the connection's challenge nonce giving them."""
        global refused
        with t.part(what):
            p = c.PeerConn(e1)
            p.send(wire(p.challenge()) if callable(wire) else wire)
            t.check(p.closed_without_answer(4), "%s: closed without a welcome" % what,
                    p.buf[:200])
            p.close()
            refused += 1
            t.check(h.wait_until(lambda: failures() == base + refused, 3),
                    "%s: warren_peer_auth_failures_total is %d" % (what, base + refused),
                    failures())
            if log_text:
                t.check(h.wait_until(lambda: log_has(log_text), 2),
                        "%s: edge 1 logs \"%s\"" % (what, log_text))

    def forged(ch):
        bad = json.loads(c.peer_hello(key, ch, "forger")[0])
        bad["mac"] = c.b64u(bytes(32))
        return c.frame(c.F_CTL, 0, json.dumps(bad).encode())

    refused_hello("forged hello (bad MAC)", forged, "bad MAC")
    # the captured hello's MAC covers the challenge of its own connection
    refused_hello("replayed hello", captured, "bad MAC")

    with t.part("the captured hello replayed to another edge"):
        # the same bytes, within the 30 s window, to edge 2: the hello must be
        # bound to the edge it was meant for, or a captured one opens a link
        # to every other edge
        p = c.PeerConn(e2)
        p.challenge()
        p.send(captured)
        t.check(p.closed_without_answer(4),
                "edge 2 refuses a hello that was sent to edge 1 (no welcome)",
                "edge 2 answered %r" % p.buf[:160])
        p.close()
    refused_hello("hello with a minute-old timestamp",
                  lambda ch: c.frame(c.F_CTL, 0, c.peer_hello(
                      key, ch, "late", ts=int(time.time() * 1000) - 60000)[0]), "stale")
    refused_hello("hello made with another fleet secret",
                  lambda ch: c.frame(c.F_CTL, 0, c.peer_hello(
                      c.fleet_key(b"x" * 40), ch, "stranger")[0]), "bad MAC")

    with t.part("a frame before the handshake"):
        p = c.PeerConn(e1)
        p.send(c.frame(c.F_OPEN, 1, c.open_payload(name="demo", hops=1)))
        t.check(p.closed_without_answer(4), "an OPEN before the hello: closed, no answer")
        p.close()
    with t.part("public traffic on the peer port"):
        p = c.PeerConn(e1)
        p.send(h.build_request("GET", "/hello", "demo.%s:%d" % (c.DOMAIN, c.PUBLIC_PORT)))
        t.check(p.closed_without_answer(4) and b"HTTP" not in p.buf,
                "an HTTP request on the peer port is dropped without any HTTP answer", p.buf[:100])
        p.close()
    t.eq(t.get(e1, "/hello", "demo").status, 200, "edge 1 still serves visitors")

    t.step("streams on the authenticated link")
    loops0 = t.metric(e1, "warren_loops_refused_total")
    got = {}
    data = b""
    req = h.build_request("GET", "/hello", "demo.%s:%d" % (c.DOMAIN, c.PUBLIC_PORT))
    link.send(c.frame(c.F_OPEN, 1, c.open_payload("127.0.0.1:4444", "demo", 1)) +
              c.frame(c.F_DATA, 1, req))
    link.send(c.frame(c.F_OPEN, 3, c.open_payload("127.0.0.1:4445", "demo", 2)))
    link.send(c.frame(c.F_OPEN, 5, c.open_payload("127.0.0.1:4446", "demo", None)))
    link.send(c.frame(c.F_OPEN, 7, c.open_payload("127.0.0.1:4447", "nosuchname", 1)))
    end = time.monotonic() + 10
    try:
        while time.monotonic() < end and (len(got) < 3 or b"hello from origin" not in data):
            ftype, sid, payload = link.read_frame()
            if ftype == c.F_RST:
                got[sid] = c.RST_NAMES.get(struct.unpack(">H", payload[:2])[0], payload[:2])
            elif ftype == c.F_DATA and sid == 1:
                data += payload
    except (OSError, EOFError) as ex:
        t.check(False, "the link stays up", repr(ex))
    t.check(data.startswith(b"HTTP/1.1 200") and b"hello from origin" in data,
            "hops=1 for a tunnel on edge 1: served (the positive control)", data[:200])
    t.eq(got.get(3), "loop", "hops=2: RST loop")
    t.eq(got.get(5), "loop", "no hop count: RST loop")
    t.eq(got.get(7), "not_here", "a name edge 1 does not have: RST not_here")
    t.check(1 not in got, "the served stream was not reset", got)
    t.eq(t.metric(e1, "warren_loops_refused_total") - loops0, 2,
         "warren_loops_refused_total counts the two looping streams")
    link.close()

    t.step("after the handshake every record is sealed")

    def sealed_link():
        p = c.PeerConn(e1)
        hello, n = c.peer_hello(key, p.challenge(), "pytest")
        p.send(c.frame(c.F_CTL, 0, hello))
        t.check(json.loads(p.read_frame()[2]).get("type") == "peer_welcome", "welcome")
        p.seal(key, n, p.challenge())
        return p

    for what, tamper in (("a plain (unsealed) frame", "plain"),
                         ("a sealed record sent twice (replay)", "replay"),
                         ("a sealed record with one bit flipped", "flip")):
        with t.part(what):
            f0 = failures()
            p = sealed_link()
            frame = c.frame(c.F_CTL, 0, b'{"type":"lookup","id":1,"name":"demo"}')
            if tamper == "plain":
                p.sock.sendall(frame)
            else:
                from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
                ct = bytearray(ChaCha20Poly1305(p._seal[0]).encrypt(p._nonce(0), frame[4:], None))
                if tamper == "flip":
                    ct[7] ^= 1
                rec = struct.pack(">I", len(ct)) + bytes(ct)
                p.sock.sendall(rec * (2 if tamper == "replay" else 1))
            answered = []
            try:
                while True:
                    answered.append(json.loads(p.read_frame()[2]).get("type"))
            except (EOFError, OSError, ValueError, Exception):
                pass
            if tamper == "replay":  # the first copy is fine; its answer may beat the close
                t.check(answered in ([], ["lookup_reply"]),
                        "%s: at most the first copy is answered, then the link is closed" % what,
                        answered)
            else:
                t.eq(answered, [], "%s: no answer, the link is closed" % what)
            t.check(h.wait_until(lambda: failures() > f0, 3),
                    "%s: counted as an authentication failure" % what, failures())
            p.close()

    t.step("visitor level: a stale route ends in 502 after one hop")
    gone = t.tunnel(e1.ws_url, org.port, name="gone")
    t.eq(t.get(e2, "/hello", "gone").status, 200, "edge 2 forwards to edge 1 (and caches it)")
    gone.stop()
    gone.checked_exit = True
    r, secs, err = t.timed_get(e2, "/hello", "gone", timeout=10)
    t.check(r is not None and r.status == 502 and secs < 1.0,
            "the owner went away: a visitor on edge 2 gets 502 at once",
            "%s in %.3f s %s" % (r and r.status, secs, err))
    h.log("502 for the vanished owner in %.1f ms: %s" % (secs * 1000, r.text.strip() if r else err))
    fw0 = t.metric(e1, "warren_forwards_total")
    r2, secs2, err2 = t.timed_get(e2, "/hello", "gone", timeout=10)
    t.check(r2 is not None and r2.status == 502 and secs2 < 1.0,
            "asked again: still 502 (the name is reserved for its owner), quickly",
            "%s in %.3f s %s" % (r2 and r2.status, secs2, err2))
    t.eq(t.metric(e1, "warren_forwards_total"), fw0, "edge 1 bridged nothing for it")

    t.step("visitor level: the owning edge is killed")
    t.eq(t.get(e2, "/hello", "demo").status, 200, "edge 2 reaches demo on edge 1")
    e1.send(signal.SIGKILL)
    e1.wait_exit(5)
    t0 = time.monotonic()
    answers = []
    while time.monotonic() - t0 < 6:
        r, secs, err = t.timed_get(e2, "/hello", "demo", timeout=5)
        answers.append((r.status if r else err, round(secs, 3)))
        if r is not None and r.status == 404:
            break
        time.sleep(0.05)
    h.log("answers on edge 2 after the kill (status, seconds): %s" % answers)
    t.check(all(isinstance(s, int) and s in (404, 502, 503) and d < 1.5 for s, d in answers),
            "every answer came quickly and was 404, 502 or 503", answers)
    t.check(answers and answers[-1][0] == 404 and time.monotonic() - t0 < 6,
            "404 within a few seconds of the kill", answers)
