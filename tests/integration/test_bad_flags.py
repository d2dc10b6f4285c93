"""Usage errors: an unknown flag or a bad value prints an error naming the
flag (not the whole help) and exits 2, for both binaries; --help exits 0."""

import harness as h

with h.Test("bad-flags", timeout=40) as t:
    port = str(h.free_port())

    def case(label, argv, want_rc, names, env=None):
        rc, out, err = t.run(label, argv, env=env, timeout=10)
        text = out + err
        t.eq(rc, want_rc, "%s exits %d" % (" ".join(argv[1:]), want_rc))
        t.check(any(n in text for n in names), "%s: message names %s" % (label, names[0]),
                text[-400:])
        t.check(len(text.strip().splitlines()) <= 5, "%s: a short error, not the whole help"
                % label, "%d lines" % len(text.strip().splitlines()))

    t.step("tunneld")
    base = [h.TUNNELD, "--domain", h.DOMAIN, "--listen", "127.0.0.1:" + port]
    case("tunneld-unknown", base + ["--bogus"], 2, ["--bogus", "bogus"])
    case("tunneld-maxstreams", base + ["--max-streams", "lots"], 2, ["max-streams"])
    case("tunneld-grace", base + ["--grace-period", "soon"], 2, ["grace-period"])
    case("tunneld-nodomain", [h.TUNNELD, "--listen", "127.0.0.1:" + port], 2, ["domain"])
    t.check(not h.is_listening(int(port)), "tunneld never listened on a usage error")

    t.step("tunnel")
    srv = ["--server", "ws://127.0.0.1:" + port]
    case("tunnel-unknown", [h.TUNNEL, "--port", "8000", "--bogus"] + srv, 2, ["--bogus", "bogus"])
    case("tunnel-port-nan", [h.TUNNEL, "--port", "eighty"] + srv, 2, ["port"])
    case("tunnel-port-range", [h.TUNNEL, "--port", "70000"] + srv, 2, ["port"])
    case("tunnel-no-port", [h.TUNNEL] + srv, 2, ["port"])
    case("tunnel-bad-server", [h.TUNNEL, "--port", "8000", "--server", "gopher://x"], 2,
         ["server"])

    t.step("--help")
    for label, argv, word in (("tunneld-help", [h.TUNNELD, "--help"], "--domain"),
                              ("tunnel-help", [h.TUNNEL, "--help"], "--port")):
        rc, out, err = t.run(label, argv)
        t.eq(rc, 0, "%s exits 0" % " ".join(argv))
        t.check(word in out + err, "%s mentions %s" % (label, word))
