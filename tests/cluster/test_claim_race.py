"""Two clients claiming one fresh name on two different edges at the same
moment: exactly one wins, every time.

- 200 rounds with the real CLI: both processes are forked first and held on a
  pipe, then released together, so they exec within microseconds of each
  other. Each round must end with exactly one CLI online and the other refused
  with name_in_use (exit 3): never two owners, never a retry. A visitor on the
  third edge then reaches the winner; the winner is stopped before the next
  round, and every round uses a fresh name. The pair of edges rotates (1-2,
  2-3, 3-1).
- 200 rounds where the two HELLOs are sent over already-open control
  WebSockets within microseconds of each other (Python), so the two edges'
  claims really cross on the peer links and the tie-break rule decides:
  exactly one WELCOME and one name_in_use per round.
Prints how often each edge won and how long rounds took."""

import argparse
import asyncio
import ctypes
import json
import os
import selectors
import signal
import time

import websockets

import cluster as c
from cluster import h

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=200)
args = ap.parse_args()

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class Racer:
    """A CLI forked now and exec'd when the go pipe is written."""

    def __init__(self, edge, name, port, env, go_r, err_fd):
        self.edge = edge
        argv = [c.TUNNEL, "--port", str(port), "--server", edge.ws_url, "--subdomain", name,
                "--json"]
        out_r, out_w = os.pipe()
        envb = {k.encode(): v.encode() for k, v in env.items()}
        pid = os.fork()
        if pid == 0:  # child: only dup2, read and exec
            try:
                _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out_w, 1)
                os.dup2(err_fd, 2)
                os.read(go_r, 1)
                os.execve(argv[0], argv, envb)
            finally:
                os._exit(127)
        os.close(out_w)
        os.set_blocking(out_r, False)
        self.pid = pid
        self.fd = out_r
        self.buf = b""
        self.events = []
        self.online = None
        self.rc = None

    def feed(self):
        try:
            d = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        self.buf += d
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            self.events.append(ev)
            if ev.get("event") == "online" and self.online is None:
                self.online = time.monotonic()

    def poll(self):
        if self.rc is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.rc = os.waitstatus_to_exitcode(st)
        return self.rc

    def decided(self):
        return self.online is not None or self.poll() is not None

    def stop(self, timeout=5):
        if self.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            end = time.monotonic() + timeout
            while self.poll() is None and time.monotonic() < end:
                time.sleep(0.002)
            if self.rc is None:
                os.kill(self.pid, signal.SIGKILL)
                self.rc = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        os.close(self.fd)
        return self.rc



async def hello_round(ea, eb, name):
    """Open a control WebSocket to each edge, then send both HELLOs at once.
    Returns the two answers (dicts) in order."""
    async def conn(e):
        return await websockets.connect("ws://%s/_tunnel" % c.hostport(e.addr, c.PUBLIC_PORT),
                                        subprotocols=["warren-tunnel"], compression=None,
                                        open_timeout=5, close_timeout=2)
    wa, wb = await asyncio.gather(conn(ea), conn(eb))
    try:
        hello = json.dumps({"type": "hello", "version": 1, "kind": "http", "name": name,
                            "client": "claim-race"})
        await asyncio.gather(wa.send(hello), wb.send(hello))
        ans = await asyncio.gather(asyncio.wait_for(wa.recv(), 5), asyncio.wait_for(wb.recv(), 5))
        return [json.loads(a) for a in ans]
    finally:
        await asyncio.gather(wa.close(), wb.close())


