#!/usr/bin/python3
"""TCP connect scan of one address: every port from 1 to 65535, many
non-blocking connects in flight at once. Used by test_exposure.py from
inside a visitor namespace, against an address of another namespace the
test created; never run it against anything else.

    portscan.py ADDRESS [--first 1] [--last 65535] [--inflight 2048] [--timeout 3]

Prints one JSON object: {"addr", "open": [ports], "refused": N,
"timed_out": [ports], "errors": {errno name: N}, "seconds": S}. A port is
open when the connect completes, refused on RST; a port that neither
answers nor refuses within the timeout is reported as timed out.
"""

import argparse
import errno
import json
import resource
import selectors
import socket
import sys
import time


def scan(addr, first, last, inflight, timeout):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, inflight + 64))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    inflight = min(inflight, want - 64)
    sel = selectors.DefaultSelector()
    res = {"addr": addr, "open": [], "refused": 0, "timed_out": [], "errors": {}}
    pending = {}  # fd -> (socket, port, deadline)
    next_port = first
    t0 = time.monotonic()

    def start(port):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        # RST instead of a FIN handshake when an open port is closed again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        rc = s.connect_ex((addr, port))
        if rc in (0, errno.EINPROGRESS):
            pending[s.fileno()] = (s, port, time.monotonic() + timeout)
            sel.register(s, selectors.EVENT_WRITE)
        else:
            finish(s, port, rc)

    def finish(s, port, rc):
        if rc == 0:
            res["open"].append(port)
        elif rc == errno.ECONNREFUSED:
            res["refused"] += 1
        else:
            name = errno.errorcode.get(rc, str(rc))
            res["errors"][name] = res["errors"].get(name, 0) + 1
        s.close()

    while next_port <= last or pending:
        while next_port <= last and len(pending) < inflight:
            start(next_port)
            next_port += 1
        for key, _ in sel.select(0.2):
            s, port, _ = pending.pop(key.fd)
            sel.unregister(s)
            finish(s, port, s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
        now = time.monotonic()
        for fd in [fd for fd, (_, _, d) in pending.items() if d < now]:
            s, port, _ = pending.pop(fd)
            sel.unregister(s)
            res["timed_out"].append(port)
            s.close()
    res["open"].sort()
    res["timed_out"].sort()
    res["seconds"] = round(time.monotonic() - t0, 3)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--last", type=int, default=65535)
    ap.add_argument("--inflight", type=int, default=2048)
    ap.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args()
    print(json.dumps(scan(a.addr, a.first, a.last, a.inflight, a.timeout)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
