"""Cluster test harness: a fleet of tunneld edges in a private network
namespace, with dnsmasq as its DNS. Builds on tests/integration/harness.py
(processes, checks, raw HTTP client, report), imported, not copied.

One scenario per file:

    import cluster as c
    with c.Cluster("forward", timeout=120) as t:
        e1, e2, e3 = t.fleet(3)
        org = t.origin()
        t.tunnel(e1.ws_url, org.port, name="app")
        r = t.get(e2, "/hello", "app")
        t.eq(r.status, 200, "a visitor on edge 2 reaches the tunnel on edge 1")

How a scenario runs:
  - Started in the root namespace, Cluster does no networking at all: it
    creates a network namespace (`ip netns add wrn-SCENARIO-PID`) and
    /etc/netns/NAME/resolv.conf naming 127.0.0.1 (mounted over
    /etc/resolv.conf by `ip netns exec`, so getaddrinfo in the CLI asks our
    dnsmasq), re-executes the same script inside with `ip netns exec`, and
    deletes both when it ends, whatever the outcome. A janitor process in its
    own session does the deletion if this process is killed (meson's timeout
    SIGKILLs the whole process group). If `ip netns add` is not permitted the
    scenario is skipped (exit 77).
  - Inside, before anything else, the script checks that it is not in the
    root namespace. Everything runs there: loopback up, IPv6 enabled on lo,
    fdaa::N/128 addresses, dnsmasq on 127.0.0.1:53 serving the zone
    example.test from a hosts file the test rewrites (SIGHUP reloads it),
    the edges, origins, CLIs, curl and the Python clients. The namespace has
    only its loopback interface: nothing in it can reach outside.
  - Edge k listens on 127.0.0.(100+k) (IPv4) or [fdaa::(100+k)] (IPv6):
    public port 8080, peer port 7000, admin port 9090; all edges share one
    --fleet-secret-file and one --secret-file and have --instance-id edgeK.
    The fleet's DNS name is fleet.example.test (--peers-dns); edge k alone is
    edgeK.example.test; CLIs can also be given ws://edges.example.test:8080,
    whose records the test sets as it likes.
  - Teardown (harness rules): the test's on_teardown steps, CLIs, then all
    edges at once (SIGTERM, each must exit 0), then the rest; everything by
    PID. A binary that died of a signal the test did not send, or printed a
    sanitizer report, fails the scenario.
"""

import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness as h  # noqa: E402

log = h.log
SKIP = h.SKIP
PY = h.PY
TUNNELD = h.TUNNELD
TUNNEL = h.TUNNEL
BUILD = h.BUILD
DOMAIN = h.DOMAIN            # tunnels are NAME.warren.test (a Host header, not DNS)
ZONE = "example.test"        # what dnsmasq serves
FLEET = "fleet.example.test"  # --peers-dns
EDGES = "edges.example.test"  # a name for CLIs' --server
PUBLIC_PORT = 8080
PEER_PORT = 7000
ADMIN_PORT = 9090
DNS_ADDR = "127.0.0.1"
DNS_PORT = 53
NS_ENV = "WARREN_NETNS"
ROOT_NS_ENV = "WARREN_ROOT_NETNS"
NS_PREFIX = "wrn-"


def edge_addr(k, family=4):
    return "127.0.0.%d" % (100 + k) if family == 4 else "fdaa::%d" % (100 + k)


def edge_name(k):
    """A DNS name of edge k alone (CLIs can use ws://edgeK.example.test:8080)."""
    return "edge%d.%s" % (k, ZONE)


def url_host(addr):
    return "[%s]" % addr if ":" in addr else addr


def hostport(addr, port):
    return "%s:%d" % (url_host(addr), port)


# ---------------------------------------------------------------- root namespace side

_JANITOR = r"""
import os, shutil, subprocess, sys
ns = sys.argv[1]
sys.stdin.buffer.read()   # EOF: the scenario's outer process has ended, one way or another
subprocess.run(["ip", "netns", "del", ns], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)
"""


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _reap_stale():
    """Delete namespaces of earlier runs whose process is gone (wrn-*-PID)."""
    r = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for line in r.stdout.decode(errors="replace").splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s[a-z0-9-]*-(\d+)$" % NS_PREFIX, name)
        if m and not _pid_alive(int(m.group(1))):
            subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
            shutil.rmtree(os.path.join("/etc/netns", name), ignore_errors=True)
            log("deleted stale namespace %s" % name)


