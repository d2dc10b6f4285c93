#!/usr/bin/python3
"""Seed inputs for the fuzz targets peer_record, peer_msg, config and hobs.

    /usr/bin/python3 tests/fuzz/seeds.py OUTDIR

writes OUTDIR/TARGET/seed-NAME files: well-formed messages of every kind
(so the fuzzer starts from the accepting paths: records sealed and hellos
signed with the fuzz targets' fixed key, bytes 0..31), plus a few broken
ones. The checked-in corpora (tests/fuzz/corpus/TARGET) are these seeds and
what the fuzzers found from them, minimised with libFuzzer's -merge=1
(tests/fuzz/run-fuzzers.sh --merge). Deterministic: the same files each run.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

KEY = bytes(range(32))
PEER_NONCE = "oKGio6SlpqeoqaqrrK2urw"  # the nonce the fuzz targets verify against


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def frame(ftype, stream, payload=b""):
    return bytes([ftype]) + struct.pack(">I", stream) + payload


def prefixed(f):
    return struct.pack(">I", len(f)) + f


def sealed(f, seq):
    ct = ChaCha20Poly1305(KEY).encrypt(bytes(4) + struct.pack(">Q", seq), f, None)
    return struct.pack(">I", len(ct)) + ct


def ctl(obj):
    return frame(6, 0, json.dumps(obj, separators=(",", ":")).encode())


def signed(kind, instance, ts, nonce_bytes, peer_nonce=PEER_NONCE):
    nonce = b64u(nonce_bytes)
    text = "warren-peer-v1|%s|%s|%d|%s|%s" % (kind, instance, ts, nonce, peer_nonce)
    mac = hmac.new(KEY, text.encode(), hashlib.sha512).digest()[:32]
    return {"type": kind, "v": 1, "instance": instance, "ts": ts, "nonce": nonce, "mac": b64u(mac)}


def open_payload(remote="127.0.0.1:1", name=None, hops=None, proto=1):
    p = bytes([proto, len(remote)]) + remote.encode()
    if name is not None:
        p += bytes([1, len(name)]) + name.encode()
    if hops is not None:
        p += bytes([2, 1, hops])
    return p


def messages():
    nd = bytes(range(0xd0, 0xe0))
    return {
        "challenge": {"type": "peer_challenge", "v": 1, "nonce": b64u(bytes(range(0xa0, 0xb0)))},
        "hello": signed("peer_hello", "edge1", 1700000000123, nd),
        "welcome": signed("peer_welcome", "edge2", 1700000000456, bytes(range(16))),
        "hello_unsigned": dict(signed("peer_hello", "edge1", 1, nd), mac=b64u(bytes(32))),
        "lookup": {"type": "lookup", "id": 1, "name": "demo"},
        "lookup_reserved": {"type": "lookup", "id": 2, "name": "www"},
        "lookup_reply": {"type": "lookup_reply", "id": 1, "have": True, "reserved": False},
        "claim": {"type": "claim", "id": 3, "name": "myapp", "owner": False,
                  "ts": 1700000000789, "instance": "edge3"},
        "claim_owner": {"type": "claim", "id": 4, "name": "myapp", "owner": True, "ts": 5,
                        "instance": ""},
        "claim_reply": {"type": "claim_reply", "id": 3, "ok": True},
        "unknown": {"type": "gossip", "id": 9},
    }


def peer_msg():
    out = {k: json.dumps(v, separators=(",", ":")).encode() for k, v in messages().items()}
    out["not_object"] = b'["lookup"]'
    out["no_type"] = b'{"id":1}'
    out["bad_name"] = b'{"type":"lookup","id":1,"name":"My_App"}'
    out["escapes"] = b'{"type":"lookup","id":1,"name":"de\\u006do"}'
    return out


def peer_record():
    msgs = messages()
    hello = ctl(msgs["hello"])
    out = {}
    # mode 0: plain records, as during the handshake
    out["plain_handshake"] = b"\x00" + prefixed(ctl(msgs["challenge"])) + prefixed(hello)
    out["plain_open_data"] = b"\x00" + prefixed(frame(1, 1, open_payload(name="demo", hops=1))) + \
        prefixed(frame(2, 1, b"GET / HTTP/1.1\r\nHost: demo\r\n\r\n")) + prefixed(frame(3, 1))
    out["plain_too_long"] = b"\x00" + struct.pack(">I", 40000) + b"x" * 8
    out["plain_partial"] = b"\x00" + prefixed(hello)[:-3]
    # mode 1: sealed records, counters 0, 1, 2...
    recs = [ctl(msgs["lookup"]), frame(1, 1, open_payload("[::1]:5", "demo", 1)),
            frame(2, 1, b"x" * 100), frame(5, 1, struct.pack(">I", 65536)),
            frame(4, 1, struct.pack(">H", 1) + b"cancel"), frame(3, 1)]
    out["sealed_stream"] = b"\x01" + b"".join(sealed(f, i) for i, f in enumerate(recs))
    out["sealed_bad_frame"] = b"\x01" + sealed(frame(2, 1), 0)
    out["sealed_short"] = b"\x01" + struct.pack(">I", 20) + bytes(20)
    # mode 2: pieces (u16 length each) to seal and read back
    pieces = [hello, frame(2, 3, b"abc"), b"\x09junk", frame(3, 3)]
    out["roundtrip"] = b"\x02" + b"".join(struct.pack(">H", len(p)) + p for p in pieces)
    return out


def config():
    def cmd(*args, env=()):
        return b"\x00".join([a.encode() for a in args] +
                            [b"\x01" + e.encode() for e in env])
    return {
        "minimal": cmd("--domain", "example.com"),
        "listen": cmd("--domain", "t.example.com", "--listen", "127.0.0.1:8080",
                      "--listen", "[::1]:8080", "--listen=*:9000"),
        "fleet": cmd("--domain", "x.test", "--peers-dns", "app.internal", "--peer-listen",
                     "[fdaa::3]:7000", "--fleet-secret-file", "fleet", "--instance-id", "e1"),
        "fleet_env": cmd(env=("TUNNELD_DOMAIN=d.test", "TUNNELD_PEERS_DNS=p.test",
                              "TUNNELD_PEER_LISTEN=10.0.0.5:7000",
                              "TUNNELD_FLEET_SECRET=" + "f" * 40, "FLY_ALLOC_ID=abc123")),
        "secrets": cmd("--domain", "a.b", "--secret-file", "secret", "--keys", "keys",
                       "--admin-listen", "off"),
        "secret_env": cmd("--domain", "a.b", env=("TUNNELD_SECRET=" + "s" * 32,)),
        "short_secret": cmd("--domain", "a.b", "--secret-file", "short"),
        "numbers": cmd("--domain", "a.b", "--grace-period", "0", "--window", "65536",
                       "--max-streams=65536", "--public-port", "443", "--public-scheme", "https",
                       "--log-level", "debug", "--check-config"),
        "proxy": cmd("--domain", "a.b", "--proxy-client-ip-header", "Fly-Client-IP",
                     "--dns-server", "127.0.0.1:53"),
        "env_list": cmd(env=("TUNNELD_DOMAIN=a.b", "TUNNELD_LISTEN=127.0.0.1:1,,[::]:2")),
        "help": cmd("--domain", "--help"),
        "bad": cmd("--domain", "A.B", "--listen", "1.2.3.4", "--nope"),
    }


def hobs():
    def req(*lines, body=b""):
        return "\r\n".join(lines).encode() + b"\r\n\r\n" + body
    get = req("GET / HTTP/1.1", "Host: demo.example")
    post = req("POST /p HTTP/1.1", "Host: demo.example", "Content-Length: 5", body=b"hello")
    chunked = req("POST /c HTTP/1.1", "Host: demo", "Transfer-Encoding: chunked",
                  body=b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n")
    upgrade = req("GET /ws HTTP/1.1", "Host: demo", "Connection: Upgrade", "Upgrade: websocket")
    r200 = req("HTTP/1.1 200 OK", "Content-Length: 2", body=b"ok")
    r100 = req("HTTP/1.1 100 Continue")
    rch = req("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\n\r\n")
    r204 = req("HTTP/1.1 204 No Content")
    r101 = req("HTTP/1.1 101 Switching Protocols", "Connection: Upgrade",
               "Upgrade: websocket") + b"\x81\x05hello"
    reof = req("HTTP/1.0 200 OK") + b"until the end"
    return {
        "req_pipeline": b"\x00\x00" + get + post + chunked + b"\r\n" + get,
        "req_upgrade": b"\x00\x00" + upgrade + b"raw bytes",
        "req_small_limits": b"\x02\x00" + get,
        "req_bad": b"\x00\x00GET / HTTP/1.1\nHost: a\n\n",
        "resp_pipeline": b"\x01\x00" + r100 + r200 + rch + r204,
        "resp_head": b"\x01\x03" + r200[:-2] + r200[:-2] + r200,
        "resp_101": b"\x01\x00" + r101,
        "resp_eof": b"\x01\x00" + reof,
        "resp_cut": b"\x01\x00" + r200[:-1],
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: seeds.py OUTDIR")
    for target, seeds in (("peer_msg", peer_msg()), ("peer_record", peer_record()),
                          ("config", config()), ("hobs", hobs())):
        d = os.path.join(sys.argv[1], target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
