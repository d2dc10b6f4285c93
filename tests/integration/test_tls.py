"""The CLI over wss://: its own TLS (OpenSSL) on the connection to the edge.

A TLS terminator (Python's ssl module, a self-signed certificate for
`localhost` made with openssl) sits in front of the edge, as a load balancer
or Fly's proxy would. The CLI trusts the certificate through SSL_CERT_FILE,
comes online, and carries 30 MiB each way byte-exact. It also finds the
certificate in a hashed directory (SSL_CERT_DIR made with `openssl rehash`,
as Debian's /etc/ssl/certs is), which it reads one issuer at a time instead
of parsing a whole bundle. Without the certificate trusted, or with a URL
whose host the certificate does not name, it refuses to connect and says
why."""

import os
import socket
import ssl
import subprocess
import threading

import harness as h

MIB = 1024 * 1024


class TlsTerminator:
    """Accepts TLS on a free loopback port and relays plaintext to target_port."""

    def __init__(self, cert, key, target_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.target = target_port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(10)
            t = self.ctx.wrap_socket(c, server_side=True)
            t.settimeout(None)
            u = socket.create_connection(("127.0.0.1", self.target))
        except (OSError, ssl.SSLError):
            c.close()
            return
        threading.Thread(target=self._pump, args=(u, t), daemon=True).start()
        self._pump(t, u)

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                b = src.recv(256 * 1024)
                if not b:
                    break
                dst.sendall(b)
        except (OSError, ssl.SSLError):
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.ls.close()


with h.Test("tls", timeout=120) as t:
    cert, key = t.path("cert.pem"), t.path("key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost"], capture_output=True, timeout=30)
    t.require(r.returncode == 0, "openssl made a certificate", r.stderr.decode()[-300:])
    edge = t.tunneld()
    org = t.origin()
    term = TlsTerminator(cert, key, edge.port)

    t.step("trusted certificate: online over wss://")
    env = t.child_env({"SSL_CERT_FILE": cert})
    cli = t.tunnel("wss://localhost:%d" % term.port, org.port, name="secure", env=env)
    host = edge.host("secure")
    n = 30 * MIB
    r, got, secs = h.download_sha256(edge.port, "/bytes?n=%d&seed=5" % n, host, timeout=60)
    t.eq((r.status, r.body_len, got), (200, n, h.pattern_sha256(n, 5)), "download byte-exact")
    r, secs = h.upload_chunked_sha256(edge.port, "/sha256", host, n, 6, timeout=60)
    res = r.json() if r.status == 200 else {}
    t.eq((r.status, res.get("length"), res.get("sha256")), (200, n, h.pattern_sha256(n, 6)),
         "upload byte-exact")
    cli.stop()
    t.eq(cli.rc, 0, "CLI exits 0 on SIGTERM")

    t.step("trusted through a hashed directory (SSL_CERT_DIR, no SSL_CERT_FILE)")

    def hashed_dir(name, pem):
        d = t.path(name)
        os.makedirs(d)
        with open(pem) as src, open(os.path.join(d, "edge.pem"), "w") as dst:
            dst.write(src.read())
        r = subprocess.run(["openssl", "rehash", d], capture_output=True, timeout=30)
        t.require(r.returncode == 0, "openssl rehash " + name, r.stderr.decode()[-300:])
        return d

    def dir_env(d):
        e = t.child_env({"SSL_CERT_DIR": d})
        e.pop("SSL_CERT_FILE", None)
        return e

    good_dir = hashed_dir("certs-good", cert)
    cli = t.tunnel("wss://localhost:%d" % term.port, org.port, name="hashed", env=dir_env(good_dir))
    n = 4 * MIB
    r, got, secs = h.download_sha256(edge.port, "/bytes?n=%d&seed=7" % n, edge.host("hashed"),
                                     timeout=60)
    t.eq((r.status, r.body_len, got), (200, n, h.pattern_sha256(n, 7)), "download byte-exact")
    cli.stop()
    other_cert, other_key = t.path("other.pem"), t.path("other-key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        other_key, "-out", other_cert, "-days", "2", "-subj", "/CN=localhost"],
                       capture_output=True, timeout=30)
    t.require(r.returncode == 0, "openssl made a second certificate", r.stderr.decode()[-300:])
    bad_dir = hashed_dir("certs-other", other_cert)
    bad = t.tunnel("wss://localhost:%d" % term.port, org.port, name="hashed-other", json_out=False,
                   wait_online=False, env=dir_env(bad_dir), label="hashed-other")
    t.check(h.wait_until(lambda: "not trusted" in bad.stderr_text(), 10),
            "a directory with another certificate of the same name: not trusted",
            bad.stderr_text()[-400:])
    bad.stop()

    t.step("untrusted certificate: refused, with the reason")
    bad = t.tunnel("wss://localhost:%d" % term.port, org.port, name="untrusted", json_out=False,
                   wait_online=False, env=t.child_env({"SSL_CERT_FILE": "/nonexistent"}),
                   label="untrusted")
    t.check(h.wait_until(lambda: "not trusted" in bad.stderr_text(), 10),
            "the CLI says the certificate is not trusted", bad.stderr_text()[-400:])
    t.check("online" not in bad.stdout_text() + bad.stderr_text().replace("not trusted", ""),
            "and never comes online")
    bad.stop()

    t.step("certificate for another name: refused")
    other = t.tunnel("wss://127.0.0.1:%d" % term.port, org.port, name="mismatch", json_out=False,
                     wait_online=False, env=env, label="mismatch")
    t.check(h.wait_until(lambda: "mismatch" in other.stderr_text(), 10),
            "the CLI says the address does not match", other.stderr_text()[-400:])
    other.stop()
    term.close()
