"""Checks of the deployment files that need no container engine.

- Every YAML file under deploy/ parses (Kubernetes files may hold several
  documents) and fly.toml parses.
- Every TUNNELD_* name written in the Dockerfile, fly.toml, deploy/ and
  docs/deploy-fly.md is an environment twin listed by `tunneld --help`.
- For Fly, Kubernetes and compose, the environment the platform would give
  the edge is rebuilt from the files (secrets and run-time values replaced by
  placeholders: pod IP 10.0.0.5, FLY_PRIVATE_IP fdaa:0:1::5, `hostname -i`
  172.18.0.3) and `tunneld --check-config` must accept it. Entrypoint wrappers
  run for real, with a stand-in `tunneld` that records what it was given.
- The placeholder secrets shipped in the files are refused by tunneld, so
  nobody runs a fleet on them by accident.
- Ports, probes, grace periods and names agree between the files (the peer
  DNS name is the headless Service / network alias / app name, kill timeouts
  exceed the drain timeout, probes hit the admin port...).
- The Dockerfile's runtime packages exist in Debian 12 and provide every
  shared library tunneld links.

Usage: WARREN_BUILD=BUILD_DIR /usr/bin/python3 tests/deploy/check_deploy.py
Exit status: 0 all passed, 1 something failed, 77 tunneld is not built.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("WARREN_SRC") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("WARREN_BUILD") or os.path.join(SRC, "build")
TUNNELD = os.path.join(BUILD, "server", "tunneld")
SKIP = 77

POD_IP = "10.0.0.5"
POD_NAME = "warren-edge-5d8f7c9b4-x2x7q"
FLY_PRIVATE_IP = "fdaa:0:1::5"
COMPOSE_IP = "172.18.0.3"
SECRET = "0123456789abcdef" * 4  # 64 bytes: what `openssl rand -hex 32` gives
TWIN_RE = re.compile(r"\bTUNNELD_[A-Z0-9_]*[A-Z0-9]\b")

failed = 0
passed = 0


def ok(cond, what, detail=""):
    global failed, passed
    if cond:
        passed += 1
        print("ok   %s" % what)
    else:
        failed += 1
        print("FAIL %s%s" % (what, (": " + str(detail)) if detail != "" else ""))
    return cond


def rel(path):
    return os.path.relpath(path, SRC)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def base_env():
    """A clean environment: nothing of the caller's TUNNELD_* leaks in, the
    sanitizer settings of an ASan build do."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    for k, v in os.environ.items():
        if k.startswith(("ASAN_", "UBSAN_", "LSAN_")):
            env[k] = v
    return env


def run(argv, env, timeout=20):
    p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, text=True)
    return p.returncode, p.stdout, p.stderr


# --- tunneld's own view ---------------------------------------------------

def help_facts():
    rc, out, err = run([TUNNELD, "--help"], base_env())
    ok(rc == 0, "tunneld --help exits 0", rc)
    twins = set(re.findall(r"env (TUNNELD_[A-Z0-9_]+)", out))
    defaults = dict(re.findall(r"env (TUNNELD_[A-Z0-9_]+), default (\S+)", out))
    ok(len(twins) >= 20 and "TUNNELD_PEERS_DNS" in twins,
       "tunneld --help lists the environment twins (%d)" % len(twins))
    return twins, defaults


def check_config(label, env, expect_ok=True, argv0=None, extra=()):
    """Run `tunneld --check-config` (or a wrapper that execs it) under env."""
    argv = (argv0 or [TUNNELD]) + ["--check-config"] + list(extra)
    rc, out, err = run(argv, env)
    if expect_ok:
        ok(rc == 0 and "configuration ok" in out,
           "%s: tunneld --check-config accepts the environment" % label,
           (out + err).strip()[-600:])
    else:
        ok(rc not in (0, None), "%s: tunneld --check-config refuses it" % label,
           (out + err).strip()[-300:])
    return out + err