def _outer(name, timeout):
    """Run this script inside a fresh namespace; returns its exit status."""
    missing = [p for p in (TUNNELD, TUNNEL) if not os.access(p, os.X_OK)]
    if missing:
        print("SKIP %s: not built: %s" % (name, ", ".join(missing)), flush=True)
        return SKIP
    if shutil.which("ip") is None:
        print("FAIL %s: `ip` (iproute2) is not installed" % name, flush=True)
        return 1
    _reap_stale()
    ns = "%s%s-%d" % (NS_PREFIX, re.sub(r"[^a-z0-9-]", "-", name.lower())[:30], os.getpid())
    r = subprocess.run(["ip", "netns", "add", ns], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        msg = r.stdout.decode(errors="replace").strip()
        if os.geteuid() != 0 or "permitted" in msg or "denied" in msg.lower():
            print("SKIP %s: cannot create a network namespace: %s" % (name, msg), flush=True)
            return SKIP
        print("FAIL %s: ip netns add %s: %s" % (name, ns, msg), flush=True)
        return 1
    janitor = subprocess.Popen([PY, "-c", _JANITOR, ns], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    rc = 1
    inner = None
    stop = []

    def on_signal(sig, frm):
        stop.append(sig)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        d = os.path.join("/etc/netns", ns)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "resolv.conf"), "w") as f:
            f.write("# %s: the namespace's dnsmasq\nnameserver %s\noptions timeout:1 attempts:2\n"
                    % (ns, DNS_ADDR))
        env = dict(os.environ)
        env[NS_ENV] = ns
        env[ROOT_NS_ENV] = os.readlink("/proc/self/ns/net")
        argv = ["ip", "netns", "exec", ns, PY, os.path.abspath(sys.argv[0])] + sys.argv[1:]
        log("namespace %s: running %s inside" % (ns, os.path.basename(sys.argv[0])))
        inner = subprocess.Popen(argv, env=env, preexec_fn=h._pdeathsig)
        end = time.monotonic() + timeout + 30
        grace_end = None
        while inner.poll() is None:
            now = time.monotonic()
            if stop and grace_end is None:
                # the process group got the signal too (meson): give the scenario
                # a moment for its own teardown, then end it
                grace_end = now + 10
            if now > end and grace_end is None:
                log("scenario still running %d s after its deadline: SIGTERM" % (timeout + 30))
                inner.send_signal(signal.SIGTERM)
                grace_end = now + 10
            if grace_end is not None and now > grace_end:
                inner.kill()
            try:
                inner.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        rc = inner.returncode
        if rc < 0:
            log("scenario died of signal %d" % -rc)
            rc = 1
    finally:
        if inner is not None and inner.poll() is None:
            inner.kill()
            inner.wait(5)
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        shutil.rmtree(os.path.join("/etc/netns", ns), ignore_errors=True)
        try:
            janitor.stdin.close()
            janitor.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for s, fn in old.items():
            signal.signal(s, fn)
    return rc


# ---------------------------------------------------------------- inside the namespace

def sh(argv, check=True, timeout=10):
    """Run a short command inside the namespace; returns (rc, output)."""
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = r.stdout.decode(errors="replace").strip()
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, out))
    return r.returncode, out


def _proc_hex(addr):
    """An address as /proc/net/tcp{,6} prints it."""
    if ":" in addr:
        words = struct.unpack("=4I", socket.inet_pton(socket.AF_INET6, addr))
        return "".join("%08X" % w for w in words)
    return "%08X" % struct.unpack("=I", socket.inet_aton(addr))[0]


def listening(addr, port):
    return (_proc_hex(addr), port) in h.listening_ports()


