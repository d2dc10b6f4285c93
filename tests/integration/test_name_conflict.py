"""A name held by one CLI cannot be taken by another: the second exits 3 with
a message naming the name. An invalid name exits 4."""

import json

import harness as h

with h.Test("name-conflict", timeout=60) as t:
    edge = t.tunneld()
    org = t.origin()
    first = t.tunnel(edge, org.port, name="taken")

    t.step("--json")
    rc, out, err = t.run("tunnel-second", [h.TUNNEL, "--port", str(org.port), "--server",
                                           edge.ws_url, "--subdomain", "taken", "--json"],
                         timeout=15)
    t.eq(rc, 3, "second CLI asking for a held name exits 3")
    errs = [e for e in map(json.loads, [l for l in out.splitlines() if l.startswith("{")])
            if e.get("event") == "error"]
    t.check(errs and errs[0].get("code") == "name_in_use", "error event with code name_in_use",
            out[-500:])
    t.check("taken" in out + err, "message names the name", (out + err)[-500:])

    t.step("human output")
    rc, out, err = t.run("tunnel-third", [h.TUNNEL, "--port", str(org.port), "--server",
                                          edge.ws_url, "--subdomain", "taken"], timeout=15)
    t.eq(rc, 3, "without --json: exits 3 as well")
    t.check("taken" in out + err, "human message names the name", (out + err)[-500:])

    t.check(first.alive(), "the owner is still connected")
    r = h.request(edge.port, "GET", "/hello", edge.host("taken"))
    t.eq(r.status, 200, "the owner still serves")

    t.step("invalid and reserved names")
    rc, out, err = t.run("tunnel-invalid", [h.TUNNEL, "--port", str(org.port), "--server",
                                            edge.ws_url, "--subdomain", "bad_name!", "--json"],
                         timeout=15)
    t.eq(rc, 4, "invalid name exits 4")
    t.check("bad_name!" in out + err, "message names the invalid name", (out + err)[-500:])
    rc, out, err = t.run("tunnel-reserved", [h.TUNNEL, "--port", str(org.port), "--server",
                                             edge.ws_url, "--subdomain", "www", "--json"],
                         timeout=15)
    t.check(rc in (3, 4, 7), "reserved name 'www' is refused (exit 3, 4 or 7)", rc)
    t.check("www" in out + err, "message names the reserved name", (out + err)[-500:])
