/*
 * admin: the edge's operations endpoint on --admin-listen (default
 * 127.0.0.1:9090): GET /healthz, GET /readyz, GET /metrics (Prometheus text
 * format 0.0.4). Plain HTTP/1.1 with keep-alive, no TLS, no authentication:
 * bind it to a loopback or private address. docs/operations.md lists the
 * answers and every metric.
 *
 * The listening socket and every admin connection are adopted into the edge's
 * lws loop as raw files whose opaque data starts with struct raw_obj
 * {RAW_ADMIN}; edge.c's raw callback hands those to admin_callback().
 */
#ifndef WARREN_SERVER_ADMIN_H
#define WARREN_SERVER_ADMIN_H

#include <libwebsockets.h>

#include "config.h"

struct edge;
struct raw_obj;
struct admin;

/* Bind la (SO_REUSEADDR only: a port in use is an error, never shared), listen
 * and adopt the socket into e's loop (e->ctx and e->vh must exist). NULL after
 * logging one error line that names the address. */
struct admin *admin_new(struct edge *e, const struct listen_addr *la);

/* Free what lws does not own. Call after lws_context_destroy(), which closes
 * the listener and every admin connection (their close callbacks still need
 * *a). Accepts NULL. */
void admin_free(struct admin *a);

/* The raw-file callback for objects of kind RAW_ADMIN (the listener or a
 * connection). Returns what the lws callback must return. */
int admin_callback(struct lws *wsi, enum lws_callback_reasons reason, struct raw_obj *o);

#endif
