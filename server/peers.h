/*
 * peers: the fleet's member addresses, from the A and AAAA records of the
 * --peers-dns name, resolved with c-ares inside the lws event loop (never a
 * blocking call). The set is re-resolved when the records' TTL runs out
 * (clamped to 2..30 s), 2 s after a failed resolution, and on demand
 * (peers_refresh). A failed resolution (server dead, timeout, refused) keeps
 * the last known set: a DNS hiccup never empties the fleet. A name that does
 * not exist (NXDOMAIN) or has no addresses gives an empty set.
 */
#ifndef WARREN_SERVER_PEERS_H
#define WARREN_SERVER_PEERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <libwebsockets.h>

struct fleet_stats;
struct peers;

#define PEERS_MAX 256    /* addresses kept; more records are ignored (logged once) */
#define PEERS_MAX_SELF 8 /* own addresses to exclude */

struct peers_ops {
    /* The set of peer addresses changed. Called from a timer of its own (never
     * from inside peers_* or c-ares), so it may call any peers_* function,
     * peers_free included. */
    void (*on_change)(void *ud);
};

/*
 * Start resolving name (first query on the next loop turn). ctx/vh: the loop
 * and the vhost whose WARREN_RAW_PROTOCOL dispatches RAW_DNS to
 * peers_callback. dns_server: "" for resolv.conf's servers, else "IP:PORT" or
 * "[IPv6]:PORT" (then /etc/hosts is not consulted either). port: the peer
 * port every edge listens on, set in every address returned. self[0..nself):
 * our own addresses (nself <= PEERS_MAX_SELF); any resolved address with the
 * same IP is left out, whatever the port. ops may be NULL. stats (may be NULL)
 * gets dns_resolutions (completed resolutions, failed ones included),
 * dns_failures (resolutions that kept the previous set) and peers_known.
 * Returns NULL after logging the reason.
 */
struct peers *peers_new(struct lws_context *ctx, struct lws_vhost *vh, const char *name,
                        const char *dns_server, uint16_t port, const struct sockaddr_storage *self,
                        unsigned nself, const struct peers_ops *ops, void *ud,
                        struct fleet_stats *stats);
/* Stop, cancel queries and timers, release the sockets. Call it before
 * lws_context_destroy(). NULL is fine. */
void peers_free(struct peers *p);

/* Resolve again soon (after a lookup miss). Coalesced and rate-limited: at
 * most one resolution in flight, starts at least 1 s apart. */
void peers_refresh(struct peers *p);

/* The current set, sorted (IPv4 before IPv6, then by address), no duplicates.
 * peers_addr: i < peers_count(), else NULL; the pointer stays valid until
 * control returns to the event loop. */
/* True once a resolution completed (the set, even empty, is DNS's answer):
 * before that the fleet is unknown, and claims must not be granted. */
bool peers_ready(const struct peers *p);
unsigned peers_count(const struct peers *p);
const struct sockaddr_storage *peers_addr(const struct peers *p, unsigned i);

/* Raw-file callback for a c-ares socket (opaque user data of kind RAW_DNS). */
int peers_callback(struct lws *wsi, enum lws_callback_reasons reason, void *obj);

#endif
