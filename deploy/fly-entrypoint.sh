#!/bin/sh
# Entrypoint of tunneld on Fly.io (fly.toml: [experimental] entrypoint).
# fly.toml cannot interpolate variables, and the peer listener must bind this
# Machine's own 6PN address (FLY_PRIVATE_IP, a private fdaa::/16 address), not
# a wildcard that would also face the public side. So when TUNNELD_PEER_LISTEN
# is not set, it is made from FLY_PRIVATE_IP here; then tunneld replaces this
# shell and receives the signals itself.
set -eu
if [ -z "${TUNNELD_PEER_LISTEN:-}" ] && [ -n "${FLY_PRIVATE_IP:-}" ]; then
    case "$FLY_PRIVATE_IP" in
    *:*) TUNNELD_PEER_LISTEN="[$FLY_PRIVATE_IP]:7000" ;;
    *) TUNNELD_PEER_LISTEN="$FLY_PRIVATE_IP:7000" ;;
    esac
    export TUNNELD_PEER_LISTEN
fi
exec tunneld "$@"
