"""tunneld --check-config validates and exits 0 without listening, or exits
non-zero naming the bad value; environment twins work and flags win over them;
several --listen addresses (IPv4 and IPv6) all serve."""

import harness as h

with h.Test("check-config", timeout=60) as t:
    port = h.free_port()
    L = "127.0.0.1:%d" % port
    secret = t.secret_file()
    kf = t.path("keys")
    rc, out, err = t.run("keys-add", [h.TUNNELD, "keys", "add", kf])
    t.eq(rc, 0, "keys add")

    def check(label, args, env=None, ok=True, names=()):
        rc, out, err = t.run(label, [h.TUNNELD] + args + ["--check-config"], env=env, timeout=10)
        what = " ".join(args) + (" env " + " ".join("%s=%s" % kv for kv in env.items())
                                 if env else "")
        if ok:
            t.eq(rc, 0, "valid: %s" % what)
        else:
            t.check(rc not in (0, None), "invalid: %s exits non-zero" % what, rc)
            for n in names:
                t.check(n in out + err, "error names %r" % n, (out + err)[-400:])

    t.step("valid configurations")
    check("ok-flags", ["--domain", h.DOMAIN, "--listen", L])
    check("ok-all", ["--domain", h.DOMAIN, "--listen", L, "--listen", "[::1]:%d" % port,
                     "--secret-file", secret, "--keys", kf, "--grace-period", "5",
                     "--drain-timeout", "5", "--head-timeout", "3", "--idle-timeout", "20",
                     "--max-streams", "10", "--log-level", "debug"])
    check("ok-env", [], env={"TUNNELD_DOMAIN": h.DOMAIN, "TUNNELD_LISTEN": L,
                             "TUNNELD_MAX_STREAMS": "12", "TUNNELD_LOG_LEVEL": "warn",
                             "TUNNELD_SECRET": "ab" * 32})
    check("ok-flag-wins", ["--domain", h.DOMAIN, "--listen", L, "--log-level", "info"],
          env={"TUNNELD_LOG_LEVEL": "loud"})
    t.check(not h.is_listening(port), "--check-config never listened")

    t.step("invalid configurations")
    check("bad-port", ["--domain", h.DOMAIN, "--listen", "127.0.0.1:99999"], ok=False,
          names=["99999"])
    check("bad-level", ["--domain", h.DOMAIN, "--listen", L, "--log-level", "loud"], ok=False,
          names=["loud"])
    check("bad-grace", ["--domain", h.DOMAIN, "--listen", L, "--grace-period=-5"], ok=False,
          names=["-5"])
    check("bad-domain", ["--domain", "bad_domain!", "--listen", L], ok=False,
          names=["bad_domain!"])
    check("bad-env", ["--domain", h.DOMAIN, "--listen", L], env={"TUNNELD_LOG_LEVEL": "loud"},
          ok=False, names=["loud"])
    check("bad-env-num", ["--domain", h.DOMAIN, "--listen", L],
          env={"TUNNELD_MAX_STREAMS": "many"}, ok=False, names=["many"])
    check("no-secret-file", ["--domain", h.DOMAIN, "--listen", L, "--secret-file",
                             t.path("nonexistent-secret")], ok=False, names=["nonexistent-secret"])
    check("no-keys-file", ["--domain", h.DOMAIN, "--listen", L, "--keys",
                           t.path("nonexistent-keys")], ok=False, names=["nonexistent-keys"])
    bad = t.path("bad-keys")
    with open(bad, "w") as f:
        f.write("# comment\nthis is not a key line\n")
    check("bad-keys-file", ["--domain", h.DOMAIN, "--listen", L, "--keys", bad], ok=False,
          names=["bad-keys"])

    t.step("environment twins at run time")
    p1, p2 = h.free_port(), h.free_port()
    e = t.tunneld(listen=[], domain=None, ports=[p2], label="tunneld-env",
                  env={"TUNNELD_DOMAIN": h.DOMAIN, "TUNNELD_LISTEN": "127.0.0.1:%d" % p1},
                  args=["--listen", "127.0.0.1:%d" % p2])
    t.check(h.is_listening(p2), "--listen flag used")
    t.check(not h.is_listening(p1), "TUNNELD_LISTEN ignored when --listen is given")
    r = h.request(p2, "GET", "/", "zzz.%s:%d" % (h.DOMAIN, p2))
    t.eq(r.status, 404, "domain from TUNNELD_DOMAIN: unknown name gives 404")
    t.check("zzz" in r.text, "404 names the tunnel", r.text[:200])
    e.stop()
    e.checked_exit = True

    t.step("several listeners")
    q1, q2 = h.free_port(), h.free_port()
    listen = ["127.0.0.1:%d" % q1, "127.0.0.1:%d" % q2]
    if h.ipv6_available():
        q6 = h.free_port(h.socket.AF_INET6)
        listen.append("[::1]:%d" % q6)
    e2 = t.tunneld(listen=listen, label="tunneld-multi")
    org = t.origin()
    t.tunnel(e2, org.port, name="multi")
    for l in listen:
        addr, p = l.rsplit(":", 1)
        addr = addr.strip("[]")
        r = h.request(int(p), "GET", "/hello", "multi.%s:%s" % (h.DOMAIN, p), addr=addr)
        t.eq(r.status, 200, "served on %s" % l)
