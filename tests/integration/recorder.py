"""A recording origin for the smuggling scenarios: a raw-socket HTTP/1.1
server that keeps, per connection, every byte it received, and every request
it parsed out of those bytes (method, target, version, headers, body).

It runs inside the test process (threads), so a scenario reads its records
directly. Its parser is deliberately lenient, like many application servers:
LF alone ends a line, header names are trimmed, Transfer-Encoding wins over
Content-Length, a chunk size is read up to ';' or whitespace. A lenient
parser behind the edge is what turns an ambiguity the edge let through into
a second request, so it is the right witness: if it ever parses a request the
edge did not log, or a request meant for another tunnel, the edge leaked.

Answers, chosen by the request target:
  .../upgrade   with an Upgrade header: 101, then echoes every byte back
  .../rogue-101 101 although nothing asked for an upgrade, then echoes
  anything else 200 with "X-Recorder: <name>" and body "rec=<name> n=<number>\\n"
A request with "Connection: close" (or HTTP/1.0 without keep-alive) is
answered with "Connection: close", and nothing after it is parsed (RFC 9112
section 9.6); bytes that still arrive are recorded as unparsed.
"""

import socket
import threading
import time

MAX_HEAD = 64 * 1024


class Request:
    def __init__(self, conn, method, target, version, headers, raw_head):
        self.conn = conn
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # [(name, value)] as received
        self.raw_head = raw_head
        self.body = b""  # decoded body (chunk framing removed)
        self.complete = False  # the whole body arrived

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def __repr__(self):
        return "<%s %s %s body=%r%s>" % (self.method, self.target, self.version, self.body[:60],
                                         "" if self.complete else " INCOMPLETE")


class Conn:
    def __init__(self, cid):
        self.id = cid
        self.raw = bytearray()  # every byte received, in order
        self.upgraded = bytearray()  # bytes received after a 101
        self.unparsed = bytearray()  # bytes received after a close-delimited request
        self.closed = False
        self.error = ""


class _Incomplete(Exception):
    pass


class Recorder:
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.conns = []
        self.requests = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self._stop = threading.Event()
        self._socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    # -- state seen by the test
    def snapshot(self):
        with self.lock:
            return len(self.conns), len(self.requests)

    def since(self, snap):
        with self.lock:
            return list(self.conns[snap[0]:]), list(self.requests[snap[1]:])

    def all_closed(self):
        with self.lock:
            return all(c.closed for c in self.conns)

    def close(self):
        self._stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    # -- server
    def _accept(self):
        while not self._stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                c = Conn(len(self.conns))
                self.conns.append(c)
                self._socks.append(s)
            threading.Thread(target=self._serve, args=(s, c), daemon=True).start()

    def _serve(self, s, c):
        s.settimeout(60)
        rd = _Reader(s, c, self.lock)
        try:
            self._requests(s, c, rd)
        except (_Incomplete, ConnectionResetError):
            # the stream was cut: the CLI resets its connection to the
            # application so that the cut is seen (docs/http.md); what arrived
            # is recorded, and a reset is not a parse error
            pass
        except (OSError, ValueError) as e:
            c.error = "%s: %s" % (type(e).__name__, e)
        finally:
            # keep reading until EOF so that every byte that arrives is recorded
            try:
                while rd.fill():
                    pass
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
            with self.lock:
                c.closed = True

    def _requests(self, s, c, rd):
        n = 0
        while True:
            # empty lines before a request are skipped (RFC 9112 2.2)
            while True:
                while not rd.buf:
                    if not rd.fill():
                        return
                if rd.buf[:2] == b"\r\n":
                    del rd.buf[:2]
                elif rd.buf[:1] == b"\n":
                    del rd.buf[:1]
                elif rd.buf[:1] == b"\r" and len(rd.buf) == 1:
                    if not rd.fill():
                        return
                else:
                    break
            head = rd.head()
            req = _parse_head(c, head)
            with self.lock:
                self.requests.append(req)
            n += 1
            self._body(rd, req)
            req.complete = True
            close = _wants_close(req)
            tgt = req.target
            if tgt.endswith("/upgrade") and req.header_all("upgrade") or tgt.endswith("/rogue-101"):
                proto = (req.header_all("upgrade") or ["x-echo"])[0]
                s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          b"Upgrade: " + proto.encode("latin-1") + b"\r\n\r\n")
                rd.upgraded = True
                if rd.buf:
                    s.sendall(bytes(rd.buf))
                    with self.lock:
                        c.upgraded += rd.buf
                    rd.buf.clear()
                while True:
                    d = rd.recv()
                    if not d:
                        return
                    s.sendall(d)
            body = b"rec=%s n=%d\n" % (self.name.encode(), n)
            hdr = (b"HTTP/1.1 200 OK\r\nX-Recorder: %s\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: %d\r\n" % (self.name.encode(), len(body)))
            if close:
                hdr += b"Connection: close\r\n"
            s.sendall(hdr + b"\r\n" + (b"" if req.method == "HEAD" else body))
            if close:
                rd.discard = True
                return

    @staticmethod
    def _body(rd, req):
        te = ",".join(req.header_all("transfer-encoding")).lower()
        cls = req.header_all("content-length")
        if "chunked" in te:
            while True:
                line = rd.line()
                size_txt = line.split(b";")[0].strip()
                size = int(size_txt, 16)
                if size == 0:
                    while rd.line().strip():
                        pass  # trailers
                    return
                req.body += rd.take(size)
                rd.line()
        elif cls:
            req.body += rd.take(int(cls[0].strip()))


