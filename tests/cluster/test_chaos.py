"""Chaos with nothing lost. Three edges (a fleet found through dnsmasq), twenty
tunnels (the real CLI, --server one DNS name for all three edges; spread
7/7/6 at the start), each with its own origin port (chaos_origin.py) that
serves pattern bodies of a requested size and checks uploads byte for byte,
hashing what it sends and receives. A wave is 200 concurrent streams of 0 B
to 100 MiB, paced to last 8-50 s: downloads (curl) with Content-Length,
chunked, or delimited by the end of the connection; uploads (curl) with
Content-Length or chunked; raw pipes after a 101 in both directions (Python).
Some go through the edge that holds their tunnel, most are forwarded through
another edge. During a wave an edge is killed with SIGKILL and restarted two
seconds later, twice (10 s and 22 s in, different edges).

Every stream must either complete byte-exact (status 200 or 101, the length
asked for, the client's SHA-256 equal to the one the origin recorded) or end
in an error the visitor sees: curl exit 18/52/55/56 or a reset (cut short),
curl exit 7 while its edge was down, or an error status from the edge
(502/503/504/404). Never a clean end after short data at either end, never a
byte that does not belong at its offset of its own stream (every stream's
bytes are seeded by its id and both ends compare them), never a stream that
hangs (curl's --max-time; every request that reached an origin must end
there too), never a request seen twice by an origin or at the wrong tunnel's
origin. Streams no kill touched (their visitor's edge stayed up and their
tunnel kept its session while they ran) must complete. GET /hello polls
every tunnel through every live edge the whole time (every 0.2 s while
recovering, else every second): a 200 must carry the right tunnel's body.
After each kill the test measures how long until 99% and 100% of the tunnels
are served again, through the edges alive (from the SIGKILL) and through all
three (from the restart). The figures are printed as RESULT lines.

    WARREN_BUILD=build /usr/bin/python3 tests/cluster/test_chaos.py    # CI: one wave, 2 kills
    WARREN_LONG=1 ... test_chaos.py   (or --long)                      # four waves, 8 kills
    --seed N   replays a plan (the plan's seed is printed)
"""

import argparse
import errno
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import cluster as c
from cluster import h
from chaos_origin import PatternCheck

ap = argparse.ArgumentParser()
ap.add_argument("--long", action="store_true", default=os.environ.get("WARREN_LONG") == "1")
ap.add_argument("--seed", type=int, default=None)
args = ap.parse_args()

MIB = 1024 * 1024
GIB = 1024 * MIB
NTUNNELS = 20
NSTREAMS = 200
MAX_SIZE = 100 * MIB
WAVES = 4 if args.long else 1
MIN_TOTAL = (3 if args.long else 2) * GIB     # per wave
DURATION = (10, 60) if args.long else (8, 50)  # seconds a stream is paced to take
MIN_RATE = 1024                                # bytes/s: even small streams last seconds
KILLS_AT = (10, 22)                            # seconds into a wave: SIGKILL, then restart
RESTART_AFTER = 2.0                            # seconds an edge stays dead
RECOVER_S = 30.0                               # every tunnel served again within (after restart)
CURL_MAX_TIME = 150                            # a stream that takes longer hangs
WAVE_S = CURL_MAX_TIME + 30
POLL_FAST, POLL_SLOW = 0.2, 1.0                # poll interval during recovery / otherwise
SEED = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "big")
CURL_ERRORS = {18: "partial", 52: "empty reply", 55: "send failed", 56: "recv failed"}
EDGE_STATUSES = (404, 502, 503, 504)

ORIGIN = os.path.join(c.HERE, "chaos_origin.py")
PDEATHSIG = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
OWN_BODY = "hello %s from %s's tunnel\n"


def fmt_mib(n):
    return "%.1f MiB" % (n / MIB)


class Clock:
    """Timestamps the CLIs' JSON events (the harness keeps them without a time)."""

    def __init__(self, clis):
        self.clis = clis
        self.seen = {name: 0 for name in clis}
        self.events = {name: [] for name in clis}  # name -> [(monotonic, event)]
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def scan(self):
        now = time.monotonic()
        with self.lock:
            for name, p in self.clis.items():
                evs = p.events
                while self.seen[name] < len(evs):
                    ev = evs[self.seen[name]]
                    self.seen[name] += 1
                    if ev.get("event") != "request":
                        self.events[name].append((now, ev))

    def run(self):
        while not self.stop.wait(0.05):
            self.scan()

    def between(self, name, kind, t0, t1):
        with self.lock:
            return [t for t, ev in self.events[name] if ev.get("event") == kind and t0 <= t <= t1]