class StandIn:
    """A bin directory with `tunneld` (real, or a stand-in that writes its
    environment and arguments as JSON to a file) and a fake `hostname`."""

    def __init__(self, tmp, name):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.dump = os.path.join(self.dir, "dump.json")

    def real(self):
        os.symlink(TUNNELD, os.path.join(self.dir, "tunneld"))
        return self

    def recorder(self):
        script = ("#!/usr/bin/python3\nimport json, os, sys\n"
                  "json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, open(%r, 'w'))\n"
                  % self.dump)
        self._write("tunneld", script)
        return self

    def hostname(self, output):
        self._write("hostname", "#!/bin/sh\n[ \"$1\" = -i ] || exit 2\necho '%s'\n" % output)
        return self

    def _write(self, name, text):
        p = os.path.join(self.dir, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o755)

    def env(self, extra):
        e = base_env()
        e["PATH"] = self.dir + ":" + e["PATH"]
        e.update(extra)
        return e

    def recorded(self):
        with open(self.dump) as f:
            return json.load(f)


# --- the Dockerfile -------------------------------------------------------

def dockerfile_instructions(text):
    """[(stage index, INSTRUCTION, arguments)] with continuations joined."""
    out, cur, stage = [], "", -1
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") or (not s and not cur):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        if cur.strip():
            word, _, rest = cur.strip().partition(" ")
            if word.upper() == "FROM":
                stage += 1
            out.append((stage, word.upper(), rest.strip()))
        cur = ""
    return out


def check_dockerfile(twins, defaults):
    path = os.path.join(SRC, "Dockerfile")
    ins = dockerfile_instructions(read(path))
    froms = [a for _, i, a in ins if i == "FROM"]
    ok(len(froms) == 2, "Dockerfile: two stages", froms)
    ok(all(re.match(r"debian:(12|bookworm)-slim\b", f) for f in froms),
       "Dockerfile: both stages from Debian 12 slim", froms)
    last = len(froms) - 1
    final = [(i, a) for s, i, a in ins if s == last]
    user = [a for i, a in final if i == "USER"]
    ok(user and user[-1].split(":")[0] not in ("0", "root"),
       "Dockerfile: the runtime stage runs as a non-root user", user)
    exposed = {p for i, a in final if i == "EXPOSE" for p in a.split()}
    ok({"8080", "7000", "9090"} <= exposed, "Dockerfile: EXPOSE 8080 7000 9090", exposed)
    hc = [a for i, a in final if i == "HEALTHCHECK"]
    admin = defaults.get("TUNNELD_ADMIN_LISTEN", "")
    ok(hc and "curl" in hc[0] and ("http://%s/healthz" % admin) in hc[0],
       "Dockerfile: HEALTHCHECK curls /healthz on the default admin address %s" % admin, hc)
    ep = [a for i, a in final if i == "ENTRYPOINT"]
    ok(ep and json.loads(ep[-1]) == ["tunneld"], "Dockerfile: ENTRYPOINT [\"tunneld\"]", ep)
    ok(not [a for i, a in final if i == "CMD"], "Dockerfile: no CMD (configuration by env only)")
    for i, a in final:
        if i == "ENV":
            for name in re.findall(r"(\S+?)=", a):
                if name.startswith("TUNNELD_"):
                    ok(name in twins, "Dockerfile: ENV %s is a flag twin" % name)
    # runtime-stage COPY from the build context: destination -> repository file
    copies = {}
    for i, a in final:
        if i == "COPY" and not a.startswith("--from"):
            parts = [p for p in a.split() if not p.startswith("--")]
            copies[parts[-1]] = os.path.join(SRC, parts[0])
    for dst, src in copies.items():
        ok(os.path.isfile(src) and os.access(src, os.X_OK) if dst.startswith("/usr/local/bin/")
           else os.path.exists(src), "Dockerfile: %s copied to %s exists%s" %
           (rel(src), dst, " and is executable" if dst.startswith("/usr/local/bin/") else ""))
    pkgs = []
    for i, a in final:
        if i == "RUN" and "apt-get install" in a:
            after = a.split("apt-get install", 1)[1].split("&&")[0]
            pkgs += [w for w in after.split() if not w.startswith("-")]
    ok(pkgs, "Dockerfile: the runtime stage installs packages", pkgs)
    check_runtime_packages(pkgs)
    return copies


