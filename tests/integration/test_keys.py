"""Keys: `tunneld keys add FILE` appends a hash line and prints the key once;
with --keys, a CLI without a key or with a wrong key exits 5 (auth_failed),
with a valid key it comes online. The key never appears in the edge's log or
in the file."""

import json
import os

import harness as h

with h.Test("keys", timeout=60) as t:
    kf = t.path("keys")
    rc, out, err = t.run("keys-add", [h.TUNNELD, "keys", "add", kf, "--label", "ci"])
    t.eq(rc, 0, "keys add exits 0")
    key1 = out.strip()
    t.check(key1.startswith("wk_") and len(key1) == 55 and len(out.strip().splitlines()) == 1,
            "keys add prints one key wk_<id>_<secret>", out)
    rc, out, err = t.run("keys-add2", [h.TUNNELD, "keys", "add", kf])
    key2 = out.strip()
    t.check(rc == 0 and key2.startswith("wk_") and key2 != key1, "second key is different", out)
    text = open(kf).read() if os.path.exists(kf) else ""
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
    t.eq(len(lines), 2, "keys file has two key lines")
    t.check(key1 not in text and key1.split("_", 2)[2] not in text, "the key itself is not stored")
    t.check(any(l.startswith(key1.split("_")[1]) and "ci" in l for l in lines),
            "first line starts with the key id and carries the label", text)

    edge = t.tunneld(args=["--keys", kf])
    org = t.origin()

    def cli(label, key):
        argv = [h.TUNNEL, "--port", str(org.port), "--server", edge.ws_url, "--subdomain", label,
                "--json"]
        if key is not None:
            argv += ["--key", key]
        return t.run("tunnel-" + label, argv, timeout=15)

    for label, key in (("nokey", None), ("wrongkey", key1[:-1] + ("A" if key1[-1] != "A" else "B")),
                       ("garbage", "not-a-key")):
        rc, out, err = cli(label, key)
        t.eq(rc, 5, "%s: exits 5" % label)
        evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        t.check(any(e.get("event") == "error" and e.get("code") == "auth_failed" for e in evs),
                "%s: error event auth_failed" % label, out[-300:])
    r = h.request(edge.port, "GET", "/hello", edge.host("nokey"))
    t.eq(r.status, 404, "refused CLI registered nothing")

    c1 = t.tunnel(edge, org.port, name="withkey", key=key1)
    c2 = t.tunnel(edge, org.port, name="withkey2", key=key2)
    for n in ("withkey", "withkey2"):
        r = h.request(edge.port, "GET", "/hello", edge.host(n))
        t.eq(r.status, 200, "%s serves" % n)
    logs = edge.stderr_text()
    t.check(key1.split("_", 2)[2] not in logs and key2.split("_", 2)[2] not in logs,
            "keys never appear in the edge log")
