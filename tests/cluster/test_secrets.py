"""No secret reaches a log, with every secret-handling path exercised at
debug level.

Two edges at --log-level debug, CLIs at debug too. Edge 1 takes its
secrets from files (--secret-file, --fleet-secret-file), edge 2 the same
secrets from the environment (TUNNELD_SECRET, TUNNELD_FLEET_SECRET); both
require tunnel keys (--keys, made with `tunneld keys add`). Exercised:
  - the peer handshake and sealed records (the two edges link up; a visitor
    on edge 2 reaches a tunnel on edge 1 through a lookup and a forward), and
    a hello made with another fleet secret, refused;
  - keys: a CLI with --key, one with TUNNEL_KEY, one with a wrong key
    (refused), a key added to the file and loaded by SIGHUP;
  - reconnect tokens: a protocol client gets one in its WELCOME and presents
    it on the other edge (an owner claim across the fleet), then presents it
    tampered, and a token for another name (refused, logged at debug); a
    CLI whose edge drains reconnects to the other edge with its token;
  - bad control messages carrying a key or a token (a malformed HELLO).
Asserted: none of the secrets (the two secret texts, every key and its
secret part, every reconnect token the test saw) and no reconnect token at
all is in any log of any process; the checks of the log scanner itself are
proven on a copy of a log with a key and a real token added.
"""

import asyncio
import json
import os
import shutil
import signal
import time

import websockets

import cluster as c
from cluster import h


async def control(e, messages, answers=1, timeout=5):
    """Open a control WebSocket to edge e, send messages (dicts or raw text),
    return the answers (dicts) received before the edge closes or `answers`
    arrived."""
    ws = await websockets.connect("ws://%s/_tunnel" % c.hostport(e.addr, c.PUBLIC_PORT),
                                  subprotocols=["warren-tunnel"], compression=None,
                                  open_timeout=5, close_timeout=2)
    got = []
    try:
        for m in messages:
            await ws.send(m if isinstance(m, str) else json.dumps(m))
        while len(got) < answers:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except (websockets.ConnectionClosed, asyncio.TimeoutError):
        pass
    finally:
        await ws.close()
    return got


def hello(name=None, key=None, token=None):
    return {"type": "hello", "version": 1, "kind": "http", "name": name, "key": key,
            "reconnect_token": token, "client": "secrets-test"}


