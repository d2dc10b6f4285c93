/*
 * edge: one tunneld process. Owns the lws context and its single vhost, the
 * listeners, the tunnel registry, auth, counters and the drain state, and
 * dispatches lws callbacks to the module that owns each connection kind.
 */
#ifndef WARREN_SERVER_EDGE_H
#define WARREN_SERVER_EDGE_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "config.h"

struct registry;
struct auth;
struct listener;
struct session;
struct visitor;
struct peers;
struct peerlinks;
struct fleet;
struct admin;
struct quota;

/* Every raw-file connection's opaque user data starts with one of these, so
 * the raw protocol callback knows whose it is. */
enum raw_kind {
    RAW_LISTENER = 1, /* public listener (listener.c) */
    RAW_VISITOR,      /* public connection (visitor.c) */
    RAW_SIGNAL,       /* signal self-pipe (edge.c) */
    RAW_DNS,          /* a c-ares socket (peers.c) */
    RAW_ADMIN,        /* admin listener or connection (admin.c) */
    RAW_PEER,         /* peer listener or link (peerlink.c) */
    RAW_SESSION,      /* a tunnel's control WebSocket (session.c) */
    RAW_EVSET,        /* the epoll set of the visitors (visitor.c, evset.h) */
};
struct raw_obj {
    enum raw_kind kind;
};

/* Lookup latency histogram bucket upper bounds, in microseconds; the last
 * bucket is +Inf. */
#define FLEET_LAT_BUCKETS 12
static const uint32_t fleet_lat_bounds_us[FLEET_LAT_BUCKETS - 1] = {
    250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 250000, 1000000};

struct fleet_stats {
    uint64_t lookups; /* names looked up in the fleet */
    uint64_t lookup_cache_hits;
    uint64_t lookup_found;      /* a peer said yes */
    uint64_t lookup_not_found;  /* everybody answered no: 404 */
    uint64_t lookup_unanswered; /* not everybody answered: 503 */
    uint64_t peers_asked;
    uint64_t forwards, forward_errors, loops_refused;
    uint64_t claims, claims_granted, claims_refused, claims_unanswered;
    uint64_t peer_auth_failures;
    uint64_t lat_buckets[FLEET_LAT_BUCKETS];
    uint64_t lat_sum_us;
    uint64_t dns_resolutions, dns_failures;
    unsigned peers_known, peers_connected;
};

struct edge_stats {
    uint64_t visitors_accepted, requests, tunnels_opened, bytes_in, bytes_out;
    uint64_t errors_404, errors_502, errors_503, errors_504, errors_400;
};

struct edge {
    const struct config *cfg;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct registry *reg;
    struct auth *auth;
    struct listener *listeners[CONFIG_MAX_LISTEN];
    unsigned nlisteners;
    unsigned nvisitors, nsessions;
    struct session *sessions; /* list of all control sessions */
    struct session *kicks;    /* sessions to write at the end of the visitors' turn */
    struct visitor *visitors; /* list of all public connections */
    struct evset *evset;      /* their sockets (evset.h) */
    struct raw_obj evset_obj; /* the set's descriptor in the lws loop */
    uint8_t *txbuf;           /* EDGE_TXBUF: the frames of one session write */
    uint8_t *rxbuf;           /* EDGE_RXBUF: one session read */
    bool draining, stopping, closing_sessions;
    lws_sorted_usec_list_t drain_sul, sweep_sul;
    unsigned sweeps; /* count of sweeps (malloc_trim every 20th) */
    int sigpipe[2];
    struct raw_obj sigobj;
    struct edge_stats stats;
    struct fleet_stats fleet;
    /* fleet (NULL for a lone edge) */
    struct peers *peers;     /* discovery (peers.c) */
    struct peerlinks *links; /* peer links (peerlink.c) */
    struct fleet *fl;        /* lookups, claims, forwarded streams (fleet.c) */
    struct admin *admin;     /* --admin-listen endpoint (admin.c); NULL when off */
    struct quota *quota;     /* connection, handshake and per-address limits (quota.c) */
};

/* Create the edge: lws context, vhost, listeners (bound now, so errors are
 * reported before the loop starts). NULL after logging the reason. */
struct edge *edge_new(const struct config *cfg);
/* Run the event loop until the edge stopped (drained or failed). 0 or -1. */
int edge_run(struct edge *e);
void edge_free(struct edge *e);

/* Begin a graceful drain (SIGTERM). */
void edge_drain(struct edge *e);
/* Called by visitors/sessions when they go away during a drain. */
void edge_check_drained(struct edge *e);

/* Monotonic seconds. */
uint64_t edge_now_ms(void);

/* Bytes of WebSocket frames one session write may carry (several mux frames),
 * and bytes one session read takes. */
#define EDGE_TXBUF (256 * 1024)
#define EDGE_RXBUF (256 * 1024)
#define WARREN_WS_PROTOCOL "warren-tunnel"
#define WARREN_RAW_PROTOCOL "warren-raw"

#endif