def parse_metrics(text):
    """Prometheus text -> {"name" or "name{labels}": float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        try:
            out[key] = float(val)
        except ValueError:
            pass
    return out


class ClusterEdge(h.Edge):
    """A tunneld of the fleet: edge k on one address."""

    def __init__(self, test, label, argv, env, k, addr, admin, drain):
        self.k = k
        self.addr = addr
        self.admin = admin
        self.instance = "edge%d" % k
        super().__init__(test, label, argv, env, [PUBLIC_PORT], DOMAIN, drain)

    @property
    def ws_url(self):
        return "ws://%s" % hostport(self.addr, PUBLIC_PORT)

    @property
    def ws_name_url(self):
        """The edge by its own DNS name (edgeK.example.test), not an IP literal."""
        return "ws://%s:%d" % (edge_name(self.k), PUBLIC_PORT)

    @property
    def peer(self):
        return hostport(self.addr, PEER_PORT)

    def curl_args(self, name, path, port=None):
        host = "%s.%s" % (name, DOMAIN)
        return ["--resolve", "%s:%d:%s" % (host, PUBLIC_PORT, url_host(self.addr)),
                "http://%s:%d%s" % (host, PUBLIC_PORT, path)]

    def __repr__(self):
        return "<edge%d %s pid %d>" % (self.k, self.addr, self.pid)


class Cluster(h.Test):
    def __init__(self, name, timeout=120):
        super().__init__(name, timeout)
        self.edges = []
        self.records = {}
        self.dnsmasq = None
        self.fleet_secret = None
        self.token_secret = None
        self.v6_addrs = set()
        self._sigterm_seen = False

    # -- context
    def __enter__(self):
        if not os.environ.get(NS_ENV):
            sys.exit(_outer(self.name, self.timeout))
        super().__enter__()

        def on_term(sig, frm):  # once: a second signal must not break the teardown
            if not self._sigterm_seen:
                self._sigterm_seen = True
                raise h.TestTimeout("scenario got signal %d" % sig)

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        try:
            self._setup()
        except BaseException:
            self.__exit__(*sys.exc_info())
        return self

    def _setup(self):
        root = os.environ.get(ROOT_NS_ENV, "")
        mine = os.readlink("/proc/self/ns/net")
        # never run any of this in the root namespace
        self.require(root and mine != root, "running inside a private network namespace",
                     "this process is in %s, the root namespace is %s" % (mine, root))
        log("namespace %s (%s)" % (os.environ[NS_ENV], mine))
        sh(["ip", "link", "set", "lo", "up"])
        sh(["sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=0"])
        rc, links = sh(["ip", "-o", "link", "show"])
        self.require(len(links.splitlines()) == 1 and " lo:" in links,
                     "the namespace has only its loopback interface", links)
        self.fleet_secret = self.secret_file("fleet-secret")
        self.token_secret = self.secret_file("token-secret")
        self.hosts_path = self.path("dns-hosts")
        self._write_hosts()
        self.dnsmasq = self.spawn("dnsmasq", [
            "dnsmasq", "--keep-in-foreground", "--port=%d" % DNS_PORT,
            "--listen-address=%s" % DNS_ADDR, "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--local=/%s/" % ZONE, "--addn-hosts=%s" % self.hosts_path,
            "--pid-file=%s" % self.path("dnsmasq.pid"), "--user=root",
            "--log-facility=-", "--log-queries"])
        self.require(h.wait_until(lambda: listening(DNS_ADDR, DNS_PORT) or
                                  not self.dnsmasq.alive(), 10) and self.dnsmasq.alive(),
                     "dnsmasq serving %s on %s:%d" % (ZONE, DNS_ADDR, DNS_PORT),
                     self.dnsmasq.stderr_text()[-2000:])

    # -- addresses and DNS
    def add_addr6(self, addr):
        if addr not in self.v6_addrs:
            sh(["ip", "-6", "addr", "add", "%s/128" % addr, "dev", "lo", "nodad"])
            self.v6_addrs.add(addr)

    def _write_hosts(self):
        tmp = self.hosts_path + ".new"
        with open(tmp, "w") as f:
            for name in sorted(self.records):
                for a in self.records[name]:
                    f.write("%s %s\n" % (a, name))
        os.rename(tmp, self.hosts_path)

    def reload_dns(self):
        self._write_hosts()
        if self.dnsmasq is not None and self.dnsmasq.alive():
            os.kill(self.dnsmasq.pid, signal.SIGHUP)

    def dns_set(self, name, addrs, wait=True):
        """Make name resolve to exactly addrs (empty: remove it) and reload dnsmasq.
        wait: until getaddrinfo here says so."""
        addrs = list(addrs)
        if addrs:
            self.records[name] = addrs
        else:
            self.records.pop(name, None)
        self.reload_dns()
        log("dns: %s -> %s" % (name, ", ".join(addrs) or "(none)"))
        if wait and self.dnsmasq is not None:
            self.dns_wait(name, addrs)

    def dns_wait(self, name, addrs):
        ok = h.wait_until(lambda: set(resolve(name)) == set(addrs), 5)
        self.require(ok, "dnsmasq serves %s as %s" % (name, addrs or "NXDOMAIN"),
                     "getaddrinfo: %r" % resolve(name))

    def dns_add(self, name, addrs, wait=True):
        self.dns_set(name, self.records.get(name, []) + [a for a in addrs
                                                          if a not in self.records.get(name, [])],
                     wait)

    def dns_remove(self, name, addrs, wait=True):
        self.dns_set(name, [a for a in self.records.get(name, []) if a not in addrs], wait)

    # -- edges
    def edge(self, k, family=4, admin=True, dns=True, args=(), env=None, log_level=None,
             wait=True, drain=3):
        """Start edge k. dns: add its address to the fleet name first. log_level:
        default $WARREN_EDGE_LOG_LEVEL, else $WARREN_LOG_LEVEL, else info."""
        log_level = log_level or os.environ.get("WARREN_EDGE_LOG_LEVEL") or h.LOG_LEVEL or "info"
        addr = edge_addr(k, family)
        if family == 6:
            self.add_addr6(addr)
        self.records[edge_name(k)] = [addr]
        if dns and addr not in self.records.get(FLEET, []):
            self.records[FLEET] = self.records.get(FLEET, []) + [addr]
        self.reload_dns()
        argv = [TUNNELD, "--domain", DOMAIN,
                "--listen", hostport(addr, PUBLIC_PORT),
                "--peer-listen", hostport(addr, PEER_PORT),
                "--peers-dns", FLEET,
                "--dns-server", "%s:%d" % (DNS_ADDR, DNS_PORT),
                "--fleet-secret-file", self.fleet_secret,
                "--secret-file", self.token_secret,
                "--instance-id", "edge%d" % k,
                "--admin-listen", hostport(addr, ADMIN_PORT) if admin else "off",
                "--drain-timeout", str(drain),
                "--log-level", log_level] + list(args)
        e = ClusterEdge(self, self._label("edge%d" % k), argv, self.child_env(env), k, addr,
                        admin, drain)
        self.procs.append(e)
        self.edges.append(e)
        if wait:
            self.wait_listening([e])
        return e

    def wait_listening(self, edges, timeout=10):
        def up(e):
            ports = [PUBLIC_PORT, PEER_PORT] + ([ADMIN_PORT] if e.admin else [])
            return all(listening(e.addr, p) for p in ports)
        ok = h.wait_until(lambda: all(up(e) or not e.alive() for e in edges), timeout)
        bad = [e for e in edges if not (e.alive() and up(e))]
        self.require(ok and not bad, "edges %s listening" % ",".join(str(e.k) for e in edges),
                     "; ".join("edge%d rc=%r %s" % (e.k, e.rc, e.stderr_text()[-1500:])
                               for e in bad))

    def fleet(self, n, family=4, first=1, admin=True, mesh=True, **kw):
        """Start edges first..first+n-1, all in DNS from the start; wait until every
        one has an authenticated link to every other (needs admin). family: 4, 6,
        or a list with one per edge (a mixed fleet)."""
        ks = list(range(first, first + n))
        fams = family if isinstance(family, (list, tuple)) else [family] * n
        for k, f in zip(ks, fams):
            if f == 6:
                self.add_addr6(edge_addr(k, f))
            self.records[edge_name(k)] = [edge_addr(k, f)]
        self.dns_add(FLEET, [edge_addr(k, f) for k, f in zip(ks, fams)])
        es = [self.edge(k, f, admin=admin, dns=False, wait=False, **kw) for k, f in zip(ks, fams)]
        self.wait_listening(es)
        if mesh and admin:
            self.wait_mesh(es)
        return es

    def wait_mesh(self, edges, timeout=15, expect=None):
        """Wait until each edge has `expect` (default: the others) peers connected."""
        want = len(edges) - 1 if expect is None else expect
        t0 = time.monotonic()

        def done():
            return all(self.metric(e, "warren_peers_connected") == want for e in edges)
        ok = h.wait_until(done, timeout, 0.1)
        got = {e.k: self.metric(e, "warren_peers_connected") for e in edges}
        self.require(ok, "fleet of %d linked (%d peers each)" % (len(edges), want), got)
        log("fleet linked in %.2f s" % (time.monotonic() - t0))

    def metrics(self, e, timeout=5):
        """The edge's /metrics as a dict ({} if unreachable)."""
        try:
            r = h.request(ADMIN_PORT, "GET", "/metrics", hostport(e.addr, ADMIN_PORT),
                          timeout=timeout, addr=e.addr)
        except (OSError, ValueError):
            return {}
        return parse_metrics(r.text) if r.status == 200 else {}

    def metric(self, e, key, default=None):
        return self.metrics(e).get(key, default)

    # -- visitors
    def get(self, e, path, name, timeout=10, headers=(), method="GET", body=None):
        return h.request(PUBLIC_PORT, method, path, e.host(name), headers=headers, body=body,
                         timeout=timeout, addr=e.addr)

    def timed_get(self, e, path, name, timeout=10):
        """(Response or None, seconds, error text)."""
        t0 = time.monotonic()
        try:
            r = self.get(e, path, name, timeout)
            return r, time.monotonic() - t0, ""
        except (OSError, ValueError) as ex:
            return None, time.monotonic() - t0, "%s: %s" % (type(ex).__name__, ex)

    def download_sha256(self, e, path, name, timeout=60):
        """GET through edge e, hashing the body as it streams: (Response, hex, seconds)."""
        import hashlib
        hs = hashlib.sha256()
        t0 = time.monotonic()
        with h.HttpConn(PUBLIC_PORT, e.addr, timeout) as c:
            c.send(h.build_request("GET", path, e.host(name)))
            r = c.read_head()
            c.read_body(r, "GET", hs.update)
        return r, hs.hexdigest(), time.monotonic() - t0

    def wait_status(self, e, name, status, timeout, path="/hello", interval=0.05):
        """Poll until a request through e gets `status`; returns seconds or None."""
        t0 = time.monotonic()
        end = t0 + timeout
        last = None
        while time.monotonic() < end:
            r, _, err = self.timed_get(e, path, name, timeout=max(0.5, end - time.monotonic()))
            last = r.status if r else err
            if r is not None and r.status == status:
                return time.monotonic() - t0
            time.sleep(interval)
        log("edge%d %s: still %r after %.1f s" % (e.k, name, last, timeout))
        return None

    # -- teardown: the test's own closers (on_teardown), CLIs, then all edges at
    # once (a fleet of 16 drains in parallel), then the rest (harness)
    def teardown(self):
        def stop_all(procs, tmo):
            live = [p for p in procs if p.alive()]
            for p in live:
                p.send(signal.SIGTERM)
            end = time.monotonic() + tmo
            for p in live:
                rc = p.wait_exit(max(0.1, end - time.monotonic()))
                if rc is None:
                    log("%s pid %d did not exit after SIGTERM: SIGKILL" % (p.label, p.pid))
                    os.kill(p.pid, signal.SIGKILL)
                    p.p.wait(5)
                if not p.checked_exit:
                    p.checked_exit = True
                    self.check(rc == 0, "%s exits 0 on SIGTERM at teardown" % p.label,
                               "exit status %r" % rc)
        closers, self.closers = self.closers, []
        for fn in reversed(closers):
            try:
                fn()
            except Exception as ex:  # noqa: BLE001
                self.check(False, "teardown step %r" % fn, repr(ex))
        try:
            stop_all([p for p in self.procs if p.argv[0] == TUNNEL], 10)
            stop_all([p for p in self.procs if p.argv[0] == TUNNELD],
                     max([getattr(p, "drain", 0) or 0 for p in self.procs] + [0]) + 8)
        finally:
            super().teardown()


