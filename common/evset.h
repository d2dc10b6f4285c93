/*
 * evset: many sockets in one epoll set, which sits in the libwebsockets loop
 * as a single raw file.
 *
 * Debian's libwebsockets 4.1.6 scans its whole descriptor table each time it
 * closes a socket (an assertion left on: about 1 ns per entry, and the table
 * is as large as the open-files limit) and polls every descriptor it holds on
 * every turn. Short-lived, numerous connections (the edge's visitors) live
 * here instead: their descriptors never enter lws's table, closing one is a
 * close(), and a turn of the loop costs one epoll_wait for all of them.
 *
 * Events are delivered as lws delivers them to a raw file: EV_WRITE when the
 * owner asked for it, EV_READ while reading is on and bytes (or EOF) wait,
 * a close when the peer hung up while reading is off. Returning -1 from
 * EV_READ or EV_WRITE closes the descriptor. Closing is deferred to the end
 * of the turn, so an evfd's memory stays valid for everything that runs in
 * the turn; EV_CLOSE, made once after the descriptor is closed, is where the
 * owner may free it.
 */
#ifndef WARREN_EVSET_H
#define WARREN_EVSET_H

#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

enum ev_event { EV_READ, EV_WRITE, EV_CLOSE };

struct evfd;
typedef int (*evfd_cb)(struct evfd *f, enum ev_event ev);

/* Embedded in its owner; fields are evset's own. */
struct evfd {
    int fd; /* -1 once closed or detached */
    evfd_cb cb;
    struct evset *set;
    uint32_t armed; /* the events registered with epoll */
    bool reading;   /* EV_READ wanted */
    bool write_due; /* EV_WRITE at the end of this turn or on the next */
    bool wait_out;  /* EV_WRITE when the socket takes bytes again */
    bool queued, dead, in_set;
    struct evfd *qnext;       /* the turn's queue */
    struct evfd *prev, *next; /* every member */
};

struct evset;

/* A new set, adopted into vh's loop as a raw file bound to `protocol` with
 * `opaque` as its user data; that protocol's callback hands the raw-file
 * events of the set's wsi to evset_callback. NULL on failure. */
struct evset *evset_new(struct lws_context *ctx, struct lws_vhost *vh, const char *protocol,
                        void *opaque);
/* The raw-file callback of the set's own descriptor. */
int evset_callback(struct evset *s, enum lws_callback_reasons reason);
/* Run what members asked for now instead of on the next turn: for the end
 * of a callback that fed them (a tunnel's WebSocket delivered bytes for
 * many streams). Does nothing inside the set's own turn. */
void evset_flush(struct evset *s);
/* Close every member (EV_CLOSE each) and free the set. */
void evset_free(struct evset *s);
/* Descriptors in the set now. */
unsigned evset_count(const struct evset *s);
/* Inside the set's turn (its events or its queue are being run). */
bool evset_in_turn(const struct evset *s);
/* fn(ud) at the end of each turn: where the owner writes what the members
 * produced in it (a tunnel's WebSocket frames) without waiting for another
 * turn of the loop. */
void evset_on_turn_end(struct evset *s, void (*fn)(void *ud), void *ud);

/* Take fd (non-blocking) into the set: reading on (EVSET_READ), or waiting
 * for a connect to finish (EVSET_CONNECT: EV_WRITE once it did or failed).
 * On failure (-errno) fd is neither taken nor closed. */
#define EVSET_READ 1u
#define EVSET_CONNECT 2u
int evset_add(struct evset *s, struct evfd *f, int fd, evfd_cb cb, unsigned how);
/* EV_READ wanted or not (flow control). Turning it off costs nothing until
 * the descriptor is readable again: most are closed before that. */
void evset_read(struct evfd *f, bool on);
/* EV_WRITE at the end of this turn (or the next turn, when asked from
 * outside the set's events), writable or not. */
void evset_write_soon(struct evfd *f);
/* EV_WRITE once the socket has room: after a write met EAGAIN or was short. */
void evset_write_when_ready(struct evfd *f);
/* Close at the end of the turn; EV_CLOSE follows. */
void evset_close(struct evfd *f);
/* Take the descriptor out of the set without closing it and return it; the
 * evfd then behaves as closed (the owner should evset_close it). */
int evset_detach(struct evfd *f);

#endif
