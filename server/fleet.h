/*
 * fleet: what the edges of a fleet ask each other, and the streams they
 * forward (docs/fleet.md).
 *
 * Lookups: a visitor asks for a name this edge does not hold; every peer is
 * asked in parallel with a deadline, the first "have" wins, the owner is
 * cached briefly. Claims: before a tunnel gets a name, every peer is asked;
 * the name is granted only when all of them agree (fail closed), with a
 * deterministic tie-break for two claims of one name at the same moment.
 * Forwarded streams arrive on inbound peer links and are bridged byte for
 * byte to the tunnel's session stream.
 */
#ifndef WARREN_SERVER_FLEET_H
#define WARREN_SERVER_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "mux.h"
#include "peermsg.h"

struct edge;
struct link;
struct fleet_wait;

enum fleet_result {
    FLEET_FOUND,      /* a peer holds the name: forward over *link */
    FLEET_NOT_FOUND,  /* every peer answered: nobody holds it */
    FLEET_RESERVED,   /* nobody serves it, but a peer keeps it for a reconnecting owner */
    FLEET_UNANSWERED, /* some peers did not answer in time */
};

int fleet_new(struct edge *e);
/* Cancel every timer (before the event loop is destroyed); fleet_free after. */
void fleet_quiesce(struct edge *e);
void fleet_free(struct edge *e);

/* Look a name up in the fleet. The callback comes later, never from inside
 * this call. NULL on out of memory. */
typedef void (*fleet_lookup_cb)(void *ud, enum fleet_result r, struct link *owner);
struct fleet_wait *fleet_lookup(struct edge *e, const char *name, fleet_lookup_cb cb, void *ud);
/* Claim a name for a new tunnel: cb(ud, 0) when every peer agreed,
 * -EADDRINUSE when a peer holds it or won a simultaneous claim, -EAGAIN when
 * not every peer answered (retryable). owner: the client proved with a
 * reconnect token that the name is its own (peers then let go of it). */
typedef void (*fleet_claim_cb)(void *ud, int result);
struct fleet_wait *fleet_claim(struct edge *e, const char *name, bool owner, uint64_t ts_ms,
                               fleet_claim_cb cb, void *ud);
/* The waiter is gone (visitor closed, session ended): no callback. */
void fleet_cancel(struct fleet_wait *w);
/* A forward to the cached owner failed: forget it. */
void fleet_forget(struct edge *e, const char *name);

/* From peerlink.c */
void fleet_link_up(struct edge *e, struct link *l, bool outbound);
void fleet_link_down(struct edge *e, struct link *l, bool outbound);
/* A connect made to l was refused: nothing runs there now. */
void fleet_link_refused(struct edge *e, struct link *l);
/* l is being freed (left the fleet): forget every reference to it. */
void fleet_link_gone(struct edge *e, struct link *l);
/* A control message from an authenticated peer (already parsed and checked). */
void fleet_ctl(struct edge *e, struct link *l, bool outbound, const struct peermsg *msg);
int fleet_stream_open(struct edge *e, mux_stream *st, const struct frame_open *o);

/* Stream events of bridged streams (user data tagged RAW_PEER). */
void fleet_bridge_readable(void *side);
void fleet_bridge_writable(void *side);
void fleet_bridge_closed(void *side, uint16_t code);

#endif