class Poller:
    """Polls every tunnel through every edge that is up: one thread per tunnel,
    a round = one GET /hello through each edge. Records rounds for the
    recovery figures and counts any 200 with another tunnel's body."""

    def __init__(self, names, edges):
        self.names = names
        self.edges = edges          # k -> current ClusterEdge (replaced on restart)
        self.up = set(edges)        # ks that are up
        self.fast = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.rounds = {n: [] for n in names}  # (t0, t1, {k: status or error})
        self.secs = {}  # (name, t0) -> {k: seconds the GET took}
        self.wrong = []
        self.requests = 0
        self.ths = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in names]
        for th in self.ths:
            th.start()

    def one(self, name, e):
        try:
            r = h.request(c.PUBLIC_PORT, "GET", "/hello?t=%s" % name, e.host(name), timeout=3,
                          addr=e.addr)
        except (OSError, ValueError) as ex:
            return type(ex).__name__
        if r.status == 200 and r.text != OWN_BODY % (name, name):
            with self.lock:
                self.wrong.append((name, e.k, r.text[:200]))
            return "wrong body"
        return r.status

    def run(self, name):
        while not self.stop.is_set():
            with self.lock:
                ks = sorted(self.up)
            t0 = time.monotonic()
            res, secs = {}, {}
            for k in ks:
                a = time.monotonic()
                res[k] = self.one(name, self.edges[k])
                secs[k] = time.monotonic() - a
            with self.lock:
                self.rounds[name].append((t0, time.monotonic(), res))
                self.secs[(name, t0)] = secs
                self.requests += len(res)
            self.stop.wait(POLL_FAST if self.fast.is_set() else POLL_SLOW)

    def set_up(self, k, up):
        with self.lock:
            (self.up.add if up else self.up.discard)(k)

    def served_at(self, name, since, all_of=None):
        """End of the first round that started at or after `since` in which
        every edge polled (and, if given, every edge in all_of) answered 200."""
        with self.lock:
            rounds = list(self.rounds[name])
        for t0, t1, res in rounds:
            if t0 < since:
                continue
            if all_of is not None and not set(all_of) <= set(res):
                continue
            if res and all(v == 200 for v in res.values()):
                return t1
        return None

    def history(self, name, t0, t1):
        """What the rounds between t0 and t1 got, as "+0.40s e1:200 e2:502 ..."
        with repeats of the same answers folded."""
        with self.lock:
            rounds = [r for r in self.rounds[name] if r[1] >= t0 and r[0] <= t1]
            secs = dict(self.secs)
        out, last = [], None
        for r0, _, res in rounds:
            text = " ".join("e%d:%s" % kv for kv in sorted(res.items()))
            slow = ["e%d %.2fs" % (k, v) for k, v in sorted(secs[(name, r0)].items()) if v > 0.3]
            if text != last or slow:
                out.append("+%.2fs %s%s" % (r0 - t0, text, " (slow: %s)" % ", ".join(slow)
                                            if slow else ""))
                last = text
        return "; ".join(out)

    def all_served(self, since, all_of):
        return all(self.served_at(n, since, all_of) is not None for n in self.names)

    def close(self):
        self.stop.set()
        for th in self.ths:
            th.join(10)


