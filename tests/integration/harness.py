"""Integration test harness: runs the real tunneld / tunnel binaries and the
origin (origin.py) on loopback and talks to them with raw sockets and curl.

One scenario per file:

    import harness as h
    with h.Test("basic", timeout=60) as t:
        edge = t.tunneld()
        org = t.origin()
        cli = t.tunnel(edge, org.port, name="app")
        r = h.request(edge.port, "GET", "/hello", edge.host("app"))
        t.eq(r.status, 200, "GET /hello through the tunnel")

Rules kept here:
  - every child is started by this process, tracked by PID and stopped only by
    PID (SIGTERM, then SIGKILL) at teardown; children also get PR_SET_PDEATHSIG
    so that nothing outlives a killed test;
  - every wait has a deadline, and the whole test has one (SIGALRM);
  - only 127.0.0.1 / ::1 are used;
  - child output goes to files in a per-test temp dir, printed on failure;
  - children run at the log level $WARREN_LOG_LEVEL (default: tunneld info,
    tunnel warn) unless the test picks one;
  - every secret a test issues (the edge and fleet secrets, tunnel keys,
    reconnect tokens) is recorded, and teardown fails the test if any log
    of any child holds one (naming the kind of secret, never its value);
  - exit status: 0 pass, 1 fail, 77 skip (binaries not built).
"""

import base64
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("WARREN_SRC") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("WARREN_BUILD") or os.path.join(SRC, "build")
TUNNELD = os.path.join(BUILD, "server", "tunneld")
TUNNEL = os.path.join(BUILD, "cli", "tunnel")
PY = "/usr/bin/python3"
ORIGIN = os.path.join(HERE, "origin.py")
DOMAIN = "warren.test"
SKIP = 77

sys.path.insert(0, HERE)
import origin as _origin  # noqa: E402  (pattern helpers)

pattern_chunks = _origin.pattern_chunks
pattern_bytes = _origin.pattern_bytes
pattern_sha256 = _origin.pattern_sha256

_T0 = time.monotonic()


def log(msg):
    print("[%7.3f] %s" % (time.monotonic() - _T0, msg), flush=True)


class TestTimeout(Exception):
    pass


class Abort(Exception):
    """Raised by Test.require: stop the scenario, the failure is already recorded."""


