#!/bin/sh
# Entrypoint of tunneld in deploy/compose: the peer listener must bind the
# container's own address on the compose network (a private 172.16/12 or
# 192.168/16 address), which is known only at run time. When
# TUNNELD_PEER_LISTEN is not set, take the first IPv4 address `hostname -i`
# gives (else the first IPv6 one), then let tunneld replace this shell.
set -eu
if [ -z "${TUNNELD_PEER_LISTEN:-}" ]; then
    addr=""
    for a in $(hostname -i); do
        case "$a" in
        *:*) [ -n "$addr" ] || addr="[$a]" ;;
        *) addr="$a"; break ;;
        esac
    done
    if [ -z "$addr" ]; then
        echo "entrypoint: hostname -i gave no address; set TUNNELD_PEER_LISTEN" >&2
        exit 1
    fi
    TUNNELD_PEER_LISTEN="$addr:7000"
    export TUNNELD_PEER_LISTEN
fi
exec tunneld "$@"