def apt_lists_present():
    return bool(glob.glob("/var/lib/apt/lists/*Packages*"))


def check_runtime_packages(pkgs):
    if not shutil.which("apt-cache") or not apt_lists_present():
        print("skip runtime packages: no apt lists here (run apt-get update)")
        return
    missing = [p for p in pkgs if subprocess.run(["apt-cache", "show", p],
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0]
    ok(not missing, "Dockerfile: runtime packages exist in Debian's lists", missing)
    # every shared library of tunneld comes from a listed package, one of
    # their dependencies, or the base image (Priority: required)
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--important"] + pkgs,
                       stdout=subprocess.PIPE, text=True)
    provided = set(pkgs)
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(?:\|?(?:Pre)?Depends: )?<?([a-z0-9][a-z0-9.+-]*)>?$", line)
        if m:
            provided.add(m.group(1).split(":")[0])
    r = subprocess.run(["ldd", TUNNELD], stdout=subprocess.PIPE, text=True)
    libs = re.findall(r"=> (/\S+)", r.stdout)
    if any(re.search(r"/lib(asan|ubsan|tsan)\.", lib) for lib in libs):
        print("skip runtime libraries: %s is a sanitizer build, not what the image ships"
              % TUNNELD)
        return
    uncovered = []
    for lib in libs:
        owner = None
        for cand in (lib, os.path.realpath(lib), "/usr" + lib):
            q = subprocess.run(["dpkg-query", "-S", cand], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
            if q.returncode == 0:
                owner = q.stdout.split(":")[0]
                break
        if owner is None:
            uncovered.append(lib + " (no package)")
            continue
        if owner in provided:
            continue
        show = subprocess.run(["apt-cache", "show", owner], stdout=subprocess.PIPE, text=True)
        if re.search(r"^Priority: required$", show.stdout, re.M):
            continue
        uncovered.append("%s (%s)" % (lib, owner))
    ok(not uncovered, "Dockerfile: the runtime packages provide all %d libraries tunneld links"
       % len(libs), uncovered)


# --- fly.toml -------------------------------------------------------------

def seconds(v):
    if isinstance(v, (int, float)):
        return float(v)
    m = re.fullmatch(r"(\d+)(ms|s|m)", str(v))
    if not m:
        return None
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, "m": n * 60}[m.group(2)]


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def secrets_in_doc():
    """Names set by the `fly secrets set` command in docs/deploy-fly.md."""
    text = read(os.path.join(SRC, "docs", "deploy-fly.md")).replace("\\\n", " ")
    names = set()
    for line in text.splitlines():
        if "fly secrets set" in line:
            names |= set(re.findall(r"\b(TUNNELD_[A-Z0-9_]+)=", line))
    return names


