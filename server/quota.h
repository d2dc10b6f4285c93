/*
 * quota: what the edge refuses to flooding clients, and the counters that
 * show it (docs/operations.md, "Limits"). Owned by the edge; the listener asks
 * it about total connections, visitors about handshakes per address, sessions
 * about tunnels per address.
 */
#ifndef WARREN_SERVER_QUOTA_H
#define WARREN_SERVER_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ipkey.h"

struct quota;

/* Counters for /metrics; they only grow. */
struct quota_stats {
    uint64_t conn_refused;       /* --max-connections: accepted, answered 503, closed */
    uint64_t handshakes_limited; /* --handshake-rate: 429 */
    uint64_t tunnels_refused;    /* --max-tunnels-per-ip: too_many_tunnels */
    uint64_t streams_refused;    /* --max-streams: 503 */
    uint64_t head_timeouts;      /* --head-timeout: 408 */
    uint64_t body_timeouts;      /* --body-timeout / --min-rate on a request body */
    uint64_t send_timeouts;      /* --send-timeout / --min-rate on a response */
    uint64_t accept_pauses;      /* accept() failed for lack of fds or memory: paused */
};

/* nofile: the open-files limit in force, from which --max-connections 0
 * (auto) is derived. NULL on ENOMEM. */
struct quota *quota_new(const struct config *c, unsigned long nofile);
void quota_free(struct quota *l);

struct quota_stats *quota_stats(struct quota *l);

/* Public connections (visitors and tunnel WebSockets) allowed at once. */
unsigned quota_max_connections(const struct quota *l);

/* A WebSocket handshake from k at now_ms: 0 when allowed, else the seconds
 * the client should wait (for Retry-After, >= 1). Counted in the stats. */
unsigned quota_handshake(struct quota *l, const struct ipkey *k, uint64_t now_ms);

/* A tunnel from k wants to open: 0 and counted (undo with
 * quota_tunnel_remove), or -EDQUOT (k holds --max-tunnels-per-ip already;
 * counted in the stats), -ENOSPC / -ENOMEM (the table is full). `replacing`:
 * the tunnel takes over one that k already holds (a reconnect), so it may
 * exceed the limit by that one. */
int quota_tunnel_add(struct quota *l, const struct ipkey *k, bool replacing);
void quota_tunnel_remove(struct quota *l, const struct ipkey *k);
unsigned quota_tunnels_of(const struct quota *l, const struct ipkey *k);

/* True at most once per `every_ms` for the same `what` slot: for warnings
 * that a flood would otherwise repeat on every event. */
enum quota_warn { QUOTA_WARN_CONNECTIONS, QUOTA_WARN_ACCEPT, QUOTA_WARN_N };
bool quota_warn_due(struct quota *l, enum quota_warn what, uint64_t now_ms, uint64_t every_ms);

#endif