with c.Cluster("secrets", timeout=150) as t:
    kf = t.path("keys")
    keys = []
    for i in range(2):
        rc, out, _ = t.run("keys-add", [c.TUNNELD, "keys", "add", kf, "--label", "k%d" % i])
        t.require(rc == 0 and out.strip().startswith("wk_"), "key %d made" % i, out)
        keys.append(out.strip())
    with open(t.token_secret) as f:
        token_secret = f.read().strip()
    with open(t.fleet_secret) as f:
        fleet_secret = f.read().strip()

    t.step("edge 1 with secret files, edge 2 with the same secrets in its environment")
    e1 = t.edge(1, log_level="debug", args=["--keys", kf])
    t.dns_add(c.FLEET, [c.edge_addr(2)])
    argv = [c.TUNNELD, "--domain", c.DOMAIN, "--listen", c.hostport(c.edge_addr(2), c.PUBLIC_PORT),
            "--peer-listen", c.hostport(c.edge_addr(2), c.PEER_PORT), "--peers-dns", c.FLEET,
            "--dns-server", "%s:%d" % (c.DNS_ADDR, c.DNS_PORT), "--instance-id", "edge2",
            "--admin-listen", c.hostport(c.edge_addr(2), c.ADMIN_PORT), "--drain-timeout", "3",
            "--log-level", "debug", "--keys", kf]
    env2 = t.child_env({"TUNNELD_SECRET": token_secret, "TUNNELD_FLEET_SECRET": fleet_secret})
    e2 = c.ClusterEdge(t, "edge2", argv, env2, 2, c.edge_addr(2), True, 3)
    t.procs.append(e2)
    t.edges.append(e2)
    t.records[c.edge_name(2)] = [e2.addr]
    t.reload_dns()
    t.wait_listening([e1, e2])
    t.wait_mesh([e1, e2])
    t.check(len(t.secrets) >= 6, "the harness recorded the secrets (texts, keys and key parts)",
            sorted(set(t.secrets.values())))

    org = t.origin()
    cli1 = t.tunnel(e1.ws_url, org.port, name="alpha", key=keys[0], args=("--log-level", "debug"))
    cli2 = t.tunnel(e2.ws_url, org.port, name="beta", env={"TUNNEL_KEY": keys[1]},
                    args=("--log-level", "debug"))
    t.eq(t.get(e2, "/hello", "alpha").status, 200, "a visitor on edge 2 reaches alpha on edge 1")
    t.eq(t.get(e1, "/hello", "beta").status, 200, "a visitor on edge 1 reaches beta on edge 2")
    rc, out, _ = t.run("tunnel-wrongkey", [c.TUNNEL, "--port", str(org.port), "--server",
                                           e1.ws_url, "--subdomain", "gamma", "--json",
                                           "--log-level", "debug", "--key",
                                           keys[0][:-2] + ("AA" if keys[0][-2:] != "AA" else "BB")],
                       timeout=15)
    t.eq(rc, 5, "a wrong key is refused (exit 5)")

    t.step("a key added and loaded with SIGHUP")
    rc, out, _ = t.run("keys-add", [c.TUNNELD, "keys", "add", kf])
    keys.append(out.strip())
    for e in (e1, e2):
        os.kill(e.pid, signal.SIGHUP)
    t.check(h.wait_until(lambda: all("3 keys" in e.stderr_text() for e in (e1, e2)), 5),
            "both edges reloaded the keys file (3 keys)")
    cli3 = t.tunnel(e2.ws_url, org.port, name="delta", key=keys[2], args=("--log-level", "debug"))

    t.step("reconnect tokens through the protocol")
    ans = asyncio.run(control(e1, [hello("epsilon", keys[0])]))
    tok = ans[0].get("reconnect_token", "") if ans else ""
    t.check(ans and ans[0].get("type") == "welcome" and len(tok) > 60,
            "a protocol client gets a WELCOME with a reconnect token", ans)
    t.add_secret("reconnect token", tok)
    ans = asyncio.run(control(e2, [hello("epsilon", keys[0], tok)]))
    t.check(ans and ans[0].get("type") == "welcome",
            "the token reclaims the name on edge 2 (an owner claim across the fleet)", ans)
    if ans and ans[0].get("reconnect_token"):
        t.add_secret("reconnect token", ans[0]["reconnect_token"])
    bad = tok[:-3] + ("AAA" if tok[-3:] != "AAA" else "BBB")
    ans = asyncio.run(control(e1, [hello("zeta", keys[0], bad)]))
    t.check(ans and ans[0].get("type") == "welcome" and ans[0].get("name") == "zeta",
            "a tampered token is ignored (the hello is served as one without a token)", ans)
    for a in ans:
        t.add_secret("reconnect token", a.get("reconnect_token", ""))
    ans = asyncio.run(control(e2, [hello("omega", keys[0], tok)]))
    t.check(ans and ans[0].get("type") == "welcome" and ans[0].get("name") == "omega",
            "epsilon's token does not make its bearer the owner of another name", ans)
    for a in ans:
        t.add_secret("reconnect token", a.get("reconnect_token", ""))
    t.check(h.wait_until(lambda: "not accepted" in e1.stderr_text(), 3),
            "edge 1 logged (at debug) that a token was not accepted")

    t.step("malformed control messages carrying secrets")
    raw = ('{"type":"hello","version":1,"key":"%s","reconnect_token":"%s" "x"}' % (keys[0], tok))
    ans = asyncio.run(control(e1, [raw]))
    t.check(ans and ans[0].get("code") == "bad_hello", "a malformed HELLO gets bad_hello", ans)
    ans = asyncio.run(control(e1, [hello("eta", keys[0][:20])]))
    t.check(ans and ans[0].get("code") == "auth_failed", "a cut key gets auth_failed", ans)

    t.step("a peer with another fleet secret")
    p = c.PeerConn(e1)
    msg, _ = c.peer_hello(c.fleet_key(b"q" * 40), p.challenge(), "stranger")
    p.send(c.frame(c.F_CTL, 0, msg))
    t.check(p.closed_without_answer(4), "refused without a welcome")
    p.close()

    t.step("a CLI whose edge drains reconnects with its token to the other edge")
    t.dns_set(c.EDGES, [e1.addr, e2.addr])
    cli4 = t.tunnel("ws://%s:%d" % (c.EDGES, c.PUBLIC_PORT), org.port, key=keys[2],
                    args=("--log-level", "debug"))
    name4 = cli4.name
    first = e1 if "tunnel=%s online" % name4 in e1.stderr_text() else e2
    other = e2 if first is e1 else e1
    t.dns_set(c.EDGES, [other.addr])
    mark = len(cli4.events)
    first.send(signal.SIGTERM)
    _, ev = cli4.wait_event("online", 20, start=mark)
    t.check(ev is not None and ev.get("name") == name4,
            "the CLI came back on edge %d with its name %s" % (other.k, name4), ev)
    first.wait_exit(15)
    first.checked_exit = True

    t.step("the log scanner works (on copies, outside the logs it checks)")
    src = other.err_path
    ctl_copy = t.path("scanner-control.txt")
    shutil.copyfile(src, ctl_copy)
    t.eq(h.scan_for_secrets([ctl_copy], t.secrets), [], "the copy is clean before anything is added")
    with open(ctl_copy, "a") as f:
        f.write("debug: hello with key %s\n" % keys[1].split("_", 2)[2])
    t.eq(h.scan_for_secrets([ctl_copy], t.secrets, tokens=False), [("tunnel key", "scanner-control.txt")],
         "a key's secret part added to the copy is found, and named by its kind")
    shutil.copyfile(src, ctl_copy)
    with open(ctl_copy, "a") as f:
        f.write("debug: token=%s;\n" % tok)
    t.eq(h.scan_for_secrets([ctl_copy], {}), [("reconnect token", "scanner-control.txt")],
         "a real reconnect token is recognised by its layout alone")

    t.check_secrets("the logs so far (at debug level)")
