/*
 * listener: a listening socket we create ourselves (lws's vhost binding has
 * an address bug with IPv6 enabled), adopted into the loop as a raw file;
 * each readable event accepts a bounded batch of connections.
 */
#ifndef WARREN_SERVER_LISTENER_H
#define WARREN_SERVER_LISTENER_H

#include <libwebsockets.h>

#include "config.h"

struct edge;
struct listener;

/* Bind and listen (SO_REUSEADDR, SO_REUSEPORT; IPv6 sockets are v6-only
 * unless the address is the any-address). NULL after logging why. */
struct listener *listener_new(struct edge *e, const struct listen_addr *la);
/* Adopt into the lws loop. 0 or -1. */
int listener_start(struct listener *l);
/* Stop accepting (drain): closes the socket. */
void listener_stop(struct listener *l);
void listener_free(struct listener *l);
int listener_callback(struct lws *wsi, enum lws_callback_reasons reason, struct listener *l);

#endif
