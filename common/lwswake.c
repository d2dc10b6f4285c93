/*
 * lwswake: see lwswake.h. Invariant: a pending re-request (scheduled sul)
 * always names a live wsi; owners cancel it before the wsi goes away.
 */
#include "lwswake.h"

static void wake_cb(lws_sorted_usec_list_t *sul)
{
    struct lwswake *w = lws_container_of(sul, struct lwswake, sul);
    if (w->wsi)
        lws_callback_on_writable(w->wsi);
}

void lwswake_request(struct lwswake *w, struct lws *wsi)
{
    if (!wsi)
        return;
    if (w->in_cb) {
        w->rearm = true;
        w->wsi = wsi;
    } else {
        lws_callback_on_writable(wsi);
    }
}

void lwswake_enter(struct lwswake *w)
{
    w->in_cb = true;
}

int lwswake_leave(struct lwswake *w, struct lws_context *ctx, int result)
{
    w->in_cb = false;
    if (w->rearm) {
        w->rearm = false;
        if (result == 0)
            lws_sul_schedule(ctx, 0, &w->sul, wake_cb, 1);
    }
    return result;
}

void lwswake_cancel(struct lwswake *w)
{
    lws_sul_cancel(&w->sul);
    w->wsi = NULL;
    w->rearm = false;
}