def check_fly(tmp, twins, defaults, copies):
    path = os.path.join(SRC, "fly.toml")
    try:
        with open(path, "rb") as f:
            fly = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        ok(False, "fly.toml parses", e)
        return
    ok(True, "fly.toml parses")
    env = {k: str(v) for k, v in fly.get("env", {}).items()}
    for k in env:
        ok(k in twins or not k.startswith("TUNNELD_"), "fly.toml: [env] %s is a flag twin" % k)
    secrets = secrets_in_doc()
    ok({"TUNNELD_SECRET", "TUNNELD_FLEET_SECRET"} <= secrets,
       "docs/deploy-fly.md: `fly secrets set` sets TUNNELD_SECRET and TUNNELD_FLEET_SECRET",
       secrets)
    ok(not (secrets & set(env)), "fly.toml: no secret in [env]", secrets & set(env))
    app = fly.get("app", "")
    ok(env.get("TUNNELD_PEERS_DNS") == app + ".internal",
       "fly.toml: TUNNELD_PEERS_DNS is the app's .internal name", env.get("TUNNELD_PEERS_DNS"))
    ok(fly.get("kill_signal") == "SIGTERM", "fly.toml: kill_signal SIGTERM")
    drain = float(env.get("TUNNELD_DRAIN_TIMEOUT", defaults.get("TUNNELD_DRAIN_TIMEOUT", 30)))
    kt = seconds(fly.get("kill_timeout", "5s"))
    ok(kt is not None and kt > drain, "fly.toml: kill_timeout (%s s) above the drain timeout"
       " (%s s)" % (kt, drain))
    listen = env.get("TUNNELD_LISTEN", defaults.get("TUNNELD_LISTEN", ""))
    svcs = fly.get("services", [])
    ok(len(svcs) == 1 and svcs[0].get("internal_port") == port_of(listen),
       "fly.toml: the service's internal_port is the TUNNELD_LISTEN port %s" % listen)
    ports = {p.get("port"): p.get("handlers") for s in svcs for p in s.get("ports", [])}
    ok(ports.get(80) == ["http"] and sorted(ports.get(443) or []) == ["http", "tls"],
       "fly.toml: 80 through the http handler, 443 through tls+http", ports)
    ok(svcs and svcs[0].get("auto_stop_machines") in ("off", False),
       "fly.toml: edges are never auto-stopped")
    admin = env.get("TUNNELD_ADMIN_LISTEN", defaults.get("TUNNELD_ADMIN_LISTEN", ""))
    checks = fly.get("checks", {})
    ok(any(c.get("port") == port_of(admin) and c.get("path") == "/healthz"
           for c in checks.values()), "fly.toml: a check on /healthz at the admin port", checks)
    for m in fly.get("metrics", []):
        ok(m.get("port") == port_of(admin) and m.get("path") == "/metrics",
           "fly.toml: [[metrics]] scrapes /metrics on the admin port")
    entry = fly.get("experimental", {}).get("entrypoint", [])
    script = copies.get(entry[0]) if entry else None
    if not ok(script is not None, "fly.toml: the entrypoint %s is a file the Dockerfile copies"
              % entry):
        return
    fly_env = dict(env, FLY_PRIVATE_IP=FLY_PRIVATE_IP, FLY_APP_NAME=app,
                   FLY_ALLOC_ID="148e272f4d9e89", FLY_REGION=fly.get("primary_region", "ams"))
    fly_env.update({s: SECRET for s in secrets})
    rec = StandIn(tmp, "fly-rec").recorder()
    run([script], rec.env(fly_env))
    got = rec.recorded()["env"].get("TUNNELD_PEER_LISTEN")
    ok(got == "[%s]:7000" % FLY_PRIVATE_IP,
       "fly: the entrypoint binds the peer port to FLY_PRIVATE_IP", got)
    real = StandIn(tmp, "fly-real").real()
    check_config("fly", real.env(fly_env), argv0=[script])
    rec2 = StandIn(tmp, "fly-rec2").recorder()
    given = dict(fly_env, TUNNELD_PEER_LISTEN="10.1.2.3:7001")
    run([script, "--log-level", "debug"], rec2.env(given))
    r2 = rec2.recorded()
    ok(r2["env"].get("TUNNELD_PEER_LISTEN") == "10.1.2.3:7001" and
       r2["argv"] == ["--log-level", "debug"],
       "fly: the entrypoint keeps a given TUNNELD_PEER_LISTEN and passes arguments on", r2["argv"])
    no_ip = dict(fly_env)
    del no_ip["FLY_PRIVATE_IP"]
    check_config("fly without FLY_PRIVATE_IP", real.env(no_ip), expect_ok=False, argv0=[script])


# --- Kubernetes -----------------------------------------------------------