def drop_packets_to(addr):
    """Make packets to addr (an IPv6 address of the namespace) vanish, so a
    connection attempt hangs instead of being refused. Tries nft, ip6tables,
    then tc (htb + u32 into a zero-length bfifo). Returns the method used, or
    None if none is available here."""
    if shutil.which("nft"):
        cmds = [["nft", "add", "table", "inet", "wrn_drop"],
                ["nft", "add", "chain", "inet", "wrn_drop", "out",
                 "{ type filter hook output priority 0 ; }"],
                ["nft", "add", "rule", "inet", "wrn_drop", "out", "ip6", "daddr", addr, "drop"]]
        if all(sh(cmd, check=False)[0] == 0 for cmd in cmds):
            return "nft"
    if shutil.which("ip6tables"):
        if sh(["ip6tables", "-A", "OUTPUT", "-d", addr, "-j", "DROP"], check=False)[0] == 0:
            return "ip6tables"
    if shutil.which("tc"):
        cmds = [["tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb"],
                ["tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:99", "htb",
                 "rate", "8bit"],
                ["tc", "qdisc", "add", "dev", "lo", "parent", "1:99", "handle", "99:", "bfifo",
                 "limit", "0"],
                ["tc", "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ipv6", "prio",
                 "1", "u32", "match", "ip6", "dst", "%s/128" % addr, "flowid", "1:99"]]
        for cmd in cmds:
            if sh(cmd, check=False)[0] != 0:
                sh(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)
                return None
        return "tc"
    return None


