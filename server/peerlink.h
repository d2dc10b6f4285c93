/*
 * peerlink: authenticated TCP links between the edges of a fleet
 * (docs/fleet.md, "Peer links").
 *
 * Each edge listens on --peer-listen and dials every peer address that
 * discovery reports (one outbound link per peer, reconnected with backoff).
 * A link starts with a mutual challenge-response over the fleet key: the
 * acceptor sends a fresh nonce, the dialer's HMAC covers it (with its
 * instance id, a timestamp and its own nonce), the acceptor's answer covers
 * the dialer's nonce; then it carries, as
 * length-prefixed frames: CTL frames (JSON requests and replies, see
 * fleet.c) and a mux of forwarded visitor streams (the dialer opens them).
 * An edge sends its own requests on its outbound links and answers its
 * peers' requests on its inbound links.
 */
#ifndef WARREN_SERVER_PEERLINK_H
#define WARREN_SERVER_PEERLINK_H

#include <stdbool.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "mux.h"
#include "peermsg.h"

struct edge;
struct link;

enum link_state {
    LINK_DOWN,       /* not connected; waiting to retry */
    LINK_REFUSED,    /* the last connect was refused: nothing listens there */
    LINK_CONNECTING, /* TCP connect or handshake in progress */
    LINK_UP,         /* authenticated */
    LINK_SELF,       /* the address leads back to this edge */
};

/* Start the peer listener (cfg->peer_listen). 0 or -1 after logging. */
int peerlink_start(struct edge *e);
/* Discovery changed: dial new peers, drop links to addresses that left. */
void peerlink_sync(struct edge *e);
/* Stop accepting and close every link (drain end / exit). */
void peerlink_stop(struct edge *e);
void peerlink_free(struct edge *e);
int peerlink_callback(struct lws *wsi, enum lws_callback_reasons reason, void *obj);

/* A request needs this link now: dial at once if it is waiting to retry. The
 * result comes as fleet_link_up() or fleet_link_refused(). */
void peerlink_kick(struct link *l);

/* Outbound links, one per known peer address. */
unsigned peerlink_count(const struct edge *e);
struct link *peerlink_get(const struct edge *e, unsigned i);
enum link_state peerlink_state(const struct link *l);
const char *peerlink_addr(const struct link *l);     /* "[fdaa::2]:7000" */
const char *peerlink_instance(const struct link *l); /* peer's instance id once up, else "" */

/* Queue a control message (encoded as JSON; not consumed). 0, -ENOTCONN when
 * the link is not up, -ENOBUFS when its control queue is full. */
int peerlink_send(struct link *l, const struct peermsg *msg);
/* Open a stream to the peer over an up outbound link (visitor forwarding). */
mux_stream *peerlink_open_stream(struct link *l, const struct frame_open *o, void *ud);

#endif
