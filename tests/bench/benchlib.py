"""Pieces of the comparison benchmark (compare.py) that know nothing about
the contenders: child processes started and stopped by PID, CPU and RSS of
process trees from /proc, and the wrk and curl runs with their parsers.

Rules kept here: every child is tracked by PID and stopped by PID (SIGTERM,
then SIGKILL), and gets PR_SET_PDEATHSIG so nothing outlives a killed run;
every external command has a time limit; only loopback addresses are used.
"""

import ctypes
import os
import re
import signal
import socket
import subprocess
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("# %s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def _pdeathsig():
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port(addr="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((addr, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_free(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_until(pred, timeout, interval=0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- /proc

def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def _children_map():
    """ppid -> [pid] for every process now."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(d))[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pids):
    """The given PIDs and all their descendants (sshd forks per connection)."""
    kids = _children_map()
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pids):
    """User + system CPU seconds of these PIDs and their descendants."""
    total = 0
    for p in tree(pids):
        try:
            f = _stat_fields(p)
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def rss_kib(pids):
    """Resident set size in KiB of these PIDs and their descendants."""
    return mem_kib(pids)[0]


def mem_kib(pids):
    """(RSS, anonymous RSS) in KiB of these PIDs and their descendants. RSS
    counts the shared libraries' resident pages too (several MiB of them for
    a program linked with OpenSSL); the anonymous part is the process's own."""
    rss = anon = 0
    for p in tree(pids):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Anonymous:"):
                        anon += int(line.split()[1])
        except OSError:
            pass
    return rss, anon


class PeakRss:
    """Samples the memory of some process trees every interval seconds in a
    thread; .peak[label] and .peak_anon[label] are the largest RSS and
    anonymous RSS sums seen (KiB)."""

    def __init__(self, groups, interval=0.05):
        self.groups = {k: v for k, v in groups.items() if v}
        self.peak = {k: 0 for k in self.groups}
        self.peak_anon = {k: 0 for k in self.groups}
        self.interval = interval
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            for k, pids in self.groups.items():
                rss, anon = mem_kib(pids)
                self.peak[k] = max(self.peak[k], rss)
                self.peak_anon[k] = max(self.peak_anon[k], anon)
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        self._th.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._th.join(5)


# ---------------------------------------------------------------- processes

class Procs:
    """Children of this run, stopped by PID in reverse start order."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.items = []

    def start(self, label, argv, env=None, cwd=None, stdin=subprocess.DEVNULL,
              stdout=None):
        err = open(os.path.join(self.tmp, label + ".log"), "ab")
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=stdin,
                             stdout=stdout if stdout is not None else err, stderr=err,
                             preexec_fn=_pdeathsig)
        err.close()
        self.items.append((label, p))
        return p

    def log_tail(self, label, n=20):
        try:
            with open(os.path.join(self.tmp, label + ".log"), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""

    def check_alive(self):
        for label, p in self.items:
            if p.poll() is not None:
                raise RuntimeError("%s (pid %d) exited with %s:\n%s"
                                   % (label, p.pid, p.returncode, self.log_tail(label)))

    def stop(self, p, timeout=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.items = [(lbl, q) for lbl, q in self.items if q is not p]

    def stop_all(self):
        for _, p in reversed(self.items):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.monotonic() + 10
        for _, p in self.items:
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.items = []


# ---------------------------------------------------------------- HTTP clients

def http_get_ok(addr, port, path, host, want_len, timeout=2.0):
    """One GET on a new connection; True if 200 and exactly want_len body bytes."""
    try:
        with socket.create_connection((addr, port), timeout) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % (path, host)).encode())
            data = b""
            while len(data) < want_len + 4096:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    head, _, body = data.partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 200") and len(body) == want_len


_UNIT_US = {"us": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6}


def _dur_us(text):
    m = re.match(r"^([0-9.]+)(us|ms|s|m)$", text)
    if not m:
        raise ValueError("unparsed duration %r" % text)
    return float(m.group(1)) * _UNIT_US[m.group(2)]


def parse_wrk(out):
    """req/s, p50 and p99 (microseconds), requests, and error counts from wrk --latency."""
    r = {"errors": 0, "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not m:
        raise ValueError("wrk printed no Requests/sec:\n" + out)
    r["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M)
        if not m:
            raise ValueError("wrk printed no %s%% latency:\n%s" % (pct, out))
        r["p" + pct] = _dur_us(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def wrk(url, conns, seconds, host=None, close=False, threads=1):
    argv = ["wrk", "-t%d" % min(threads, conns), "-c%d" % conns, "-d%ds" % seconds,
            "--latency", "--timeout", "5s"]
    if host:
        argv += ["-H", "Host: " + host]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError("wrk failed (%d): %s" % (out.returncode, out.stderr))
    return parse_wrk(out.stdout)


def curl_transfer(url, host=None, upload=None, timeout=600):
    """Download url to /dev/null, or upload the file `upload` to it with POST
    (Content-Length, no Expect). Returns (status, bytes moved, seconds)."""
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", str(timeout), "-w",
            "%{http_code} %{size_download} %{size_upload} %{time_total}"]
    if host:
        argv += ["-H", "Host: " + host]
    if upload:
        argv += ["-X", "POST", "-H", "Expect:", "-T", upload]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30)
    if out.returncode != 0:
        raise RuntimeError("curl %s failed (%d): %s" % (url, out.returncode, out.stderr))
    code, down, up, secs = out.stdout.split()
    return int(code), int(up if upload else down), float(secs)
