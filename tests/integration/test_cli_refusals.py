"""The CLI's exit status for each refusal code of the server (3 name_in_use,
4 invalid_name, 5 auth_failed, 6 version_unsupported, 7 limit_reached and any
other code), its HELLO as a scripted control server sees it, and
$TUNNEL_SERVER as the default --server. Then a real edge with --max-tunnels 1
refusing a second tunnel: exit 7."""

import asyncio
import json
import threading

import websockets

import harness as h


class FakeControl:
    """A WebSocket server that answers every HELLO with {"type":"error"} using
    the code currently set, and records what it received."""

    def __init__(self):
        self.port = h.free_port()
        self.code = "name_in_use"
        self.hellos = []
        self.paths = []
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        self.ready.wait(10)

    async def _handler(self, ws, path=None):
        self.paths.append(getattr(ws, "path", path))
        try:
            msg = await asyncio.wait_for(ws.recv(), 10)
            self.hellos.append(msg)
            await ws.send(json.dumps({"type": "error", "code": self.code,
                                      "message": "scripted refusal: %s" % self.code}))
            await asyncio.wait_for(ws.wait_closed(), 3)
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            pass

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.stop = asyncio.Event()
            async with websockets.serve(self._handler, "127.0.0.1", self.port, compression=None):
                self.ready.set()
                await self.stop.wait()

        self.loop.run_until_complete(main())

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.th.join(5)


with h.Test("cli-refusals", timeout=60) as t:
    fake = FakeControl()
    t.on_teardown(fake.close)
    t.require(fake.ready.is_set(), "scripted control server up")
    url = "ws://127.0.0.1:%d" % fake.port
    org = t.origin()

    for code, want in (("name_in_use", 3), ("invalid_name", 4), ("auth_failed", 5),
                       ("version_unsupported", 6), ("limit_reached", 7), ("brand_new_code", 7)):
        fake.code = code
        rc, out, err = t.run("tunnel-" + code, [h.TUNNEL, "--port", str(org.port), "--server", url,
                                                "--subdomain", "fake", "--json"], timeout=8)
        t.eq(rc, want, "refusal %s exits %d" % (code, want))
        evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        t.check(any(e.get("event") == "error" and e.get("code") == code for e in evs),
                "%s: error event carries the code" % code, out[-300:])
        t.check(not any(e.get("event") == "reconnecting" for e in evs),
                "%s: a refusal is final, no reconnect" % code)

    t.step("what the CLI sends")
    fake.code = "limit_reached"
    n0 = len(fake.hellos)
    rc, out, err = t.run("tunnel-key", [h.TUNNEL, "--port", str(org.port), "--server", url,
                                        "--subdomain", "withkey", "--key", "wk_0123abcd_" + "A" * 43,
                                        "--json"], timeout=8)
    t.require(len(fake.hellos) > n0, "HELLO received")
    hello = json.loads(fake.hellos[-1])
    h.log("hello: %s" % {k: v for k, v in hello.items() if k != "key"})
    t.eq((hello.get("type"), hello.get("version"), hello.get("name")), ("hello", 1, "withkey"),
         "HELLO has type, version 1 and the asked name")
    t.eq(hello.get("key"), "wk_0123abcd_" + "A" * 43, "HELLO carries the key")
    t.check(fake.paths and all(p == "/_tunnel" for p in fake.paths if p is not None),
            "control path is /_tunnel", fake.paths[-3:])

    t.step("$TUNNEL_SERVER")
    n0 = len(fake.hellos)
    rc, out, err = t.run("tunnel-env", [h.TUNNEL, "--port", str(org.port), "--subdomain", "env",
                                        "--json"], env={"TUNNEL_SERVER": url}, timeout=8)
    t.check(len(fake.hellos) > n0 and json.loads(fake.hellos[-1]).get("name") == "env",
            "without --server the CLI uses $TUNNEL_SERVER")
    t.eq(rc, 7, "and exits with that server's refusal")

    t.step("real edge with --max-tunnels 1")
    edge = t.tunneld(args=["--max-tunnels", "1"])
    t.tunnel(edge, org.port, name="one")
    rc, out, err = t.run("tunnel-two", [h.TUNNEL, "--port", str(org.port), "--server",
                                        edge.ws_url, "--subdomain", "two", "--json"], timeout=8)
    t.eq(rc, 7, "second tunnel over the edge's limit exits 7")
    evs = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    t.check(any(e.get("code") == "limit_reached" for e in evs), "code limit_reached", out[-300:])
