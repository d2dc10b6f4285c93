/*
 * session: one tunnel's control WebSocket on the edge. It runs the handshake
 * (HELLO -> WELCOME/ERROR), owns the mux that carries the tunnel's streams,
 * holds the tunnel's name in the registry, and speaks WebSocket itself on
 * the raw socket (control text first, then batches of mux frames).
 */
#ifndef WARREN_SERVER_SESSION_H
#define WARREN_SERVER_SESSION_H

#include <stdbool.h>

#include <libwebsockets.h>

#include "frame.h"
#include "mux.h"

struct edge;
struct ipkey;
struct session;

/* Take over fd, whose upgrade request to /_tunnel was checked by the caller
 * (key: the client address the per-address limits count it as):
 * answer 101 with this Sec-WebSocket-Accept (and the subprotocol when the
 * client asked for it), then speak WebSocket. extra: bytes read after the
 * request head. On failure fd is closed and -ENOMEM returned. */
int session_adopt(struct edge *e, int fd, const char *peer, const struct ipkey *key,
                  const char *accept_key, bool echo_protocol, const uint8_t *extra,
                  size_t extra_len);
/* Raw-file events of a session's socket (edge.c dispatches RAW_SESSION). */
int session_raw_callback(struct lws *wsi, enum lws_callback_reasons reason, struct session *s);

/* Open a stream to the CLI for a visitor. NULL with errno EBUSY when the
 * tunnel has max_streams open, or ENOMEM. */
mux_stream *session_open_stream(struct session *s, const struct frame_open *o, void *visitor);
const char *session_name(const struct session *s);
/* Close the session's WebSocket with this close code (1001 going away on
 * drain, 4000 replaced) after pending control messages are written. */
void session_close(struct session *s, int code, const char *reason);
/* True once WELCOME went out (the name is served here). */
bool session_is_active(const struct session *s);
/* The name moved to another edge (its owner reconnected there): free the
 * name here at once, no reservation, and close the session (4000). */
void session_displace(struct session *s, const char *why);
/* Check every session's deadlines (hello, token refresh, ping, silence);
 * edge.c calls it from its periodic sweep. */
void session_tick(struct edge *e);
/* The end of the visitors' turn (evset.h): write the frames their bytes made
 * for each session now, not on the loop's next turn. */
void session_kick_all(struct edge *e);
/* Close every session (drain). */
void session_close_all(struct edge *e, int code, const char *reason);
/* Free every session's state at context destruction. */
void session_destroy_all(struct edge *e);

#endif
