#!/usr/bin/env bash
# Warren side by side with direct nginx, a forwarded fleet path, ssh -R and
# localtunnel, on loopback, in one run (tests/bench/compare.py does the work).
#
# usage: tests/bench/run.sh [--runs N] [--quick] [--build DIR] [--out FILE] [--no-install]
#   --runs N      runs per contender, interleaved; medians (default 3)
#   --quick       smoke check: 1 run, 1 s per wrk point, 32 MiB bulk, 1,000 idle tunnels
#   --build DIR   meson build dir to measure (default build-bench, set up as
#                 -Dbuildtype=release when it does not exist; an existing one is
#                 rebuilt with ninja as configured)
#   --out FILE    where the Markdown report goes besides stdout (default DIR/bench.md)
#   --no-install  skip apt-get and npm (everything already installed)
# Other options are passed to compare.py (--seconds, --big-mib, --idle, --only).
#
# On a fresh Debian 12 machine, as root (or with sudo): installs the build and
# test packages (deploy/install-deps.sh), nginx-light, openssh-server and
# -client, Node.js and npm when node is missing, the localtunnel packages from
# tests/bench/package-lock.json into tests/bench/node_modules (npm ci), builds,
# and runs. About 12 minutes with --runs 3 on 2 cores; needs the machine to
# itself for figures worth comparing.
set -euo pipefail
command="tests/bench/run.sh${*:+ $*}"
cd "$(dirname "$0")/../.."
src=$PWD
runs=3
quick=0
build="build-bench"
out=""
install=1
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --build) build="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) extra+=("$1"); shift ;;
    esac
done
[ -n "$out" ] || out="$build/bench.md"

if [ "$install" -eq 1 ]; then
    deploy/install-deps.sh
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    need=()
    for p in nginx-light openssh-server openssh-client wrk curl dnsmasq-base python3-websockets procps; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    # Node.js: Debian's unless one is installed already (a packaged newer one stays)
    command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
    fi
    # npm ci only when node_modules does not match the lock file
    if ! cmp -s tests/bench/package-lock.json tests/bench/node_modules/.package-lock.json.src 2>/dev/null; then
        (cd tests/bench && npm ci --no-audit --no-fund --ignore-scripts)
        cp tests/bench/package-lock.json tests/bench/node_modules/.package-lock.json.src
    fi
fi

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dbuildtype=release
fi
ninja -C "$build"

args=(--build "$build" --runs "$runs" --out "$out" --command "$command")
[ "$quick" -eq 0 ] || args+=(--quick)
exec /usr/bin/python3 "$src/tests/bench/compare.py" "${args[@]}" "${extra[@]}"