with c.Cluster("claim-race", timeout=170) as t:
    # hundreds of handshakes a second from one address: past --handshake-rate
    edges = t.fleet(3, args=["--handshake-rate", "0"])
    org = t.origin()
    live = []

    def kill_live():
        for r in live:
            if r.poll() is None:
                os.kill(r.pid, signal.SIGKILL)
                os.waitpid(r.pid, 0)

    t.on_teardown(kill_live)
    err_fd = os.open(t.path("racers.stderr"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    t.on_teardown(lambda: os.close(err_fd))
    env = t.child_env()

    t.step("%d rounds of two CLIs" % args.rounds)
    bad = []
    wins = {}
    durations = []
    t_all = time.monotonic()
    i = -1
    for i in range(args.rounds):
        a_edge, b_edge = edges[i % 3], edges[(i + 1) % 3]
        third = edges[(i + 2) % 3]
        name = "race%03d-%s" % (i, h.rand_name("")[:5])
        os.write(err_fd, ("---- round %d %s\n" % (i, name)).encode())
        go_r, go_w = os.pipe()
        ra = Racer(a_edge, name, org.port, env, go_r, err_fd)
        rb = Racer(b_edge, name, org.port, env, go_r, err_fd)
        live[:] = [ra, rb]
        t0 = time.monotonic()
        os.write(go_w, b"go")
        os.close(go_r)
        os.close(go_w)
        sel = selectors.DefaultSelector()
        for r in (ra, rb):
            sel.register(r.fd, selectors.EVENT_READ, r)
        end = time.monotonic() + 10
        while time.monotonic() < end and not (ra.decided() and rb.decided()):
            for key, _ in sel.select(0.01):
                key.data.feed()
        sel.close()
        winners = [r for r in (ra, rb) if r.online is not None]
        losers = [r for r in (ra, rb) if r.online is None and r.rc == 3]
        retried = [r for r in (ra, rb) if any(e.get("event") == "reconnecting"
                                              for e in r.events)]
        ok = len(winners) == 1 and len(losers) == 1 and not retried
        if ok:
            w = winners[0]
            wins[w.edge.k] = wins.get(w.edge.k, 0) + 1
            durations.append(w.online - t0)
            r = t.get(third, "/hello", name, timeout=5)
            ok = r.status == 200
        if not ok:
            bad.append("round %d (%s; edges %d vs %d): %s" % (
                i, name, a_edge.k, b_edge.k,
                "; ".join("edge%d rc=%r events=%s" % (r.edge.k, r.rc, r.events[-3:])
                          for r in (ra, rb))))
            h.log(bad[-1])
        for r in (ra, rb):
            rc = r.stop()
            if r.online is not None and rc != 0:
                bad.append("round %d: the winner on edge %d exited %r on SIGTERM"
                           % (i, r.edge.k, rc))
        live[:] = []
        if len(bad) > 10:
            break
    total = time.monotonic() - t_all
    n = i + 1
    t.check(not bad, "%d CLI rounds: exactly one online and one name_in_use (exit 3) each" % n,
            "%d bad rounds, first: %s" % (len(bad), bad[:3]))
    t.eq(n, args.rounds, "all CLI rounds ran")
    h.log("RESULT claim race, CLIs: %d rounds in %.1f s (%.0f ms per round); wins by edge %s; "
          "winner online %.1f ms (p50) / %.1f ms (p99) after the release"
          % (n, total, total / max(n, 1) * 1000, dict(sorted(wins.items())),
             c.percentile(durations, 50) * 1000, c.percentile(durations, 99) * 1000))

    t.step("%d rounds of two HELLOs sent at once" % args.rounds)
    bad2 = []
    wins2 = {}
    t1 = time.monotonic()
    j = -1
    for j in range(args.rounds):
        ea, eb = edges[j % 3], edges[(j + 1) % 3]
        name = "hello%03d-%s" % (j, h.rand_name("")[:5])
        try:
            answers = asyncio.run(hello_round(ea, eb, name))
        except Exception as ex:  # noqa: BLE001
            answers = [repr(ex)]
        kinds = sorted((a.get("type"), a.get("code")) if isinstance(a, dict) else (a, None)
                       for a in answers)
        if kinds != [("error", "name_in_use"), ("welcome", None)]:
            bad2.append("round %d (%s; edges %d vs %d): %s" % (j, name, ea.k, eb.k, answers))
            h.log(bad2[-1])
            if len(bad2) > 10:
                break
        else:
            k = ea.k if answers[0].get("type") == "welcome" else eb.k
            wins2[k] = wins2.get(k, 0) + 1
    total2 = time.monotonic() - t1
    n2 = j + 1
    t.check(not bad2, "%d HELLO rounds: exactly one welcome and one name_in_use each" % n2,
            "%d bad rounds, first: %s" % (len(bad2), bad2[:3]))
    h.log("RESULT claim race, simultaneous HELLOs: %d rounds in %.1f s; wins by edge %s"
          % (n2, total2, dict(sorted(wins2.items()))))

    refused = sum(t.metric(e, 'warren_claims_total{result="refused"}', 0) for e in edges)
    t.check(refused >= n + n2 - len(bad) - len(bad2),
            "the edges counted a refused claim per round "
            "(warren_claims_total{result=\"refused\"} = %d)" % refused)
    h.log("both phases took %.0f s" % (total + total2))
    c.check_no_sanitizer_report(t, t.path("racers.stderr"), "the racing CLIs")