class Stream:
    """One visitor stream: a curl process and a thread that feeds or reads it."""

    def __init__(self, wave, i, name, kind, te, n, seed, vk, owner, rate):
        self.sid = "w%d-s%03d" % (wave, i)
        self.name, self.kind, self.te, self.n, self.seed = name, kind, te, n, seed
        self.vk, self.owner, self.rate = vk, owner, rate
        self.path = "local" if vk == owner else "forwarded"
        self.rc = None
        self.code = None
        self.size_dl = self.size_ul = None
        self.err = ""
        self.chk = PatternCheck(seed)
        self.reply = None
        self.t0 = self.t1 = None
        self.p = None
        self.th = None
        self.outcome = None

    def argv(self, e):
        host = "%s.%s" % (self.name, c.DOMAIN)
        q = "sid=%s&t=%s&n=%d&seed=%d" % (self.sid, self.name, self.n, self.seed)
        argv = ["curl", "-sS", "--noproxy", "*", "--max-time", str(CURL_MAX_TIME),
                "--connect-timeout", "5", "--limit-rate", str(self.rate),
                "--resolve", "%s:%d:%s" % (host, c.PUBLIC_PORT, e.addr),
                "-o", "-", "-w", "%{stderr}\nCURL %{http_code} %{size_download} %{size_upload}\n"]
        if self.kind == "dl":
            # chunks of 1 byte (small bodies: at most 4096 chunks) or 4 KiB up to 96 KiB
            low = max(1, self.n // 4096) if self.n <= MIB else 4096
            chunk = low + (self.seed * 7919) % (96 * 1024 - low)
            url = "/dl?%s&te=%s&chunk=%d" % (q, self.te, chunk)
        else:
            argv += ["-X", "POST", "-T", "-", "-H", "Expect:"]
            if self.te == "cl":
                argv += ["-H", "Transfer-Encoding:", "-H", "Content-Length: %d" % self.n]
            url = "/ul?%s" % q
        return argv + ["http://%s:%d%s" % (host, c.PUBLIC_PORT, url)]

    def start(self, t, e, procs):
        self.errpath = t.path("curl-%s.stderr" % self.sid)
        err = open(self.errpath, "wb")
        self.t0 = time.monotonic()
        # setpriv: curl dies with this process (curl's own --max-time bounds it anyway)
        stdin = subprocess.PIPE if self.kind == "ul" else subprocess.DEVNULL
        self.p = subprocess.Popen(PDEATHSIG + self.argv(e), stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=err)
        err.close()
        procs.append(self.p)
        self.th = threading.Thread(target=self.pump, daemon=True)
        self.th.start()

    def pump(self):
        try:
            if self.kind == "ul":
                try:
                    for piece in h.pattern_chunks(self.n, self.seed, 256 * 1024):
                        self.p.stdin.write(piece)
                except (BrokenPipeError, ConnectionError, ValueError):
                    pass
                finally:
                    try:
                        self.p.stdin.close()
                    except OSError:
                        pass
                self.reply = self.p.stdout.read(1 << 20)
            else:
                while True:
                    d = self.p.stdout.read1(1 << 20)
                    if not d:
                        break
                    self.chk.feed(d)
            self.rc = self.p.wait()
        finally:
            self.t1 = time.monotonic()
        try:
            with open(self.errpath, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        m = re.search(r"^CURL (\d+) (\d+) (\d+)$", text, re.M)
        if m:
            self.code, self.size_dl, self.size_ul = (int(x) for x in m.groups())
        self.err = " ".join(l for l in text.splitlines() if l.startswith("curl:"))[:300]

    def describe(self):
        return ("%s %s %s %s n=%d via edge%d (owner edge%d, %s): rc=%r status=%r got=%r%s"
                % (self.sid, self.name, self.kind, self.te, self.n, self.vk, self.owner,
                   self.path, self.rc, self.code,
                   self.chk.n if self.kind in ("dl", "raw") else (self.reply or b"")[:160],
                   " " + self.err if self.err else ""))

    def edge_was_down(self, kills):
        return any(kl["k"] == self.vk and kl["at"] <= self.t1 and self.t0 <= kl["up"]
                   for kl in kills)

    def verdict(self, end_rec, kills):
        """What the visitor saw, checked against what the origin recorded."""
        if self.rc == 0 and self.code == 200:
            if self.kind == "dl":
                ok = (self.chk.ok and self.chk.n == self.n and self.size_dl == self.n and
                      end_rec is not None and end_rec["outcome"] == "complete" and
                      end_rec["sha256"] == self.chk.hexdigest())
            else:
                try:
                    rep = json.loads(self.reply)
                except ValueError:
                    rep = {}
                ok = (rep.get("length") == self.n and rep.get("tunnel") == self.name and
                      rep.get("sid") == self.sid and rep.get("prefix_ok") is True and
                      end_rec is not None and end_rec["outcome"] == "complete" and
                      end_rec["sha256"] == rep.get("sha256") and
                      rep.get("sha256") == h.pattern_sha256(self.n, self.seed))
            return "complete" if ok else "BAD: a clean end with wrong or short data"
        if self.kind == "dl" and self.code == 200 and not self.chk.ok:
            return "BAD: a byte of another stream (at %d)" % self.chk.bad_at
        if self.rc == 0 and self.code in EDGE_STATUSES:
            return "error status %d" % self.code
        if self.rc == 7 and self.edge_was_down(kills):
            return "refused: curl 7 (its edge was down)"
        if self.rc in CURL_ERRORS:
            return "cut: curl %d (%s)" % (self.rc, CURL_ERRORS[self.rc])
        if self.rc == 28:
            return "BAD: hung until curl's --max-time"
        return "BAD: unexpected end (curl %r, status %r)" % (self.rc, self.code)


class RawStream(Stream):
    """A raw pipe after a 101 (Upgrade: chaos-raw), driven from Python: "down"
    reads until the connection ends, "up" sends n bytes, half-closes and
    waits for the origin's "OK <sha256>". Paced like the curl streams."""

    def start(self, t, e, procs):
        self.t0 = time.monotonic()
        self.how = None  # eof, reset, refused, status, timeout
        self.th = threading.Thread(target=self.pump_raw, args=(e,), daemon=True)
        self.th.start()

    def pace(self, moved):
        ahead = moved / self.rate - (time.monotonic() - self.t0)
        if ahead > 0:
            time.sleep(min(ahead, 1.0))

    def pump_raw(self, e):
        deadline = self.t0 + CURL_MAX_TIME
        sock = None
        try:
            sock = socket.create_connection((e.addr, c.PUBLIC_PORT), timeout=5)
            sock.settimeout(30)
            q = "sid=%s&t=%s&n=%d&seed=%d&dir=%s" % (self.sid, self.name, self.n, self.seed,
                                                     self.te)
            sock.sendall(h.build_request("GET", "/raw?" + q, e.host(self.name),
                                         [("Connection", "Upgrade"), ("Upgrade", "chaos-raw")]))
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                d = sock.recv(65536)
                if not d:
                    self.how = "eof before a response"
                    return
                head += d
            head, _, rest = head.partition(b"\r\n\r\n")
            self.code = int(head.split(b" ")[1])
            if self.code != 101:
                self.how = "status"
                return
            if self.te == "down":
                self.chk.feed(rest)
                while time.monotonic() < deadline:
                    d = sock.recv(256 * 1024)
                    if not d:
                        self.how = "eof"
                        return
                    self.chk.feed(d)
                    self.pace(self.chk.n)
                self.how = "timeout"
            else:
                sent = 0
                for piece in h.pattern_chunks(self.n, self.seed, 64 * 1024):
                    sock.sendall(piece)
                    sent += len(piece)
                    self.pace(sent)
                    if time.monotonic() > deadline:
                        self.how = "timeout"
                        return
                sock.shutdown(socket.SHUT_WR)
                reply = rest
                while True:
                    d = sock.recv(4096)
                    if not d:
                        break
                    reply += d
                self.reply = reply
                self.how = "eof"
        except ConnectionRefusedError:
            self.how = "refused"
        except (ConnectionResetError, BrokenPipeError):
            self.how = "reset"
        except socket.timeout:
            self.how = "timeout"
        except OSError as ex:
            self.how = "reset" if ex.errno == errno.ENOTCONN else "error %s" % ex
        finally:
            if sock is not None:
                sock.close()
            self.t1 = time.monotonic()
            self.rc = self.how

    def verdict(self, end_rec, kills):
        if self.te == "down" and not self.chk.ok:
            return "BAD: a byte of another stream (at %d)" % self.chk.bad_at
        if self.how == "eof" and self.code == 101:
            if self.te == "down":
                ok = (self.chk.n == self.n and end_rec is not None and
                      end_rec["outcome"] == "complete" and
                      end_rec["sha256"] == self.chk.hexdigest())
                return "complete" if ok else "BAD: a clean end with short data"
            want = b"OK %s\n" % h.pattern_sha256(self.n, self.seed).encode()
            if self.reply == want and end_rec is not None and end_rec["outcome"] == "complete":
                return "complete"
            return "cut: no confirmation from the origin"
        if self.how == "reset":
            return "cut: reset"
        if self.how == "eof before a response":
            return "cut: empty reply"
        if self.how == "status" and self.code in EDGE_STATUSES:
            return "error status %d" % self.code
        if self.how == "refused" and self.edge_was_down(kills):
            return "refused: its edge was down"
        if self.how == "timeout":
            return "BAD: hung"
        return "BAD: unexpected end (%s, status %r)" % (self.how, self.code)


def plan(wave, rng, names, owners):
    """200 streams: fixed small edge cases, ten 100 MiB ones (one an upload),
    the rest log-uniform from 16 KiB (smaller ones would end before any kill:
    curl does not pace what fits in one buffer) to 64 MiB; topped up with
    100 MiB ones until the wave plans MIN_TOTAL."""
    sizes = [0, 1, 2, 1023, 32767, 32768, 32769, 65536, 262143, 262145, 1 * MIB]
    sizes += [MAX_SIZE] * 10
    while len(sizes) < NSTREAMS:
        sizes.append(int(math.exp(rng.uniform(math.log(16 * 1024), math.log(64 * MIB)))))
    while sum(sizes) < MIN_TOTAL:
        i = max((j for j in range(len(sizes)) if sizes[j] < MAX_SIZE), key=lambda j: sizes[j])
        sizes[i] = MAX_SIZE
    big = [i for i, s in enumerate(sizes) if s == MAX_SIZE]
    kinds = [rng.choice(("ul", "raw")) if rng.random() < 0.3 else "dl" for _ in sizes]
    for i in big:
        kinds[i] = "dl"
    kinds[big[0]] = "ul"
    order = list(range(NSTREAMS))
    rng.shuffle(order)
    streams = []
    for i, j in enumerate(order):
        name = names[i % len(names)]
        owner = owners[name]
        vk = [1, 2, 3][(owner - 1 + i // len(names)) % 3]
        kind = kinds[j]
        te = rng.choice({"dl": ("cl", "cl", "chunked", "close"), "ul": ("cl", "chunked"),
                         "raw": ("down", "up")}[kind])
        n = sizes[j]
        rate = max(MIN_RATE, int(n / rng.uniform(*DURATION)))
        cls = RawStream if kind == "raw" else Stream
        streams.append(cls(wave, i, name, kind, te, n, rng.randrange(1, 1 << 30), vk, owner,
                           rate))
    return streams


def read_records(path):
    recs = []
    try:
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):
                    recs.append(json.loads(line))
    except OSError:
        pass
    return recs


def owner_of(cli, addr_to_k):
    """The edge a CLI is connected to: its last "connecting to" line (debug log)."""
    last = None
    for line in cli.stderr_text().splitlines():
        m = re.search(r"connecting to \S+ \(([^)]+)\)", line)
        if m:
            last = m.group(1)
    return addr_to_k.get(last)


with c.Cluster("chaos-long" if args.long else "chaos", timeout=WAVES * (WAVE_S + 40) + 60) as t:
    h.log("plan seed %d (replay with --seed %d); %d wave(s)" % (SEED, SEED, WAVES))
    rng = random.Random(SEED)
    fleet = t.fleet(3)
    edges = {e.k: e for e in fleet}
    addr_to_k = {e.addr: e.k for e in fleet}

    names = ["chaos-%02d" % i for i in range(NTUNNELS)]
    records = t.path("origin-records.jsonl")
    org = t.spawn("chaos-origin", [h.PY, ORIGIN, "--records", records] +
                  sum((["--tunnel", n] for n in names), []))
    line = org.wait_line(lambda l: l.startswith('{"ports"'), 10)
    t.require(line is not None and org.alive(), "origin listening, one port per tunnel",
              org.stderr_text()[-2000:])
    ports = json.loads(line)["ports"]

    # spread the tunnels: while edge k's turn, the name the CLIs dial points at it alone
    server = "ws://%s:%d" % (c.EDGES, c.PUBLIC_PORT)
    clis = {}
    owners = {}
    for k in (1, 2, 3):
        t.dns_set(c.EDGES, [edges[k].addr])
        mine = [n for i, n in enumerate(names) if i % 3 == k - 1]
        for n in mine:
            clis[n] = t.tunnel(server, ports[n], name=n, wait_online=False,
                               args=("--log-level", "debug"))
        for n in mine:
            _, ev = clis[n].wait_event("online", 15)
            t.require(ev is not None, "%s online on edge %d" % (n, k),
                      clis[n].stderr_text()[-1500:])
            owners[n] = k
    t.dns_set(c.EDGES, [e.addr for e in fleet])
    t.eq([t.metric(edges[k], "warren_tunnels") for k in (1, 2, 3)],
         [len([n for n in names if owners[n] == k]) for k in (1, 2, 3)],
         "the tunnels are spread over the three edges")

    clock = Clock(clis)
    poller = Poller(names, edges)
    procs = []

    def kill_leftovers():
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    t.on_teardown(kill_leftovers)
    t.on_teardown(poller.close)
    t.on_teardown(clock.stop.set)

    kills = []  # one dict per kill: edge k, times at (SIGKILL), restart, up (listening), wave
    all_streams = []
    nkill = 0

    for wave in range(WAVES):
        t.step("wave %d: 200 streams" % (wave + 1))
        if wave > 0:
            owners = {n: owner_of(clis[n], addr_to_k) or owners[n] for n in names}
        streams = plan(wave + 1, rng, names, owners)
        total = sum(s.n for s in streams)
        h.log("wave %d: %s in %d streams (%d uploads, %s; %d raw pipes after a 101, %s), "
              "%d forwarded, largest %s"
              % (wave + 1, fmt_mib(total), len(streams), sum(s.kind == "ul" for s in streams),
                 fmt_mib(sum(s.n for s in streams if s.kind == "ul")),
                 sum(s.kind == "raw" for s in streams),
                 fmt_mib(sum(s.n for s in streams if s.kind == "raw")),
                 sum(s.path == "forwarded" for s in streams), fmt_mib(max(s.n for s in streams))))
        w0 = time.monotonic()
        for s in streams:
            s.start(t, edges[s.vk], procs)
        all_streams += streams
        h.log("wave %d: 200 curl processes started in %.2f s" % (wave + 1, time.monotonic() - w0))

        for at in KILLS_AT:
            while time.monotonic() < w0 + at:
                time.sleep(0.05)
            k = [1, 2, 3][nkill % 3]
            nkill += 1
            live = sum(1 for s in streams if s.th.is_alive())
            poller.fast.set()
            clock.scan()
            kt = time.monotonic()
            poller.set_up(k, False)
            edges[k].send(signal.SIGKILL)
            rc = edges[k].wait_exit(5)
            t.eq(rc, -signal.SIGKILL, "wave %d: edge %d killed (SIGKILL) with %d streams running"
                 % (wave + 1, k, live))
            h.log("SIGKILL edge %d at +%.1f s into wave %d, %d streams running"
                  % (k, kt - w0, wave + 1, live))
            time.sleep(RESTART_AFTER)
            rt = time.monotonic()
            edges[k] = t.edge(k, wait=True)
            up_at = time.monotonic()
            poller.edges[k] = edges[k]
            poller.set_up(k, True)
            h.log("edge %d restarted %.2f s after the kill (listening after %.2f s)"
                  % (k, rt - kt, time.monotonic() - rt))
            ok = h.wait_until(lambda: poller.all_served(rt, (1, 2, 3)), RECOVER_S + 5, 0.1)
            rec_t = time.monotonic()
            kills.append({"k": k, "at": kt, "restart": rt, "up": up_at, "wave": wave + 1,
                          "ok": ok, "live": live})
            t.check(ok, "wave %d: every tunnel is served through all three edges again after "
                    "edge %d restarted" % (wave + 1, k),
                    [n for n in names if poller.served_at(n, rt, (1, 2, 3)) is None])
            poller.fast.clear()
            h.log("all tunnels served again %.2f s after the restart" % (rec_t - rt))

        # every stream ends (curl's --max-time bounds them)
        end = w0 + CURL_MAX_TIME + 15
        for s in streams:
            s.th.join(max(0.1, end - time.monotonic()))
        hung = [s for s in streams if s.th.is_alive()]
        t.check(not hung, "wave %d: every stream ended" % (wave + 1),
                [s.describe() for s in hung[:5]])
        h.log("wave %d: streams ended %.1f s after they started" % (wave + 1,
                                                                    time.monotonic() - w0))
        # and every request that reached an origin ended there too
        sids = {s.sid for s in streams}

        def open_at_origin():
            recs = [r for r in read_records(records) if r["sid"] in sids]
            started = {r["sid"] for r in recs if r["ev"] == "start"}
            ended = {r["sid"] for r in recs if r["ev"] == "end"}
            return started - ended
        left = set() if h.wait_until(lambda: not open_at_origin(), 20, 0.2) else open_at_origin()
        t.check(not left, "wave %d: every request that reached an origin ended there" % (wave + 1),
                sorted(left)[:10])

    clock.scan()
    poller.close()
    clock.stop.set()

    # ---------------------------------------------------------------- verdicts
    recs = read_records(records)
    starts, ends = {}, {}
    for r in recs:
        (starts if r["ev"] == "start" else ends).setdefault(r["sid"], []).append(r)
    by_sid = {s.sid: s for s in all_streams}
    t.eq(sorted(sid for sid, v in starts.items() if len(v) > 1), [],
         "no request reached an origin twice")
    t.eq(sorted(sid for sid in starts if sid not in by_sid), [],
         "the origins saw no request the test did not send")
    misrouted = [r for r in recs if r["ev"] == "end" and (
        r["tunnel"] != by_sid[r["sid"]].name or r["t"] != r["tunnel"] or
        r["xfh"] != "%s.%s:%d" % (r["tunnel"], c.DOMAIN, c.PUBLIC_PORT))]
    t.eq(misrouted[:5], [], "every request reached its own tunnel's origin")
    t.eq([r["sid"] for r in recs if r["ev"] == "end" and not r["prefix_ok"]], [],
         "every upload byte an origin received was the right byte of its own stream")
    short_complete = [r for r in recs if r["ev"] == "end" and (r["outcome"] == "short" or
                      r["outcome"] == "complete" and r["bytes"] != r["n"])]
    t.eq(short_complete[:5], [], "no origin saw a clean end after short data, nor a complete "
         "request or response of the wrong length")

    bad = []
    outcome_count = {}
    for s in all_streams:
        s.outcome = s.verdict((ends.get(s.sid) or [None])[-1], kills)
        key = s.outcome if s.outcome.startswith("BAD") else s.outcome.split(":")[0].split(" (")[0]
        outcome_count[key] = outcome_count.get(key, 0) + 1
        if s.outcome.startswith("BAD"):
            bad.append("%s -> %s" % (s.describe(), s.outcome))
    t.eq(bad[:10], [], "every stream completed byte-exact or ended in an error the visitor saw "
         "(%d streams)" % len(all_streams))

    # streams that no kill touched (their visitor edge stayed up and their
    # tunnel kept its session while they ran) must complete
    for i, kl in enumerate(kills):  # a CLI's reconnect is the kill's doing until the next kill
        kl["until"] = min(kl["at"] + 10, kills[i + 1]["at"] if i + 1 < len(kills) else 1e18)

    def disturbed(s):
        for kl in kills:
            if not (s.t0 <= kl["at"] <= s.t1 + 0.5):
                continue
            if s.vk == kl["k"]:
                return True
            if clock.between(s.name, "reconnecting", kl["at"], kl["until"]):
                return True
        return False
    spared = [s for s in all_streams if not disturbed(s)]
    t.eq([s.describe() for s in spared if s.outcome != "complete"][:10], [],
         "the %d streams no kill touched all completed" % len(spared))

    # both ends of a failed stream: the origin's view
    both = {"dl": {}, "ul": {}, "raw": {}}
    for s in all_streams:
        if s.outcome == "complete":
            continue
        r = (ends.get(s.sid) or [None])[-1]
        view = "never reached" if r is None else r["outcome"]
        both[s.kind][view] = both[s.kind].get(view, 0) + 1

    t.check(not poller.wrong, "every poll answered 200 carried its own tunnel's body "
            "(%d polls)" % poller.requests, poller.wrong[:5])
    for k, e in edges.items():
        t.check(e.alive(), "edge %d is running at the end" % k)
    t.eq([n for n in names if not clis[n].alive()], [], "every CLI is still running")

    # ---------------------------------------------------------------- figures
    exact = sum(s.n for s in all_streams if s.outcome == "complete")
    total = sum(s.n for s in all_streams)

    def moved(s):  # bytes that reached the receiving end, cut streams included
        if s.kind == "dl" or (s.kind == "raw" and s.te == "down"):
            return s.chk.n
        r = (ends.get(s.sid) or [None])[-1]
        return r["bytes"] if r else 0
    h.log("RESULT chaos: %d waves, %d streams, %s planned, %s moved, %s of it in streams that "
          "completed byte-exact; %d kills"
          % (WAVES, len(all_streams), fmt_mib(total), fmt_mib(sum(moved(s) for s in all_streams)),
             fmt_mib(exact), len(kills)))
    h.log("RESULT chaos outcomes: %s" % ", ".join("%s %d" % kv for kv in
                                                  sorted(outcome_count.items())))
    for path in ("local", "forwarded"):
        ss = [s for s in all_streams if s.path == path]
        h.log("RESULT chaos %s streams: %d, %d completed" %
              (path, len(ss), sum(s.outcome == "complete" for s in ss)))
    h.log("RESULT chaos failed streams, the origin's side: downloads %s; uploads %s; raw %s "
          "(a download the origin finished writing before the cut is 'complete' there)"
          % (both["dl"], both["ul"], both["raw"]))
    h.log("RESULT chaos spared streams (no kill on their path): %d, %d completed"
          % (len(spared), sum(s.outcome == "complete" for s in spared)))
    all_kill, all_restart = [], []
    for kl in kills:
        k, kt, rt = kl["k"], kl["at"], kl["restart"]
        moved_clis = [n for n in names if clock.between(n, "reconnecting", kt, kl["until"])]
        back = []
        for n in moved_clis:
            ons = clock.between(n, "online", kt, kl["until"] + 30)
            back.append(ons[0] - kt if ons else float("inf"))
        from_kill = sorted((poller.served_at(n, kt) or float("inf")) - kt for n in names)
        from_restart = sorted((poller.served_at(n, rt, (1, 2, 3)) or float("inf")) - rt
                              for n in names)
        all_kill += from_kill
        all_restart += from_restart
        cut = sum(1 for s in all_streams if s.outcome != "complete" and
                  s.t0 <= kt <= s.t1 + 0.5 and (s.vk == k or s.name in moved_clis))
        slow = max(names, key=lambda n: (poller.served_at(n, rt, (1, 2, 3)) or 1e18))
        h.log("kill %d: the last tunnel served again, %s: %s"
              % (kills.index(kl) + 1, slow, poller.history(slow, kt, (poller.served_at(
                  slow, rt, (1, 2, 3)) or kt + 60))))
        h.log("RESULT chaos kill %d (wave %d, edge %d, %d streams running, %d cut): %d CLIs moved, "
              "online again after max %.2f s; tunnels served through the live edges "
              "99%% %.2f s / 100%% %.2f s after the SIGKILL; through all three edges "
              "99%% %.2f s / 100%% %.2f s after the restart (%.1f s after the kill; the new "
              "edge listened after %.2f s)"
              % (kills.index(kl) + 1, kl["wave"], k, kl["live"], cut, len(moved_clis),
                 max(back) if back else 0.0, c.percentile(from_kill, 99),
                 from_kill[-1], c.percentile(from_restart, 99), from_restart[-1], rt - kt,
                 kl["up"] - rt))
    h.log("RESULT chaos recovery over %d kills x %d tunnels: through the live edges after the "
          "SIGKILL p50 %.2f / p99 %.2f / max %.2f s; through all three after the restart "
          "p50 %.2f / p99 %.2f / max %.2f s"
          % (len(kills), len(names), c.percentile(all_kill, 50), c.percentile(all_kill, 99),
             max(all_kill), c.percentile(all_restart, 50), c.percentile(all_restart, 99),
             max(all_restart)))
    h.log("RESULT chaos polls: %d GETs through the edges during the run (99%% of %d tunnels "
          "is all of them, nearest rank)" % (poller.requests, len(names)))
