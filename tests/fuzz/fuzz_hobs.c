/*
 * fuzz_hobs: the relayed-stream observer (common/hobs) on untrusted bytes,
 * split anywhere, the way the edge watches what a tunnel sends back (and the
 * CLI what a visitor and its local service send).
 *
 * Input: byte 0 picks the kind (request or response) and the limits
 * (16 KiB / 100 headers or 64 bytes / 4 headers); byte 1 says which responses
 * answer a HEAD request (bit k: the k-th; set from on_end, as the edge does);
 * the rest is the stream. It is observed whole, then in pseudo-random pieces
 * (1 byte to 4 KiB, derived from the input), then ended with hobs_eof.
 * Invariants checked with abort(): hobs_total counts every byte fed while the
 * observer is not failed, and inside on_end it is the offset just past the
 * message (so ends are strictly increasing and within the input); a head
 * never arrives inside a message, an end never without its head; after
 * -EBADMSG every call says -EBADMSG and no callback comes; after a 101 no
 * head is reported; and the transcript (heads, with their raw bytes and
 * values; the offset of each end; failure; the EOF result) is the same
 * however the stream was split.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hobs.h"

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static const struct hmsg_limits configs[] = {{16384, 100}, {64, 4}};

struct run {
    hobs *o;
    enum hmsg_kind kind;
    uint8_t head_mask;
    uint64_t size; /* bytes of the stream */
    uint64_t transcript;
    unsigned heads, ends;
    uint64_t last_end;
    bool in_message, upgraded, failed;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, char tag, uint64_t v)
{
    h = fnv(h, &tag, 1);
    return fnv(h, &v, sizeof v);
}

static void on_head(void *ud, const struct hmsg_head *h)
{
    struct run *r = ud;
    REQUIRE(!r->failed && !r->upgraded && !r->in_message);
    REQUIRE(h->raw.len > 0 && h->raw.len <= configs[0].max_head);
    r->in_message = true;
    r->heads++;
    r->transcript = fnv(fnv_u64(r->transcript, 'H', h->raw.len), h->raw.p, h->raw.len);
    uint64_t flags = (uint64_t)h->status << 16 | (uint64_t)h->keep_alive << 0 |
                     (uint64_t)h->upgrade << 1 | (uint64_t)h->chunked << 2 |
                     (uint64_t)h->has_length << 3 | (uint64_t)h->until_eof << 4;
    r->transcript = fnv_u64(fnv_u64(r->transcript, 'f', flags), 'l', h->content_length);
    if (r->kind == HMSG_RESPONSE && h->status == 101 && h->upgrade)
        r->upgraded = true;
}

static void on_end(void *ud)
{
    struct run *r = ud;
    REQUIRE(!r->failed && r->in_message);
    uint64_t at = hobs_total(r->o);
    REQUIRE(at <= r->size && (r->ends == 0 || at > r->last_end));
    r->in_message = false;
    r->last_end = at;
    r->transcript = fnv_u64(r->transcript, 'E', at);
    r->ends++;
    if (r->kind == HMSG_RESPONSE && r->ends < 8 && (r->head_mask >> r->ends & 1))
        hobs_expect_head_response(r->o);
}

static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* Observe data[0..size) in pieces (piece_seed 0: whole); returns the transcript. */
static struct run observe(enum hmsg_kind kind, const struct hmsg_limits *lim, uint8_t mask,
                          const uint8_t *data, size_t size, uint32_t piece_seed)
{
    struct run r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.head_mask = mask;
    r.size = size;
    r.transcript = UINT64_C(0xcbf29ce484222325);
    static const struct hobs_ops ops = {on_head, on_end};
    r.o = hobs_new(kind, lim, &ops, &r);
    REQUIRE(r.o);
    if (kind == HMSG_RESPONSE && (mask & 1))
        hobs_expect_head_response(r.o);
    size_t off = 0;
    uint32_t s = piece_seed;
    while (off < size) {
        size_t n = size - off;
        if (piece_seed) {
            size_t want = 1 + next_rand(&s) % (next_rand(&s) % 8 == 0 ? 4096 : 64);
            if (want < n)
                n = want;
        }
        /* each piece is its own allocation, so ASan sees any read past it */
        uint8_t *piece = malloc(n);
        REQUIRE(piece);
        memcpy(piece, data + off, n);
        uint64_t before = hobs_total(r.o);
        int rc = hobs_feed(r.o, piece, n);
        free(piece);
        REQUIRE(rc == 0 || rc == -EBADMSG);
        if (r.failed)
            REQUIRE(rc == -EBADMSG && hobs_total(r.o) == before);
        if (rc < 0) {
            r.failed = true;
        } else {
            REQUIRE(hobs_total(r.o) == before + n);
        }
        off += n;
    }
    if (r.upgraded)
        REQUIRE(hobs_is_raw(r.o) || r.failed);
    int eof = hobs_eof(r.o);
    REQUIRE(eof == 0 || eof == -EBADMSG);
    REQUIRE(!r.failed || eof == -EBADMSG);
    r.transcript = fnv_u64(r.transcript, 'X', (uint64_t)(r.failed ? 2 : 0) | (eof ? 1 : 0));
    if (r.failed)
        REQUIRE(hobs_feed(r.o, (const uint8_t *)"x", 1) == -EBADMSG);
    hobs_free(r.o);
    r.o = NULL;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum hmsg_kind kind = data[0] & 1 ? HMSG_RESPONSE : HMSG_REQUEST;
    const struct hmsg_limits *lim = &configs[data[0] >> 1 & 1];
    uint8_t mask = data[1];
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    struct run whole = observe(kind, lim, mask, p, n, 0);
    uint32_t seed = (uint32_t)fnv(UINT64_C(0xcbf29ce484222325), data, size);
    for (int i = 0; i < 2; i++) {
        struct run split = observe(kind, lim, mask, p, n, seed + (uint32_t)i * 7919u + 1);
        REQUIRE(split.transcript == whole.transcript && split.heads == whole.heads &&
                split.ends == whole.ends && split.failed == whole.failed);
    }
    return 0;
}
