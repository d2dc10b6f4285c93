/*
 * lwswake: ask libwebsockets for a WRITEABLE callback on a raw-file
 * connection, also from inside that very callback.
 *
 * Debian's libwebsockets 4.1.6 raw-file role clears POLLOUT *after* the
 * WRITEABLE callback returns, so lws_callback_on_writable() made inside the
 * callback is lost and the connection stalls. A wake notes such a request and
 * makes it again on the next loop turn (a 1 us timer). Every raw-file
 * connection that writes (visitors, local connections, peer links) uses one.
 */
#ifndef WARREN_LWSWAKE_H
#define WARREN_LWSWAKE_H

#include <stdbool.h>

#include <libwebsockets.h>

struct lwswake {
    struct lws *wsi; /* the connection a pending re-request is for */
    bool in_cb, rearm;
    lws_sorted_usec_list_t sul;
};

/* Request WRITEABLE for wsi (NULL: nothing to do). */
void lwswake_request(struct lwswake *w, struct lws *wsi);
/* Bracket the WRITEABLE callback: enter before handling it, leave with its
 * result (returned unchanged); leave re-makes a request made meanwhile. */
void lwswake_enter(struct lwswake *w);
int lwswake_leave(struct lwswake *w, struct lws_context *ctx, int result);
/* The connection is closing or freed: forget any pending re-request. */
void lwswake_cancel(struct lwswake *w);

#endif
