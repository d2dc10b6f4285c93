/*
 * hobs: relayed-stream observer over hmsg. Invariant: every byte passed to
 * hobs_feed is given to hmsg exactly once, in order; bytes of an incomplete
 * head are copied to the staging buffer (bounded by max_head, then hmsg
 * reports 431 and the observer turns passive).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hobs.h"

struct hobs {
    hmsg *m;
    struct hobs_ops ops;
    void *ud;
    size_t max_head;
    uint8_t *stage; /* partial head, max_head + 1 bytes when allocated */
    size_t stage_len;
    bool raw, failed;
    uint64_t total;
};

hobs *hobs_new(enum hmsg_kind kind, const struct hmsg_limits *lim, const struct hobs_ops *ops,
               void *ud)
{
    hobs *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->m = hmsg_new(kind, lim);
    if (!o->m) {
        free(o);
        return NULL;
    }
    o->ops = *ops;
    o->ud = ud;
    o->max_head = lim->max_head;
    return o;
}

void hobs_free(hobs *o)
{
    if (!o)
        return;
    hmsg_free(o->m);
    free(o->stage);
    free(o);
}

static void drop_stage(hobs *o)
{
    free(o->stage);
    o->stage = NULL;
    o->stage_len = 0;
}

/* Head phase: stage bytes until hmsg sees a whole head. Body phase: feed
 * the caller's bytes directly. */
int hobs_feed(hobs *o, const uint8_t *p, size_t n)
{
    if (o->failed)
        return -EBADMSG;
    while (!o->raw && (n > 0 || hmsg_in_message(o->m))) {
        size_t used = 0;
        enum hmsg_event ev;
        if (!hmsg_in_message(o->m)) {
            if (!o->stage) {
                o->stage = malloc(o->max_head + 1);
                if (!o->stage)
                    goto fail;
            }
            size_t take = o->max_head + 1 - o->stage_len;
            if (take > n)
                take = n;
            if (take == 0)
                goto fail;
            memcpy(o->stage + o->stage_len, p, take);
            size_t before = o->stage_len;
            o->stage_len += take;
            ev = hmsg_feed(o->m, o->stage, o->stage_len, &used);
            if (ev == HMSG_NEED_MORE) {
                p += take;
                n -= take;
                o->total += take;
                continue;
            }
            if (ev != HMSG_HEAD || used <= before)
                goto fail;
            const struct hmsg_head *h = hmsg_head(o->m);
            bool upgraded = h->upgrade && h->status == 101;
            if (o->ops.on_head)
                o->ops.on_head(o->ud, h);
            drop_stage(o);
            p += used - before;
            n -= used - before;
            o->total += used - before;
            if (upgraded) {
                /* a 101 ends at its head; everything after it is opaque */
                ev = hmsg_feed(o->m, p, 0, &used);
                if (o->ops.on_end)
                    o->ops.on_end(o->ud);
                o->raw = true;
            }
            continue;
        }
        ev = hmsg_feed(o->m, p, n, &used);
        p += used;
        n -= used;
        o->total += used;
        switch (ev) {
        case HMSG_BODY:
            if (used == 0)
                return 0;
            break;
        case HMSG_END:
            if (o->ops.on_end)
                o->ops.on_end(o->ud);
            break;
        case HMSG_NEED_MORE:
            return 0;
        default:
            goto fail;
        }
    }
    if (o->raw)
        o->total += n;
    return 0;
fail:
    o->failed = true;
    drop_stage(o);
    return -EBADMSG;
}

int hobs_eof(hobs *o)
{
    if (o->failed)
        return -EBADMSG;
    if (o->raw)
        return 0;
    /* hmsg has seen every staged byte: it tells a cut head from the empty
     * lines allowed between messages */
    bool in = hmsg_in_message(o->m);
    enum hmsg_event ev = hmsg_feed_eof(o->m);
    drop_stage(o);
    if (ev != HMSG_END)
        return -EBADMSG;
    if (in && o->ops.on_end)
        o->ops.on_end(o->ud);
    return 0;
}

void hobs_expect_head_response(hobs *o)
{
    hmsg_expect_head_response(o->m);
}

void hobs_set_raw(hobs *o)
{
    o->raw = true;
    drop_stage(o);
}

bool hobs_is_raw(const hobs *o)
{
    return o->raw;
}

bool hobs_in_message(const hobs *o)
{
    return o->stage_len > 0 || hmsg_in_message(o->m);
}

uint64_t hobs_total(const hobs *o)
{
    return o->total;
}
