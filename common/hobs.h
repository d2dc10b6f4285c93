/*
 * hobs: observe an HTTP/1 byte stream that is being relayed, split anywhere.
 *
 * hmsg needs each head contiguous; relayed bytes arrive in arbitrary pieces
 * from chunked buffers. hobs sits on top: the relay passes every byte exactly
 * once, in order, as it forwards them, and hobs reports each message's head
 * and end. Partial heads are staged in an internal buffer of at most
 * max_head bytes (allocated only while a head is incomplete). The observer
 * never changes the bytes; it only watches them.
 *
 * After a 101 response (or once the caller switches it to raw) the observer
 * ignores everything. On a framing error it stops too and says so; the relay
 * decides what to do (the edge closes the connection after what it relayed).
 */
#ifndef WARREN_HOBS_H
#define WARREN_HOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmsg.h"

typedef struct hobs hobs;

struct hobs_ops {
    /* A head was seen. Return nothing; the head is valid during the call. */
    void (*on_head)(void *ud, const struct hmsg_head *h);
    /* The message whose head was last reported ended (its body included). */
    void (*on_end)(void *ud);
};

hobs *hobs_new(enum hmsg_kind kind, const struct hmsg_limits *lim, const struct hobs_ops *ops,
               void *ud);
void hobs_free(hobs *o);

/* Observe n bytes. Returns 0, or -EBADMSG once the stream is not valid HTTP
 * (then the observer is passive and returns -EBADMSG for every call). */
int hobs_feed(hobs *o, const uint8_t *p, size_t n);
/* The relayed direction ended: 0 if at a message boundary or the message
 * ends at EOF, -EBADMSG if a message was cut short. */
int hobs_eof(hobs *o);
/* Responses: the next response answers a HEAD request. */
void hobs_expect_head_response(hobs *o);
/* Stop observing: every further byte is opaque (after an upgrade). */
void hobs_set_raw(hobs *o);
bool hobs_is_raw(const hobs *o);
/* True between a head and its end (a message is in progress). */
bool hobs_in_message(const hobs *o);
/* Bytes observed so far. Inside on_end it is exactly the offset just past the
 * message that ended, so the caller can tell how many bytes of the next
 * message it relayed. */
uint64_t hobs_total(const hobs *o);

#endif
