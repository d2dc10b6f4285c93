# tunneld, Warren's edge, as a small Debian 12 image.
#
#   docker build -t warren-tunneld .
#   export TUNNELD_SECRET="$(openssl rand -hex 32)"
#   docker run --rm -p 8080:8080 -e TUNNELD_DOMAIN=localhost -e TUNNELD_SECRET warren-tunneld
#
# Configuration is by environment only (every flag has a TUNNELD_* twin, see
# `tunneld --help`); the image sets no flags. Ports: 8080 public HTTP and the
# tunnel control WebSocket, 7000 peer links between edges (--peer-listen, a
# private address only), 9090 /healthz, /readyz and /metrics (--admin-listen,
# 127.0.0.1:9090 unless set; the health check below needs it on 127.0.0.1 or
# a wildcard). Deployments: fly.toml, deploy/k8s/, deploy/compose/.
#
# tests/deploy/dockerfile_steps.sh runs the build stage's steps as a script in
# CI, so keep that stage to FROM, ARG, ENV, WORKDIR, COPY and shell-form RUN.

FROM debian:12-slim AS build
# Where `meson install` stages the files the runtime stage copies.
ARG STAGE=/stage
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# The dependency list lives in one place; this layer is cached until it changes.
COPY deploy/install-deps.sh deploy/install-deps.sh
RUN deploy/install-deps.sh --build-only
COPY . .
RUN meson setup build-release --buildtype=release --prefix=/usr/local \
    && ninja -C build-release \
    && meson install -C build-release --no-rebuild --destdir "$STAGE"

FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
# Only the shared libraries tunneld links (and the master-role store's SQLite),
# plus curl for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libwebsockets17 libssl3 libc-ares2 libsodium23 libjansson4 libhttp-parser2.9 \
        libsqlite3-0 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 warren \
    && useradd --system --uid 10001 --gid warren --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin warren
COPY --from=build /stage/usr/local/ /usr/local/
# Fly.io only: fills TUNNELD_PEER_LISTEN from FLY_PRIVATE_IP (fly.toml runs it).
COPY deploy/fly-entrypoint.sh /usr/local/bin/fly-entrypoint.sh
USER 10001:10001
EXPOSE 8080 7000 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:9090/healthz || exit 1
ENTRYPOINT ["tunneld"]