def wait_until(pred, timeout, interval=0.05):
    """Poll pred() until it returns a true value or timeout seconds pass.
    Returns the value (or the last false one)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- ports, /proc

def free_port(family=socket.AF_INET):
    addr = "127.0.0.1" if family == socket.AF_INET else "::1"
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((addr, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def ipv6_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def listening_ports():
    """Set of (addr_hex, port) in LISTEN state from /proc/net/tcp{,6}."""
    out = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A":
                        a, p = parts[1].split(":")
                        out.add((a, int(p, 16)))
        except OSError:
            pass
    return out


def is_listening(port):
    return any(p == port for _, p in listening_ports())


def rss_kb(pid):
    """Resident set size of pid in KiB, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid):
    """Open file descriptors of pid, or None if it is gone."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def cpu_seconds(pid):
    """User + system CPU seconds pid has used (0.0 if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs; nan when empty."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def metrics(port):
    """The admin endpoint's /metrics on port as {'name{labels}': value}."""
    r = request(port, "GET", "/metrics", "127.0.0.1:%d" % port, timeout=10)
    out = {}
    for line in r.text.splitlines():
        m = re.match(r'^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$', line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def is_sanitized(pid):
    """True if pid runs with AddressSanitizer (its RSS is not comparable)."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except OSError:
        return False


class RssSampler:
    """Samples the RSS of some PIDs every interval seconds in a thread."""

    def __init__(self, pids, interval=0.1):
        self.pids = dict(pids)  # label -> pid
        self.max = {k: 0 for k in self.pids}
        self.samples = 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)
        self.interval = interval

    def _run(self):
        while not self._stop.is_set():
            for k, pid in self.pids.items():
                v = rss_kb(pid)
                if v is not None and v > self.max[k]:
                    self.max[k] = v
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._th.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._th.join(5)


def _pdeathsig():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ---------------------------------------------------------------- secrets in logs

# Flags and environment variables whose value is a secret, and its kind.
SECRET_FLAGS = {"--key": "tunnel key"}
SECRET_FILE_FLAGS = {"--secret-file": "edge secret", "--fleet-secret-file": "fleet secret"}
SECRET_ENV = {"TUNNELD_SECRET": "edge secret", "TUNNELD_FLEET_SECRET": "fleet secret",
              "TUNNEL_KEY": "tunnel key"}
LOG_LEVEL = os.environ.get("WARREN_LOG_LEVEL") or None  # None: each binary's default
_B64URL_RUN = re.compile(r"[A-Za-z0-9_-]{60,}")


def secret_values(kind, value):
    """[(kind, text)] to look for in logs for one secret: a tunnel key also by
    its secret part alone (its "wk_<id>" prefix is not secret)."""
    value = (value or "").strip()
    if len(value) < 8:
        return []
    out = [(kind, value)]
    if kind == "tunnel key" and value.startswith("wk_") and value.count("_") >= 2:
        rest = value.split("_", 2)[2]
        if len(rest) >= 8:
            out.append((kind, rest))
    return out


def _unb64u(text):
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None


def find_reconnect_tokens(text, now=None):
    """Reconnect tokens in text, recognised by their layout (docs/protocol.md:
    base64url of version 1 | u64 expiry | u8 n | name | 16-byte nonce |
    32-byte MAC, the expiry within a few days of now, a valid name), so a
    token is found without knowing the secret that signed it."""
    now = time.time() if now is None else now
    found = []
    for m in _B64URL_RUN.finditer(text):
        run = m.group(0)
        for i in range(len(run) - 59):
            if run[i:i + 2] != "AQ":
                continue
            more = _unb64u(run[i:i + 16])  # 12 bytes: version, expiry, n, name...
            if not more or len(more) < 10:
                continue
            n = more[9]
            total = 1 + 8 + 1 + n + 16 + 32
            chars = (total * 4 + 2) // 3
            if n < 1 or n > 63 or i + chars > len(run):
                continue
            raw = _unb64u(run[i:i + chars])
            if not raw or len(raw) != total:
                continue
            expiry = int.from_bytes(raw[1:9], "big")
            name = raw[10:10 + n]
            if abs(expiry - now) < 4 * 86400 and re.fullmatch(rb"[a-z0-9-]+", name):
                found.append(run[i:i + chars])
                break
    return found


def scan_for_secrets(paths, secrets, tokens=True):
    """[(kind, file name)] for every recorded secret (secrets: {text: kind})
    found in the files, and every reconnect token (tokens=True)."""
    hits = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        name = os.path.basename(path)
        for value, kind in secrets.items():
            if value in text:
                hits.append((kind, name))
        if tokens and find_reconnect_tokens(text):
            hits.append(("reconnect token", name))
    return sorted(set(hits))


# ---------------------------------------------------------------- processes

class Proc:
    """A child process started by the harness. stdout is read line by line in
    a thread (JSON lines are parsed into .events); stderr goes to a file."""

    def __init__(self, test, label, argv, env=None, stdin=None, cwd=None):
        self.test = test
        self.label = label
        self.argv = argv
        self.out_path = os.path.join(test.dir, label + ".stdout")
        self.err_path = os.path.join(test.dir, label + ".stderr")
        self.lines = []
        self.events = []
        self.cond = threading.Condition()
        self.signalled = False  # we sent a signal: a signal exit is expected
        self.checked_exit = False
        self.prints_secret = argv[:3] == [TUNNELD, "keys", "add"]  # its stdout is the new key
        test.note_secrets(argv, env)
        self._err = open(self.err_path, "wb")
        main = threading.current_thread() is threading.main_thread()
        self.p = subprocess.Popen(
            argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self._err, env=env, cwd=cwd,
            preexec_fn=_pdeathsig if main else None)
        self.pid = self.p.pid
        self._out = open(self.out_path, "wb")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        log("started %s pid %d: %s" % (label, self.pid, " ".join(argv)))

    def _read(self):
        for raw in self.p.stdout:
            self._out.write(raw)
            self._out.flush()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            ev = None
            if line.startswith("{"):
                try:
                    ev = json.loads(line)
                except ValueError:
                    ev = None
            with self.cond:
                self.lines.append(line)
                if isinstance(ev, dict):
                    self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    # -- state
    def alive(self):
        return self.p.poll() is None

    @property
    def rc(self):
        return self.p.poll()

    def stdout_text(self):
        with self.cond:
            return "\n".join(self.lines)

    def stderr_text(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def output_text(self):
        return self.stdout_text() + "\n" + self.stderr_text()

    # -- waiting
    def wait_event(self, name, timeout, start=0, pred=None):
        """First event with "event" == name at index >= start (and pred(ev)
        true). Returns (index, event) or (None, None) on timeout or exit."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.events)):
                    ev = self.events[i]
                    if ev.get("event") == name and (pred is None or pred(ev)):
                        return i, ev
                left = end - time.monotonic()
                if left <= 0:
                    return None, None
                if not self._reader.is_alive() and self.p.poll() is not None:
                    return None, None
                self.cond.wait(min(left, 0.2))

    def wait_line(self, pred, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = end - time.monotonic()
                if left <= 0 or (not self._reader.is_alive() and self.p.poll() is not None):
                    return None
                self.cond.wait(min(left, 0.2))

    def wait_exit(self, timeout):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(2)
        return rc

    def send(self, sig):
        if self.p.poll() is None:
            self.signalled = True
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=8):
        """Signal and wait; SIGKILL after timeout. Returns the exit status
        (negative: killed by that signal), and None if SIGKILL was needed."""
        if self.p.poll() is not None:
            return self.p.returncode
        self.send(sig)
        rc = self.wait_exit(timeout)
        if rc is None:
            log("%s pid %d did not exit %.0fs after signal %d: SIGKILL"
                % (self.label, self.pid, timeout, sig))
            os.kill(self.pid, signal.SIGKILL)
            self.p.wait(5)
            return None
        return rc

    def close_files(self):
        for f in (self._err, self._out):
            try:
                f.close()
            except OSError:
                pass


class Edge(Proc):
    """A tunneld."""

    def __init__(self, test, label, argv, env, ports, domain, drain):
        self.ports = ports
        self.port = ports[0] if ports else None
        self.domain = domain
        self.drain = drain
        super().__init__(test, label, argv, env)

    def host(self, name, port=None):
        return "%s.%s:%d" % (name, self.domain, port or self.port)

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d" % self.port

    def curl_args(self, name, path, port=None):
        port = port or self.port
        h = "%s.%s" % (name, self.domain)
        return ["--resolve", "%s:%d:127.0.0.1" % (h, port), "http://%s:%d%s" % (h, port, path)]


# ---------------------------------------------------------------- raw HTTP

class Response:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []
        self.body = b""
        self.body_len = 0
        self.raw_head = b""
        self.interim = []

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %s, %d body bytes>" % (self.status, self.reason, self.body_len)


class HttpConn:
    """A raw client connection: send exact bytes, read responses."""

    def __init__(self, port, host="127.0.0.1", timeout=10, rcvbuf=None):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self, n=65536):
        if self.eof:
            return False
        d = self.sock.recv(n)
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _line(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if not self._fill():
                raise ConnectionError("connection closed while reading a line (%d bytes buffered)"
                                      % len(self.buf))

    def _take(self, n, sink):
        while n > 0:
            if not self.buf and not self._fill(max(65536, min(n, 1 << 20))):
                raise ConnectionError("connection closed with %d body bytes missing" % n)
            k = min(n, len(self.buf))
            sink(bytes(self.buf[:k]))
            del self.buf[:k]
            n -= k

    def read_head(self):
        """Read one response head (skipping 1xx other than 101). Returns a
        Response without body."""
        r = Response()
        while True:
            raw = b""
            line = self._line()
            raw += line
            parts = line.decode("iso-8859-1").rstrip("\r\n").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError("bad status line %r" % line)
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = []
            while True:
                h = self._line()
                raw += h
                if h in (b"\r\n", b"\n"):
                    break
                k, _, v = h.decode("iso-8859-1").partition(":")
                headers.append((k.strip(), v.strip()))
            if 100 <= status < 200 and status != 101:
                r.interim.append((status, headers))
                continue
            r.version, r.status, r.reason, r.headers, r.raw_head = parts[0], status, reason, headers, raw
            return r

    def read_body(self, r, method="GET", sink=None):
        """Read r's body; bytes go to sink(bytes) if given, else into r.body."""
        chunks = []
        count = [0]

        def put(b):
            count[0] += len(b)
            if sink:
                sink(b)
            else:
                chunks.append(b)

        te = (r.header("Transfer-Encoding") or "").lower()
        cl = r.header("Content-Length")
        if method == "HEAD" or r.status in (101, 204, 304) or 100 <= r.status < 200:
            pass
        elif "chunked" in te:
            while True:
                line = self._line()
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self._line() not in (b"\r\n", b"\n"):
                        pass
                    break
                self._take(size, put)
                self._line()
        elif cl is not None:
            self._take(int(cl), put)
        else:
            while True:
                if self.buf:
                    put(bytes(self.buf))
                    self.buf.clear()
                if not self._fill(1 << 20):
                    break
        r.body = b"".join(chunks)
        r.body_len = count[0]
        return r

    def read_response(self, method="GET", sink=None):
        r = self.read_head()
        return self.read_body(r, method, sink)

    def closed_by_peer(self, timeout=3):
        """True if the peer closes (EOF or reset) within timeout, with no more data."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if d:
            self.buf += d
            return False
        self.eof = True
        return True


def build_request(method, path, host, headers=(), body=None, version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    lines.extend("%s: %s" % (k, v) for k, v in headers)
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                    for k, _ in headers):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1") + (body or b"")


def request(port, method, path, host, headers=(), body=None, timeout=15, sink=None,
            addr="127.0.0.1"):
    """One request on a fresh connection; returns the Response."""
    with HttpConn(port, addr, timeout) as c:
        c.send(build_request(method, path, host, headers, body))
        return c.read_response(method, sink)


def raw_exchange(port, data, timeout=10, addr="127.0.0.1"):
    """Send exact bytes, read one response. Returns (Response or None, closed,
    error text). closed: the server closed the connection after answering."""
    with HttpConn(port, addr, timeout) as c:
        try:
            c.send(data)
        except OSError as e:
            return None, True, "send: %s" % e
        try:
            r = c.read_response()
        except (OSError, ValueError) as e:
            return None, c.eof, "read: %s" % e
        return r, c.closed_by_peer(3), ""


def download_sha256(port, path, host, timeout=60, rcvbuf=None, rate=None, unpace=None):
    """GET path, hash the body as it streams. rate: bytes/s to read at (paced),
    until the threading.Event unpace (if given) is set. Returns (Response,
    hexdigest, seconds); on a cut connection raises ConnectionError."""
    h = hashlib.sha256()
    t0 = time.monotonic()
    with HttpConn(port, "127.0.0.1", timeout, rcvbuf=rcvbuf) as c:
        c.send(build_request("GET", path, host))
        r = c.read_head()
        if rate:
            got = [0]

            def sink(b):
                h.update(b)
                got[0] += len(b)
                ahead = got[0] / rate - (time.monotonic() - t0)
                if ahead > 0 and not (unpace and unpace.is_set()):
                    if unpace:
                        unpace.wait(ahead)
                    else:
                        time.sleep(ahead)
            # read in small pieces so the pacing is real
            c._fill = _small_fill(c, 16384)
            c.read_body(r, "GET", sink)
        else:
            c.read_body(r, "GET", h.update)
    return r, h.hexdigest(), time.monotonic() - t0


def sse_arrivals(port, path, host, n, timeout=20):
    """GET an event stream and note when each of n events arrives. Returns
    (Response head, [(monotonic s since request, wall clock, event text)])."""
    out = []
    t0 = time.monotonic()
    with HttpConn(port, "127.0.0.1", timeout) as c:
        c.send(build_request("GET", path, host))
        r = c.read_head()
        raw = bytearray()
        while len(out) < n:
            if c.buf:
                raw += c.buf  # chunk framing stays in: events are found by text
                c.buf.clear()
            while len(out) < n:
                i = raw.find(b"\n\n")
                if i < 0:
                    break
                ev = bytes(raw[:i]).decode("utf-8", "replace")
                del raw[:i + 2]
                if "data: " in ev:
                    out.append((time.monotonic() - t0, time.time(), ev[ev.index("data: "):]))
            if len(out) < n and not c._fill():
                break
    return r, out


def _small_fill(c, n):
    def fill(_ignored=None):
        if c.eof:
            return False
        d = c.sock.recv(n)
        if not d:
            c.eof = True
            return False
        c.buf += d
        return True
    return fill


def upload_chunked_sha256(port, path, host, n, seed, chunk=64 * 1024, timeout=60,
                          method="POST"):
    """Stream n pattern bytes as a chunked body; returns (Response, seconds)."""
    t0 = time.monotonic()
    with HttpConn(port, "127.0.0.1", timeout) as c:
        c.send(build_request(method, path, host, [("Transfer-Encoding", "chunked"),
                                                  ("Content-Type", "application/octet-stream")]))
        for piece in pattern_chunks(n, seed, chunk):
            c.send(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
        c.send(b"0\r\n\r\n")
        r = c.read_response(method)
    return r, time.monotonic() - t0


# ---------------------------------------------------------------- TCP proxy

class TcpProxy:
    """Loopback TCP forwarder that a test can cut: cut() resets every
    connection through it; refuse=True closes new ones at once."""

    def __init__(self, target_port, port=None):
        self.target = target_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port or 0))
        self.port = self.lsock.getsockname()[1]
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.refuse = False
        self.accepted = 0
        self.conns = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._accept, daemon=True)
        self._th.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                a, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.refuse:
                a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                a.close()
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                a.close()
                continue
            b.settimeout(None)
            with self.lock:
                self.accepted += 1
                self.conns.append((a, b))
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(d)
        except OSError:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Reset every connection currently open through the proxy."""
        with self.lock:
            conns, self.conns = self.conns, []
        for a, b in conns:
            for s in (a, b):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass
        return len(conns)

    def close(self):
        self._stop.set()
        self.cut()
        try:
            self.lsock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the test

class _Part:
    def __init__(self, test, msg):
        self.test, self.msg = test, msg

    def __enter__(self):
        self.test.step(self.msg)
        return self

    def __exit__(self, et, ev, tb):
        if et is None or issubclass(et, (Abort, TestTimeout, SystemExit, KeyboardInterrupt)):
            return False
        self.test.check(False, "%s: no exception" % self.msg, "%s: %s" % (et.__name__, ev))
        traceback.print_exception(et, ev, tb)
        return True


class Test:
    def __init__(self, name, timeout=60, need_binaries=True):
        self.name = name
        self.timeout = timeout
        self.need_binaries = need_binaries
        self.procs = []
        self.closers = []
        self.secrets = {}  # secret text -> kind (what it is, for the report)
        self.checks = 0
        self.failures = []
        self.t0 = time.monotonic()
        self.dir = None
        self._n = {}

    # -- context
    def __enter__(self):
        if self.need_binaries:
            missing = [p for p in (TUNNELD, TUNNEL) if not os.access(p, os.X_OK)]
            if missing:
                print("SKIP %s: not built: %s" % (self.name, ", ".join(missing)), flush=True)
                sys.exit(SKIP)
        self.dir = tempfile.mkdtemp(prefix="warren-it-%s-" % self.name)
        log("== %s (temp dir %s, build %s)" % (self.name, self.dir, BUILD))

        def on_alarm(sig, frm):
            raise TestTimeout("scenario exceeded its %d s deadline" % self.timeout)

        def on_term(sig, frm):
            raise TestTimeout("scenario got signal %d" % sig)

        signal.signal(signal.SIGALRM, on_alarm)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.alarm(self.timeout)
        return self

    def __exit__(self, et, ev, tb):
        signal.alarm(0)
        if et is not None and et is not Abort and not issubclass(et, SystemExit):
            self.failures.append("exception: %s: %s" % (et.__name__, ev))
            print("".join(traceback.format_exception(et, ev, tb)), flush=True)
        try:
            self.teardown()
        except Exception as e:  # noqa: BLE001
            self.failures.append("teardown: %r" % e)
            traceback.print_exc()
        self.report()
        sys.exit(1 if self.failures else 0)

    # -- assertions
    def check(self, cond, what, detail=""):
        self.checks += 1
        if cond:
            log("ok   %s" % what)
        else:
            msg = what + (": " + str(detail) if detail != "" else "")
            log("FAIL %s" % msg)
            self.failures.append(msg)
        return bool(cond)

    def eq(self, got, want, what):
        return self.check(got == want, what, "expected %r, got %r" % (want, got))

    def require(self, cond, what, detail=""):
        if not self.check(cond, what, detail):
            raise Abort()

    def step(self, msg):
        log("-- " + msg)

    def part(self, msg):
        """`with t.part("name"):` a step whose unexpected exception (a timeout
        on a socket, a refused connection...) is recorded as a failure and
        does not stop the rest of the scenario."""
        return _Part(self, msg)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _label(self, base):
        n = self._n.get(base, 0)
        self._n[base] = n + 1
        return base if n == 0 else "%s-%d" % (base, n)

    # -- environment for children
    @staticmethod
    def child_env(extra=None, keep_tunnel_env=False):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TUNNELD_") and (keep_tunnel_env or not k.startswith("TUNNEL_"))}
        # AddressSanitizer keeps freed memory in quarantine (256 MiB by
        # default), which would swamp the RSS bounds the tests check.
        asan = env.get("ASAN_OPTIONS", "")
        if "quarantine_size_mb" not in asan:
            env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
        if extra:
            env.update(extra)
        return env

    # -- children
    def spawn(self, label, argv, env=None, stdin=None):
        p = Proc(self, self._label(label), argv, env if env is not None else self.child_env(), stdin)
        self.procs.append(p)
        return p

    def origin(self, ws=False, wait=True):
        port = free_port()
        argv = [PY, ORIGIN, "--port", str(port)]
        label = "origin-ws" if ws else "origin"
        if ws:
            argv.append("--ws")
        else:
            argv += ["--log", self.path(self._label("origin-requests") + ".log")]
        p = self.spawn(label, argv)
        p.port = port
        if wait:
            self.require(wait_until(lambda: is_listening(port) or not p.alive(), 10)
                         and p.alive(), "%s listening on %d" % (label, port), p.stderr_text())
        return p

    def origin_count(self, org):
        r = request(org.port, "GET", "/_count", "127.0.0.1:%d" % org.port, timeout=5)
        return r.json()["count"]

    def secret_file(self, name="secret", kind=None):
        path = self.path(name)
        value = os.urandom(32).hex()
        with open(path, "w") as f:
            f.write(value + "\n")
        os.chmod(path, 0o600)
        self.add_secret(kind or ("fleet secret" if "fleet" in name else "edge secret"), value)
        return path

    # -- secrets: recorded so that teardown can check no log holds one
    def add_secret(self, kind, value):
        """Record a secret this test issued (a key, a token, a secret text)."""
        for k, v in secret_values(kind, value):
            self.secrets.setdefault(v, k)

    def note_secrets(self, argv, env):
        """Record the secrets a child is given by flag, file or environment."""
        argv = [str(a) for a in argv]
        for i, a in enumerate(argv):
            flag, eq, val = a.partition("=")
            if not eq:
                val = argv[i + 1] if i + 1 < len(argv) else ""
            if flag in SECRET_FLAGS:
                self.add_secret(SECRET_FLAGS[flag], val)
            elif flag in SECRET_FILE_FLAGS and val and os.path.isfile(val):
                try:
                    with open(val, "rb") as f:
                        self.add_secret(SECRET_FILE_FLAGS[flag],
                                        f.read().decode("utf-8", "replace").strip())
                except OSError:
                    pass
        for k, kind in SECRET_ENV.items():
            if env and env.get(k):
                self.add_secret(kind, env[k])

    def log_files(self):
        """Every log a child of this test wrote (not the stdout of `tunneld keys
        add`, which is where a new key is given to its owner)."""
        paths = []
        for p in self.procs:
            paths.append(p.err_path)
            if not p.prints_secret:
                paths.append(p.out_path)
        if self.dir:
            paths += [os.path.join(self.dir, f) for f in sorted(os.listdir(self.dir))
                      if f.endswith(".log")]
        return paths

    def check_secrets(self, what="logs"):
        """Fail if any log holds a recorded secret or a reconnect token."""
        paths = self.log_files()
        hits = scan_for_secrets(paths, self.secrets)
        for kind, name in hits:
            self.check(False, "no %s in %s" % (kind, name), "a %s was logged" % kind)
        if not hits:
            self.check(True, "%s hold none of the %d secret texts this test issued, nor a "
                       "reconnect token (%d files)" % (what, len(self.secrets), len(paths)))
        return not hits

    def tunneld(self, args=(), env=None, listen=None, ports=None, domain=DOMAIN, wait=True,
                drain=3, log_level=None, secret_file=None, label="tunneld", check_start=True):
        """Start tunneld. listen: list of ADDR:PORT strings (default one free
        127.0.0.1 port). ports: the ports to wait for (default those in listen)."""
        if listen is None:
            listen = ["127.0.0.1:%d" % free_port()]
        if ports is None:
            ports = [int(x.rsplit(":", 1)[1]) for x in listen]
        argv = [TUNNELD]
        if domain is not None:
            argv += ["--domain", domain]
        for l in listen:
            argv += ["--listen", l]
        if drain is not None:
            argv += ["--drain-timeout", str(drain)]
        log_level = log_level or LOG_LEVEL or "info"
        if log_level:
            argv += ["--log-level", log_level]
        if secret_file:
            argv += ["--secret-file", secret_file]
        # the admin endpoint's default port would collide between parallel
        # tests: off unless the test asks for it (flags win over this one)
        if not any(str(a).startswith("--admin-listen") for a in args) and \
                not (env or {}).get("TUNNELD_ADMIN_LISTEN"):
            argv += ["--admin-listen", "off"]
        argv += list(args)
        e = Edge(self, self._label(label), argv, self.child_env(env), ports, domain, drain)
        self.procs.append(e)
        if wait:
            ok = wait_until(lambda: all(is_listening(p) for p in ports) or not e.alive(), 10)
            ok = ok and e.alive()
            if check_start:
                self.require(ok, "tunneld listening on %s" % ",".join(map(str, ports)),
                             "rc=%r\n%s" % (e.rc, e.stderr_text()[-3000:]))
        return e

    def tunnel(self, server, local_port, name=None, key=None, json_out=True, args=(), env=None,
               wait_online=True, timeout=15, label="tunnel"):
        """Start the CLI. server: an Edge or a ws:// URL (None: no --server)."""
        argv = [TUNNEL, "--port", str(local_port)]
        if server is not None:
            argv += ["--server", server.ws_url if isinstance(server, Edge) else server]
        if name:
            argv += ["--subdomain", name]
        if key:
            argv += ["--key", key]
        if json_out:
            argv.append("--json")
        if LOG_LEVEL:
            argv += ["--log-level", LOG_LEVEL]
        argv += list(args)
        c = self.spawn(label, argv, self.child_env(env))
        c.name = name
        c.online = None
        if wait_online:
            _, ev = c.wait_event("online", timeout)
            self.require(ev is not None, "%s online%s" % (c.label, " as " + name if name else ""),
                         "rc=%r stdout=%r stderr=%r" % (c.rc, c.stdout_text()[-2000:],
                                                        c.stderr_text()[-2000:]))
            c.online = ev
            c.name = ev.get("name", name)
        return c

    def run(self, label, argv, env=None, timeout=10, stdin=None):
        """Run a short-lived command to completion (SIGKILL after timeout).
        Returns (exit status or None if it had to be killed, stdout, stderr)."""
        p = self.spawn(label, argv, self.child_env(env), stdin)
        rc = p.wait_exit(timeout)
        if rc is None:
            log("%s did not finish in %ss" % (p.label, timeout))
            p.stop(signal.SIGKILL, 5)
        p.checked_exit = True
        if p.prints_secret and rc == 0:
            self.add_secret("tunnel key", p.stdout_text().strip())
        return rc, p.stdout_text(), p.stderr_text()

    def on_teardown(self, fn):
        self.closers.append(fn)

    # -- teardown and report
    def teardown(self):
        for fn in reversed(self.closers):
            try:
                fn()
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        # CLIs first, then edges, then the rest
        def order(p):
            return 0 if p.argv[0] == TUNNEL else 1 if p.argv[0] == TUNNELD else 2
        for p in sorted(self.procs, key=order):
            binary = p.argv[0] in (TUNNEL, TUNNELD)
            was_alive = p.alive()
            if not was_alive and binary and p.rc is not None and p.rc < 0 and not p.signalled:
                self.check(False, "%s (pid %d) was not killed by a signal" % (p.label, p.pid),
                           "it died with signal %d" % -p.rc)
            if was_alive:
                tmo = (p.drain or 0) + 6 if isinstance(p, Edge) else 8
                rc = p.stop(signal.SIGTERM, tmo)
                if binary and not p.checked_exit:
                    self.check(rc == 0, "%s exits 0 on SIGTERM at teardown" % p.label,
                               "exit status %r" % rc)
        for p in self.procs:
            p._reader.join(2)
            p.close_files()
            if p.argv[0] in (TUNNEL, TUNNELD):
                err = p.stderr_text()
                for pat in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                    if pat in err:
                        self.check(False, "%s stderr has no sanitizer report" % p.label, pat)
        if self.procs:
            self.check_secrets("the logs of every child")

    def report(self):
        dt = time.monotonic() - self.t0
        if self.failures:
            print("\n==== logs of %s ====" % self.name)
            for p in self.procs:
                for path in (p.err_path, p.out_path):
                    try:
                        with open(path, "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    if not data:
                        continue
                    lines = data.decode("utf-8", "replace").splitlines()
                    print("---- %s (%s, %d lines, last 80) ----"
                          % (os.path.basename(path), p.pid, len(lines)))
                    print("\n".join(lines[-80:]))
            print("==== %s: FAIL (%d of %d checks failed, %.1f s); files kept in %s"
                  % (self.name, len(self.failures), self.checks, dt, self.dir))
            for f in self.failures:
                print("  - " + f)
        else:
            print("==== %s: PASS (%d checks, %.1f s)" % (self.name, self.checks, dt))
            if self.dir and not os.environ.get("WARREN_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)
        sys.stdout.flush()


# ---------------------------------------------------------------- curl

def curl(args, timeout=60, input=None, stdout=subprocess.PIPE):
    """Run curl (never more than timeout seconds). Returns CompletedProcess
    with bytes stdout/stderr."""
    argv = ["curl", "-sS", "--max-time", str(int(timeout)), "--noproxy", "*"] + list(args)
    log("curl " + " ".join(args))
    return subprocess.run(argv, input=input, stdout=stdout, stderr=subprocess.PIPE,
                          timeout=timeout + 10)


def rand_name(prefix="t"):
    return "%s%s" % (prefix, "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                     for _ in range(8)))
