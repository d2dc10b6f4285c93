"""A response cut short must never look complete to the visitor. A body
delimited by the end of the connection (no Content-Length, not chunked) has
only one way to say "cut": a TCP reset. So when the tunnel side fails in the
middle of such a body (the CLI dies: its streams end with session_gone) or
the edge itself dies (SIGKILL), the visitor must see a reset, never a clean
EOF; and a body that did end (the local service closed after the last byte)
must still arrive whole with a clean EOF, even for a visitor that reads the
end of it seconds after the edge closed its side. A Content-Length response
cut short is closed, not kept alive, so the visitor sees the missing bytes
as an error at once. The other way round, a raw pipe after a 101 whose
visitor side is cut (its edge dies) must reach the local service as a reset
from the CLI, not as a clean EOF. Found by tests/cluster/test_chaos.py."""

import signal
import socket
import threading
import time

import harness as h

PIECE = 64 * 1024


class CloseOrigin:
    """A local service that answers every request with pattern bytes:
    GET /close?n=N[&pace_ms=P]: no Content-Length, Connection: close, the
    body in 64 KiB pieces (P ms apart), then close; GET /cl?n=N&pace_ms=P: the
    same with Content-Length, on a keep-alive connection. GET /rawup with
    Upgrade: 101, then read until the connection ends; how it ended ("eof"
    or "reset") and the byte count go to self.raw_ends."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stop = threading.Event()
        self.raw_ends = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                d = c.recv(4096)
                if not d:
                    return
                head += d
            target = head.split(b" ")[1].decode()
            path, _, query = target.partition("?")
            q = dict(kv.split("=") for kv in query.split("&") if "=" in kv)
            n, pace = int(q.get("n", "0")), int(q.get("pace_ms", "0")) / 1000.0
            if path == "/rawup":
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          b"Upgrade: cut-test\r\n\r\n")
                got = len(head.partition(b"\r\n\r\n")[2])
                try:
                    while True:
                        d = c.recv(65536)
                        if not d:
                            self.raw_ends.append(("eof", got))
                            return
                        got += len(d)
                except ConnectionResetError:
                    self.raw_ends.append(("reset", got))
                return
            if path == "/cl":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            else:
                c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            for piece in h.pattern_chunks(n, 5, PIECE):
                c.sendall(piece)
                if pace:
                    time.sleep(pace)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.lsock.close()


def read_to_end(conn, on_bytes=None, timeout=15):
    """Read a response head and then everything until the connection ends.
    Returns (Response, body bytes, how it ended: "eof", "reset" or "timeout")."""
    conn.settimeout(timeout)
    r = conn.read_head()
    body = bytearray(conn.buf)
    conn.buf.clear()
    while True:
        if on_bytes:
            on_bytes(len(body))
        try:
            d = conn.sock.recv(1 << 20)
        except ConnectionResetError:
            return r, bytes(body), "reset"
        except socket.timeout:
            return r, bytes(body), "timeout"
        if not d:
            return r, bytes(body), "eof"
        body += d


def cut_while_reading(t, edge, name, victim, n=64 * 1024 * 1024):
    """GET a slow close-delimited body; SIGKILL victim once 512 KiB arrived."""
    killed = []

    def on_bytes(got):
        if got >= 512 * 1024 and not killed:
            killed.append(time.monotonic())
            victim.send(signal.SIGKILL)
    with h.HttpConn(edge.port, timeout=15) as conn:
        conn.send(h.build_request("GET", "/close?n=%d&pace_ms=20" % n, edge.host(name)))
        r, body, how = read_to_end(conn, on_bytes)
    return r, body, how, killed


with h.Test("cut-responses", timeout=80) as t:
    org = CloseOrigin()
    t.on_teardown(org.close)
    edge = t.tunneld()
    cli = t.tunnel(edge, org.port, name="cut")

    for n in (256 * 1024, 1024 * 1024):
        with t.part("a close-delimited body of %d KiB that ends arrives whole, with a clean EOF"
                    % (n // 1024)):
            # the whole body fits in the socket buffers, but the visitor reads
            # nothing for 4 s: the edge has had the tunnel's FIN and closed
            # (3 s linger) with part of the body still in its send buffer,
            # which must not be thrown away
            with h.HttpConn(edge.port, timeout=15, rcvbuf=64 * 1024) as conn:
                conn.send(h.build_request("GET", "/close?n=%d" % n, edge.host("cut")))
                time.sleep(4)
                r, body, how = read_to_end(conn)
            t.eq((r.status, len(body), how), (200, n, "eof"), "all of it, then a clean EOF")
            t.check(body == h.pattern_bytes(n, 5), "every byte is right")

    with t.part("Content-Length cut short: the connection is closed, not kept alive"):
        victim_org = CloseOrigin()
        t.on_teardown(victim_org.close)
        cli2 = t.tunnel(edge, victim_org.port, name="cutcl", label="tunnel-cl")
        n = 64 * 1024 * 1024
        with h.HttpConn(edge.port, timeout=15) as conn:
            conn.send(h.build_request("GET", "/cl?n=%d&pace_ms=20" % n, edge.host("cutcl")))
            killed = []

            def kill_cli(got):
                if got >= 512 * 1024 and not killed:
                    killed.append(time.monotonic())
                    cli2.send(signal.SIGKILL)
            r, body, how = read_to_end(conn, kill_cli)
        t.eq((r.status, r.header("Content-Length")), (200, str(n)), "a 64 MiB response began")
        t.check(killed and how in ("eof", "reset") and len(body) < n,
                "the visitor sees the connection end short of Content-Length (it ended: %s)" % how,
                "%d of %d bytes" % (len(body), n))
        t.check(killed and time.monotonic() - killed[0] < 5, "at once, not at a timeout")
        t.check(body == h.pattern_bytes(len(body), 5), "the bytes before the cut are right")
        cli2.checked_exit = True

    with t.part("the CLI dies during a close-delimited body: the visitor sees a reset"):
        r, body, how, killed = cut_while_reading(t, edge, "cut", cli)
        t.check(killed, "the CLI was killed mid-body", "%d bytes arrived" % len(body))
        t.eq((r.status, how), (200, "reset"), "the body ends with a reset, not a clean EOF "
             "(%d bytes arrived)" % len(body))
        t.check(body == h.pattern_bytes(len(body), 5), "the bytes before the cut are right")
        cli.checked_exit = True

    with t.part("the edge dies during a close-delimited body: the visitor sees a reset"):
        edge2 = t.tunneld(label="tunneld-2")
        t.tunnel(edge2, org.port, name="cut2", label="tunnel-2")
        r, body, how, killed = cut_while_reading(t, edge2, "cut2", edge2)
        t.check(killed, "the edge was killed mid-body", "%d bytes arrived" % len(body))
        t.eq((r.status, how), (200, "reset"), "the body ends with a reset, not a clean EOF "
             "(%d bytes arrived)" % len(body))
        t.check(body == h.pattern_bytes(len(body), 5), "the bytes before the cut are right")

    with t.part("the edge dies during a raw upload after a 101: the local service sees a reset"):
        edge3 = t.tunneld(label="tunneld-3")
        t.tunnel(edge3, org.port, name="cut3", label="tunnel-3")
        with h.HttpConn(edge3.port, timeout=10) as conn:
            conn.send(h.build_request("GET", "/rawup", edge3.host("cut3"),
                                      [("Connection", "Upgrade"), ("Upgrade", "cut-test")]))
            r = conn.read_head()
            t.eq(r.status, 101, "the upgrade was accepted")
            for piece in h.pattern_chunks(256 * 1024, 6, 16 * 1024):
                conn.send(bytes(piece))
            time.sleep(0.5)
            edge3.send(signal.SIGKILL)
            t.eq(edge3.wait_exit(5), -signal.SIGKILL, "the edge was killed mid-pipe")
        t.check(h.wait_until(lambda: org.raw_ends, 5), "the local service's connection ended")
        t.eq(org.raw_ends[:1] and org.raw_ends[0][0], "reset",
             "it ended with a reset, not a clean EOF (%r)" % org.raw_ends)
