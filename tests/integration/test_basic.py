"""curl GET and POST through one tunnel, plus the everyday HTTP shapes: HEAD,
keep-alive, pipelining, chunked responses, Host spelled with or without port
and in upper case, an origin 404 passed through, Expect: 100-continue uploads,
and the CLI's human (non --json) output naming the public URL."""

import json

import harness as h

with h.Test("basic", timeout=60) as t:
    edge = t.tunneld()
    org = t.origin()
    cli = t.tunnel(edge, org.port, name="basic")
    ev = cli.online
    t.eq(ev.get("name"), "basic", "online event names the tunnel")
    t.check("basic.%s" % h.DOMAIN in str(ev.get("url", "")), "online event url has the public host",
            ev)
    host = edge.host("basic")

    t.step("curl")
    cp = h.curl(["-o", "-"] + edge.curl_args("basic", "/hello"), timeout=15)
    t.eq((cp.returncode, cp.stdout), (0, b"hello from origin\n"), "curl GET /hello")
    cp = h.curl(["-o", "-", "--data-binary", "ping-pong", "-H", "Content-Type: text/x-test"]
                + edge.curl_args("basic", "/echo"), timeout=15)
    t.eq((cp.returncode, cp.stdout), (0, b"ping-pong"), "curl POST /echo")
    body = h.pattern_bytes(3 * 1024 * 1024 + 1, 11)
    cp = h.curl(["-o", "-", "-X", "POST", "-T", "-"] + edge.curl_args("basic", "/sha256"),
                input=body, timeout=30)
    got = json.loads(cp.stdout or b"{}")
    t.eq((cp.returncode, got.get("length"), got.get("sha256")),
         (0, len(body), h.pattern_sha256(len(body), 11)),
         "curl chunked upload with Expect: 100-continue (3 MiB)")
    cp = h.curl(["-o", "-", "-w", "\\n%{http_code}"] + edge.curl_args("basic", "/nope"), timeout=15)
    t.eq(cp.stdout.rsplit(b"\n", 1)[-1], b"404", "origin's own 404 passes through")
    t.check(b"origin: no such path /nope" in cp.stdout, "origin's 404 body passes through",
            cp.stdout[:200])

    t.step("raw requests")
    r = h.request(edge.port, "GET", "/hello", "basic.%s" % h.DOMAIN)
    t.eq(r.status, 200, "Host without port")
    r = h.request(edge.port, "GET", "/hello", edge.host("BASIC").replace(h.DOMAIN, h.DOMAIN.upper()))
    t.eq(r.status, 200, "Host in upper case")
    r = h.request(edge.port, "HEAD", "/hello", host)
    t.eq((r.status, r.header("Content-Length"), r.body), (200, "18", b""), "HEAD /hello")
    r = h.request(edge.port, "GET", "/chunked?n=300000&seed=4&chunk=1000", host)
    t.eq(r.body, h.pattern_bytes(300000, 4), "chunked response body exact")

    with t.part("keep-alive"):
        with h.HttpConn(edge.port, timeout=5) as c:
            ok = []
            for i in range(5):
                c.send(h.build_request("GET", "/bytes?n=%d&seed=%d" % (1000 * i + 1, i), host))
                r = c.read_response()
                ok.append(r.status == 200 and r.body == h.pattern_bytes(1000 * i + 1, i))
            t.eq(ok, [True] * 5, "5 requests on one keep-alive connection")

    with t.part("pipelining"):
        with h.HttpConn(edge.port, timeout=5) as c:
            c.send(h.build_request("POST", "/echo", host, body=b"first")
                   + h.build_request("GET", "/hello", host)
                   + h.build_request("POST", "/echo", host, body=b"third"))
            rs = []
            for _ in range(3):
                rs.append(c.read_response())
                h.log("pipelined response %d: %d %r" % (len(rs), rs[-1].status, rs[-1].body[:20]))
            t.eq([(r.status, r.body) for r in rs],
                 [(200, b"first"), (200, b"hello from origin\n"), (200, b"third")],
                 "3 pipelined requests answered in order")

    t.step("human output")
    org2 = t.origin()
    hum = t.tunnel(edge, org2.port, name="human", json_out=False, wait_online=False)
    line = hum.wait_line(lambda l: "human.%s" % h.DOMAIN in l, 15)
    t.check(line is not None, "human output prints the public URL",
            hum.stdout_text()[-500:] + hum.stderr_text()[-500:])
    r = h.request(edge.port, "GET", "/hello", edge.host("human"))
    t.eq(r.status, 200, "second tunnel on the same edge serves")
    # stdout is a pipe here: request lines are flushed within 100 ms, not held
    line = hum.wait_line(lambda l: l.startswith("GET") and "/hello" in l and " 200 " in l, 3)
    t.check(line is not None, "the request line reaches a pipe promptly", hum.stdout_text()[-300:])