def k8s_expand(value, known):
    """Kubernetes' $(VAR) expansion: defined earlier -> replaced, $$ -> $."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return known.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def k8s_env(container, secrets, use_secret_values):
    env, unresolved = {}, []
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = k8s_expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom", {})
        if "fieldRef" in vf:
            env[name] = {"status.podIP": POD_IP, "metadata.name": POD_NAME,
                         "metadata.namespace": "warren"}.get(vf["fieldRef"]["fieldPath"], "x")
        elif "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            data = secrets.get(ref["name"])
            if data is None or ref["key"] not in data:
                unresolved.append("%s (secret %s key %s)" % (name, ref["name"], ref["key"]))
                continue
            env[name] = data[ref["key"]] if use_secret_values else SECRET
        else:
            unresolved.append(name)
    for ef in container.get("envFrom", []):
        ref = ef.get("secretRef", {}).get("name")
        if ref in secrets:
            for k, v in secrets[ref].items():
                env.setdefault(k, v if use_secret_values else SECRET)
        else:
            unresolved.append("envFrom %s" % ef)
    return env, unresolved


def check_k8s(tmp, twins, defaults):
    docs = []
    for path in sorted(glob.glob(os.path.join(SRC, "deploy", "k8s", "*.y*ml"))):
        for d in yaml.safe_load_all(read(path)):
            if d is not None:
                docs.append((path, d))
    by_kind = {}
    for path, d in docs:
        ok(d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"),
           "k8s: %s has apiVersion, kind and a name" % rel(path))
        ok("namespace" not in d.get("metadata", {}),
           "k8s: %s %s names no namespace" % (d.get("kind"), d["metadata"].get("name")))
        by_kind.setdefault(d.get("kind"), []).append(d)
    secrets = {}
    for s in by_kind.get("Secret", []):
        data = dict(s.get("stringData", {}))
        secrets[s["metadata"]["name"]] = data
        for k in data:
            ok(k in twins, "k8s: Secret key %s is a flag twin" % k)
    deps = by_kind.get("Deployment", [])
    if not ok(len(deps) == 1, "k8s: one Deployment"):
        return
    dep = deps[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    ok(spec.get("replicas") == 3, "k8s: 3 replicas")
    ok(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
       "k8s: the Deployment's selector matches its pods")
    c = pod["containers"][0]
    env, unresolved = k8s_env(c, secrets, use_secret_values=False)
    ok(not unresolved, "k8s: every env value resolves", unresolved)
    for name in (e["name"] for e in c.get("env", [])):
        if name.startswith("TUNNELD_"):
            ok(name in twins, "k8s: env %s is a flag twin" % name)
    ok(env.get("TUNNELD_PEER_LISTEN") == POD_IP + ":7000",
       "k8s: TUNNELD_PEER_LISTEN is the pod IP (downward API)", env.get("TUNNELD_PEER_LISTEN"))
    sec = pod.get("securityContext", {})
    ok(sec.get("runAsNonRoot") is True and sec.get("runAsUser", 0) != 0,
       "k8s: pods run as a non-root user")
    ok(c.get("resources", {}).get("requests") and c.get("resources", {}).get("limits"),
       "k8s: resources requested and limited")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    admin = env.get("TUNNELD_ADMIN_LISTEN", defaults.get("TUNNELD_ADMIN_LISTEN", ""))
    ok(not admin.startswith("127.") and not admin.startswith("[::1]"),
       "k8s: the admin listener is reachable by the kubelet's probes", admin)
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        hg = c.get(probe, {}).get("httpGet", {})
        port = ports.get(hg.get("port"), hg.get("port"))
        ok(hg.get("path") == path and port == port_of(admin),
           "k8s: %s GETs %s on the admin port" % (probe, path), hg)
    listen = env.get("TUNNELD_LISTEN", defaults.get("TUNNELD_LISTEN", ""))
    ok(ports.get("http") == port_of(listen) and ports.get("peer") == 7000,
       "k8s: container ports match the listeners", ports)
    drain = float(env.get("TUNNELD_DRAIN_TIMEOUT", defaults.get("TUNNELD_DRAIN_TIMEOUT", 30)))
    pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_s = float(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0.0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    ok(grace > drain + pre_s, "k8s: terminationGracePeriodSeconds (%s) above preStop (%s) +"
       " drain (%s)" % (grace, pre_s, drain))
    headless = [s for s in by_kind.get("Service", []) if s["spec"].get("clusterIP") == "None"]
    public = [s for s in by_kind.get("Service", []) if s["spec"].get("clusterIP") != "None"]
    if ok(len(headless) == 1 and len(public) == 1, "k8s: a headless and a public Service"):
        h, p = headless[0], public[0]
        peers = env.get("TUNNELD_PEERS_DNS", "")
        ok(peers == h["metadata"]["name"] or peers.startswith(h["metadata"]["name"] + "."),
           "k8s: TUNNELD_PEERS_DNS names the headless Service", peers)
        ok(h["spec"].get("publishNotReadyAddresses") is True,
           "k8s: the headless Service publishes not-ready pods")
        for s in (h, p):
            ok(all(labels.get(k) == v for k, v in s["spec"]["selector"].items()),
               "k8s: Service %s selects the edge pods" % s["metadata"]["name"])
        tp = [ports.get(x.get("targetPort"), x.get("targetPort")) for x in h["spec"]["ports"]]
        ok(tp == [port_of(env["TUNNELD_PEER_LISTEN"])], "k8s: the headless Service targets the"
           " peer port", tp)
        tp = [ports.get(x.get("targetPort"), x.get("targetPort")) for x in p["spec"]["ports"]]
        ok(tp == [port_of(listen)] and 9090 not in tp and 7000 not in tp,
           "k8s: the public Service exposes the public port only", tp)
    real = StandIn(tmp, "k8s").real()
    check_config("k8s", real.env(env))
    env2, _ = k8s_env(c, secrets, use_secret_values=True)
    check_config("k8s with the Secret's placeholder values", real.env(env2), expect_ok=False)


# --- compose --------------------------------------------------------------

def parse_env_file(path):
    env = {}
    for line in read(path).splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            k, _, v = s.partition("=")
            env[k.strip()] = v.strip()
    return env


def check_compose(tmp, twins):
    d = os.path.join(SRC, "deploy", "compose")
    with open(os.path.join(d, "docker-compose.yml")) as f:
        comp = yaml.safe_load(f)
    svcs = comp.get("services", {})
    ok(sorted(svcs) == ["edge1", "edge2", "edge3"], "compose: services edge1..edge3", sorted(svcs))
    example = parse_env_file(os.path.join(d, ".env.example"))
    for k in example:
        ok(k in twins, "compose: .env.example sets %s, a flag twin" % k)
    published = [n for n, s in svcs.items() if s.get("ports")]
    ok(len(published) == 1, "compose: one edge publishes the public port", published)
    for name, s in sorted(svcs.items()):
        env = {}
        ef = s.get("env_file")
        for f in ([ef] if isinstance(ef, str) else ef or []):
            f = f if isinstance(f, str) else f.get("path")
            ok(f == ".env", "compose: %s reads .env (made from .env.example)" % name, f)
            env.update({k: SECRET for k in example})
        senv = s.get("environment", {})
        if isinstance(senv, list):
            senv = dict(x.partition("=")[::2] for x in senv)
        env.update({k: str(v) for k, v in senv.items()})
        for k in senv:
            ok(k in twins or not k.startswith("TUNNELD_"),
               "compose: %s sets %s, a flag twin" % (name, k))
        aliases = {a for n in (s.get("networks") or {}).values() for a in (n or {}).get(
            "aliases", [])}
        ok(env.get("TUNNELD_PEERS_DNS") in aliases,
           "compose: %s's TUNNELD_PEERS_DNS is one of its network aliases" % name, aliases)
        # the entrypoint: a script mounted from this directory
        ep = s.get("entrypoint", [])
        mounts = {v.split(":")[1]: os.path.normpath(os.path.join(d, v.split(":")[0]))
                  for v in s.get("volumes", []) if isinstance(v, str)}
        script = next((mounts[a] for a in ep if a in mounts), None)
        if not ok(script and os.path.isfile(script),
                  "compose: %s's entrypoint %s is a file in deploy/compose" % (name, ep)):
            continue
        for label, out, want in (("IPv4", COMPOSE_IP, COMPOSE_IP + ":7000"),
                                 ("two IPv4", COMPOSE_IP + " 172.19.0.7", COMPOSE_IP + ":7000"),
                                 ("IPv6 first", "fd00:1::3 " + COMPOSE_IP, COMPOSE_IP + ":7000"),
                                 ("IPv6 only", "fd00:1::3", "[fd00:1::3]:7000")):
            rec = StandIn(tmp, "compose-%s-%s" % (name, label.replace(" ", "-"))).recorder()
            rec.hostname(out + " ")
            run(["/bin/sh", script], rec.env(env))
            got = rec.recorded()["env"].get("TUNNELD_PEER_LISTEN")
            ok(got == want, "compose: %s: `hostname -i` (%s) gives TUNNELD_PEER_LISTEN %s"
               % (name, label, want), got)
        real = StandIn(tmp, "compose-%s-real" % name).real().hostname(COMPOSE_IP)
        check_config("compose " + name, real.env(env), argv0=["/bin/sh", script])
        if name == "edge1":
            placeholders = dict(env, **example)
            check_config("compose with .env.example's placeholders", real.env(placeholders),
                         expect_ok=False, argv0=["/bin/sh", script])


# --- every mention --------------------------------------------------------

def deploy_files():
    files = [os.path.join(SRC, f) for f in ("Dockerfile", "fly.toml", ".dockerignore")]
    files.append(os.path.join(SRC, "docs", "deploy-fly.md"))
    for root, _, names in os.walk(os.path.join(SRC, "deploy")):
        files += [os.path.join(root, n) for n in names]
    return [f for f in files if os.path.isfile(f)]


def check_mentions(twins):
    for f in deploy_files():
        try:
            text = read(f)
        except UnicodeDecodeError:
            continue
        bad = sorted(set(TWIN_RE.findall(text)) - twins)
        ok(not bad, "%s: every TUNNELD_* name is a flag twin" % rel(f), bad)


def check_yaml():
    files = sorted(glob.glob(os.path.join(SRC, "deploy", "**", "*.y*ml"), recursive=True))
    ok(files, "YAML files found under deploy/")
    for f in files:
        try:
            n = sum(1 for d in yaml.safe_load_all(read(f)) if d is not None)
            ok(n >= 1, "%s parses (%d document%s)" % (rel(f), n, "s" * (n != 1)))
        except yaml.YAMLError as e:
            ok(False, "%s parses" % rel(f), e)


def section(name, fn, *args):
    """Run one group of checks; a file too broken to inspect fails it."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 (report and go on with the others)
        ok(False, "%s: checks stopped by %s: %s" % (name, type(e).__name__, e))
        return None


def main():
    if not os.access(TUNNELD, os.X_OK):
        print("skip: %s is not built" % TUNNELD)
        return SKIP
    twins, defaults = help_facts()
    with tempfile.TemporaryDirectory(prefix="warren-deploy-") as tmp:
        section("YAML", check_yaml)
        section("names", check_mentions, twins)
        copies = section("Dockerfile", check_dockerfile, twins, defaults) or {}
        section("fly", check_fly, tmp, twins, defaults, copies)
        section("k8s", check_k8s, tmp, twins, defaults)
        section("compose", check_compose, tmp, twins)
        real = StandIn(tmp, "image").real()
        check_config("image defaults + TUNNELD_DOMAIN", real.env({"TUNNELD_DOMAIN": "localhost"}))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
