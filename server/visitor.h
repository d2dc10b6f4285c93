/*
 * visitor: one public TCP connection. It reads request heads, checks and
 * routes them (a tunnel name, or a control upgrade handed to session.c), frames every
 * request with hmsg, forwards rewritten heads and bodies into a mux stream of
 * the tunnel's session, writes the stream's bytes back, and answers errors
 * itself (404, 400, 408, 421, 431, 502, 503, 504). After a 101 it is a raw
 * two-way pipe.
 */
#ifndef WARREN_SERVER_VISITOR_H
#define WARREN_SERVER_VISITOR_H

#include <stdint.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "mux.h"

struct edge;
struct visitor;

/* A listener accepted fd: adopt it into the loop. Closes fd on failure. */
void visitor_accept(struct edge *e, int fd, const struct sockaddr *sa, socklen_t salen);

/* mux stream events (stream user data is the visitor). */
void visitor_stream_readable(struct visitor *v);
void visitor_stream_writable(struct visitor *v);
void visitor_stream_closed(struct visitor *v, uint16_t code);

/* Drain: close idle connections now, the others after their current response. */
void visitor_drain_all(struct edge *e);

#endif