def silent(addr, port, timeout=1.0):
    """True if a TCP connect to addr:port neither succeeds nor fails within timeout."""
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
        return False
    except socket.timeout:
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---------------------------------------------------------------- a peer, in Python

PEER_KEY_LABEL = b"warren peer link key v1"
F_OPEN, F_DATA, F_FIN, F_RST, F_WINDOW, F_CTL = 1, 2, 3, 4, 5, 6
RST_NAMES = {1: "cancel", 2: "refused", 3: "protocol", 4: "flow_control", 5: "too_many",
             6: "session_gone", 7: "timeout", 8: "internal", 9: "not_here", 10: "loop"}


def fleet_key(secret):
    """The peer-link key from the fleet secret (file bytes without trailing
    newlines): BLAKE2b-256 keyed with the label (server/config.c derive_key)."""
    import hashlib
    return hashlib.blake2b(secret.rstrip(b"\r\n"), digest_size=32, key=PEER_KEY_LABEL).digest()


def b64u(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def peer_mac(key, kind, instance, ts, nonce, peer_nonce=""):
    """crypto_auth (HMAC-SHA512 truncated to 32 bytes) over the handshake text."""
    import hashlib
    import hmac
    text = "warren-peer-v1|%s|%s|%d|%s|%s" % (kind, instance, ts, nonce, peer_nonce)
    return hmac.new(key, text.encode(), hashlib.sha512).digest()[:32]


def peer_hello(key, challenge, instance="pytest", ts=None, nonce=None):
    """A peer_hello as the dialer sends it in answer to the acceptor's
    challenge nonce (its MAC covers that nonce): (JSON bytes, nonce text)."""
    ts = int(time.time() * 1000) if ts is None else ts
    nonce = b64u(os.urandom(16)) if nonce is None else nonce
    m = {"type": "peer_hello", "v": 1, "instance": instance, "ts": ts, "nonce": nonce,
         "mac": b64u(peer_mac(key, "peer_hello", instance, ts, nonce, challenge))}
    return json.dumps(m, separators=(",", ":")).encode(), nonce


def frame(ftype, stream, payload=b""):
    """One length-prefixed frame as on a peer link: u32 len | type | u32 stream | payload."""
    return struct.pack(">IBI", 5 + len(payload), ftype, stream) + payload


def open_payload(remote="127.0.0.1:1", name=None, hops=None, proto=1):
    p = bytes([proto, len(remote)]) + remote.encode()
    if name is not None:
        p += bytes([1, len(name)]) + name.encode()
    if hops is not None:
        p += bytes([2, 1, hops])
    return p


class PeerConn:
    """A raw TCP connection to an edge's peer port, speaking the peer framing."""

    def __init__(self, e, timeout=5):
        self.sock = socket.socket(socket.AF_INET6 if ":" in e.addr else socket.AF_INET)
        self.sock.settimeout(timeout)
        self.sock.connect((e.addr, PEER_PORT))
        self.buf = b""
        self._challenge = None
        self._seal = None  # (tx key, rx key, [tx counter, rx counter]) once sealed

    def seal(self, key, hello_nonce, challenge_nonce):
        """After the welcome every record is sealed with ChaCha20-Poly1305, a
        key per direction (server/peerlink.c derive_link_keys); we dial."""
        import base64
        import hashlib

        def unb64(t):
            return base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
        nd, na = unb64(hello_nonce), unb64(challenge_nonce)

        def k(d):
            return hashlib.blake2b(b"warren-link-v1 " + d + nd + na, digest_size=32,
                                   key=key).digest()
        self._seal = (k(b"d2a"), k(b"a2d"), [0, 0])

    @staticmethod
    def _nonce(seq):
        return bytes(4) + struct.pack(">Q", seq)

    def challenge(self):
        """The acceptor speaks first: its peer_challenge nonce (text)."""
        if self._challenge is None:
            ftype, sid, payload = self.read_frame()
            m = json.loads(payload)
            if (ftype, sid) != (F_CTL, 0) or m.get("type") != "peer_challenge":
                raise EOFError("expected a peer_challenge, got %r" % payload[:100])
            self._challenge = m["nonce"]
        return self._challenge

    def send(self, data):
        """Raw bytes, or (once sealed) length-prefixed frames that are sealed
        one by one."""
        if self._seal is None:
            self.sock.sendall(data)
            return
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        ktx, _, seq = self._seal
        out = b""
        while data:
            n = struct.unpack(">I", data[:4])[0]
            rec, data = data[4:4 + n], data[4 + n:]
            ct = ChaCha20Poly1305(ktx).encrypt(self._nonce(seq[0]), rec, None)
            seq[0] += 1
            out += struct.pack(">I", len(ct)) + ct
        self.sock.sendall(out)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("closed by the edge")
        self.buf += d

    def read_frame(self):
        """(type, stream, payload); EOFError when the edge closes."""
        while len(self.buf) < 4:
            self._fill()
        n = struct.unpack(">I", self.buf[:4])[0]
        while len(self.buf) < 4 + n:
            self._fill()
        f, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        if self._seal is not None:
            from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
            _, krx, seq = self._seal
            f = ChaCha20Poly1305(krx).decrypt(self._nonce(seq[1]), f, None)
            seq[1] += 1
        return f[0], struct.unpack(">I", f[1:5])[0], f[5:]

    def closed_without_answer(self, timeout=3):
        """True if the edge closes the connection without sending anything
        after its challenge (no welcome, no frame, no HTTP)."""
        self.sock.settimeout(timeout)
        try:
            self.challenge()
        except EOFError:
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        self.buf += d
        return not d and not self.buf

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def check_no_sanitizer_report(t, path, what):
    """For binaries the harness does not track (their stderr went to path)."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return
    found = [p for p in SANITIZER_PATTERNS if p in text]
    t.check(not found, "%s: no sanitizer report" % what, found)


def BUILD_KIND():
    """What the binaries are: "plain" or "asan" (benchmarks say which they ran)."""
    try:
        with open(TUNNELD, "rb") as f:
            return "asan" if b"__asan_init" in f.read() else "plain"
    except OSError:
        return "?"


def resolve(name):
    """Addresses getaddrinfo gives for name here, in its order ([] if none)."""
    try:
        res = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    out = []
    for ai in res:
        if ai[4][0] not in out:
            out.append(ai[4][0])
    return out


def percentile(xs, p):
    """p in [0, 100]; nearest-rank on the sorted values."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]
