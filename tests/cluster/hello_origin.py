#!/usr/bin/python3
"""A minimal keep-alive HTTP/1.1 origin for the fleet benchmark: one asyncio
loop answers every request head with 200 and a 28-byte body. Request bodies
are not supported (GET only). It costs far less per request than origin.py
(a thread per connection), so a tunnelled path, not the origin, is what the
benchmark measures.

    hello_origin.py --port P [--host 127.0.0.1]
"""

import argparse
import asyncio
import sys

BODY = b"hello from the bench origin\n"
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
        % len(BODY)) + BODY
MAX_HEAD = 64 * 1024


class Hello(asyncio.Protocol):
    def connection_made(self, transport):
        self.tr = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.tr.write(RESP * n)
        elif len(self.buf) > MAX_HEAD:
            self.tr.close()


async def main(host, port):
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(Hello, host, port, backlog=1024, reuse_address=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    try:
        asyncio.run(main(a.host, a.port))
    except KeyboardInterrupt:
        pass
    sys.exit(0)
