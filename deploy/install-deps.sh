#!/usr/bin/env bash
# Install what Warren needs to build and test, from Debian 12's packages.
# Usage: deploy/install-deps.sh [--build-only]   (run as root)
set -euo pipefail
build=(gcc meson ninja-build pkg-config
       libwebsockets-dev libssl-dev libc-ares-dev libsodium-dev libjansson-dev
       libhttp-parser-dev libsqlite3-dev)
tests=(clang curl openssl python3 python3-websockets python3-yaml python3-cryptography dnsmasq-base iproute2 procps wrk)
pkgs=("${build[@]}")
[ "${1:-}" = "--build-only" ] || pkgs+=("${tests[@]}")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
