#!/usr/bin/python3
"""Bulk transfer through one edge and one tunnel, side by side with direct.

Starts a private nginx (one worker, its own config and temp dir) serving a
256 MiB file and discarding uploads, tunneld and tunnel on loopback, then
runs downloads and uploads with curl, alternating direct and tunnelled, and
prints medians, ratios, and the CPU seconds per GiB of the edge and the CLI.

usage: transfer.py BUILD_DIR [--runs N] [--mib M]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
        location /upload {{ client_max_body_size 0; return 204; }}
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def curl(args):
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "120", "-w",
                          "%{http_code} %{size_download} %{size_upload} %{time_total}"] + args,
                         check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), int(out[1]), int(out[2]), float(out[3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=256)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    tmp = tempfile.mkdtemp(prefix="warren-bench-")
    procs = []
    try:
        os.chmod(tmp, 0o755)
        os.makedirs(f"{tmp}/www")
        size = a.mib * 1024 * 1024
        with open(f"{tmp}/www/big.bin", "wb") as f:
            f.write(os.urandom(size))
        os.chmod(f"{tmp}/www/big.bin", 0o644)
        nport, eport = free_port(), free_port()
        with open(f"{tmp}/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(tmp=tmp, port=nport))
        procs.append(subprocess.Popen(["nginx", "-c", f"{tmp}/nginx.conf", "-p", tmp],
                                      stderr=subprocess.DEVNULL))
        edge = subprocess.Popen([f"{build}/server/tunneld", "--domain", "localhost", "--listen",
                                 f"127.0.0.1:{eport}", "--log-level", "warn"],
                                stderr=subprocess.DEVNULL)
        procs.append(edge)
        wait_port(nport)
        wait_port(eport)
        cli = subprocess.Popen([f"{build}/cli/tunnel", "--port", str(nport), "--local-host",
                                "127.0.0.1", "--subdomain", "bench", "--server",
                                f"ws://127.0.0.1:{eport}", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(cli)
        line = cli.stdout.readline()
        if '"online"' not in line:
            raise RuntimeError(f"tunnel did not come online: {line!r}")
        direct = f"http://127.0.0.1:{nport}"
        tunnel = ["-H", "Host: bench.localhost", f"http://127.0.0.1:{eport}"]
        res = {k: [] for k in ("down_direct", "down_tunnel", "up_direct", "up_tunnel")}
        cpu = {"edge": 0.0, "cli": 0.0}
        moved = 0
        for _ in range(a.runs):
            for kind in ("down", "up"):
                for via in ("direct", "tunnel"):
                    if kind == "down":
                        args = [direct + "/big.bin"] if via == "direct" else \
                            tunnel[:2] + [tunnel[2] + "/big.bin"]
                    else:
                        up = ["-X", "POST", "-H", "Transfer-Encoding: chunked",
                              "--data-binary", f"@{tmp}/www/big.bin"]
                        args = up + ([direct + "/upload"] if via == "direct" else
                                     tunnel[:2] + [tunnel[2] + "/upload"])
                    c0 = (cpu_s(edge.pid), cpu_s(cli.pid))
                    code, down, upb, t = curl(args)
                    c1 = (cpu_s(edge.pid), cpu_s(cli.pid))
                    nbytes = down if kind == "down" else upb
                    if nbytes < size or code not in (200, 204):
                        raise RuntimeError(f"{kind} {via}: status {code}, {nbytes} bytes")
                    res[f"{kind}_{via}"].append(size / t / 2**20)
                    if via == "tunnel":
                        cpu["edge"] += c1[0] - c0[0]
                        cpu["cli"] += c1[1] - c0[1]
                        moved += size
        med = {k: statistics.median(v) for k, v in res.items()}
        gib = moved / 2**30
        print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.2f} runs={a.runs} "
              f"size={a.mib}MiB")
        for kind in ("down", "up"):
            d, t = med[f"{kind}_direct"], med[f"{kind}_tunnel"]
            print(f"{kind}load: direct {d:.0f} MiB/s, tunnel {t:.0f} MiB/s, ratio {t / d:.2f}")
        print(f"cpu per GiB through the tunnel: edge {cpu['edge'] / gib:.2f} s, "
              f"cli {cpu['cli'] / gib:.2f} s")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
