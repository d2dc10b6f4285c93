/*
 * lwsraw: put a socket or pipe we own into the libwebsockets loop as a raw
 * file, so our own code reads and writes it (listeners, visitors, local
 * connections, peer links, DNS sockets, signal pipes).
 */
#ifndef WARREN_LWSRAW_H
#define WARREN_LWSRAW_H

#include <libwebsockets.h>

/* Adopt fd on vhost vh, bound to protocol `protocol`, with `opaque` as the
 * wsi's opaque user data (lws_get_opaque_user_data). Returns the wsi, or NULL
 * when lws refused it (lws has then closed fd). */
struct lws *lwsraw_adopt(struct lws_vhost *vh, int fd, const char *protocol, void *opaque);

#endif