def _wants_close(req):
    conn = ",".join(req.header_all("connection")).lower()
    toks = [t.strip() for t in conn.split(",")]
    if "close" in toks:
        return True
    return req.version == "HTTP/1.0" and "keep-alive" not in toks


def _parse_head(c, head):
    lines = head.split(b"\n")
    lines = [x[:-1] if x.endswith(b"\r") else x for x in lines]
    parts = lines[0].split()
    method = parts[0].decode("latin-1") if parts else ""
    target = parts[1].decode("latin-1") if len(parts) > 1 else ""
    version = parts[2].decode("latin-1") if len(parts) > 2 else "HTTP/0.9"
    headers = []
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.partition(b":")
        headers.append((k.strip().decode("latin-1"), v.strip().decode("latin-1")))
    return Request(c, method, target, version, headers, head)


class _Reader:
    """Buffered reads that record every byte in the connection's log."""

    def __init__(self, s, c, lock):
        self.s, self.c, self.lock = s, c, lock
        self.buf = bytearray()
        self.upgraded = False
        self.discard = False

    def recv(self):
        d = self.s.recv(65536)
        if d:
            with self.lock:
                self.c.raw += d
                if self.upgraded:
                    self.c.upgraded += d
                elif self.discard:
                    self.c.unparsed += d
        return d

    def fill(self):
        d = self.recv()
        if not d:
            return False
        if not (self.upgraded or self.discard):
            self.buf += d
        return True

    def head(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            j = self.buf.find(b"\n\n")
            ends = [x + 4 for x in (i,) if x >= 0] + [x + 2 for x in (j,) if x >= 0]
            if ends:
                e = min(ends)
                h = bytes(self.buf[:e])
                del self.buf[:e]
                return h
            if len(self.buf) > MAX_HEAD or not self.fill():
                raise _Incomplete()

    def line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                ln = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return ln
            if len(self.buf) > MAX_HEAD or not self.fill():
                raise _Incomplete()

    def take(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise _Incomplete()
        d = bytes(self.buf[:n])
        del self.buf[:n]
        return d


def wait_all_closed(recorders, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(r.all_closed() for r in recorders):
            return True
        time.sleep(0.02)
    return all(r.all_closed() for r in recorders)
