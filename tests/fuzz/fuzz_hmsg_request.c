/*
 * fuzz_hmsg_request: feeds arbitrary bytes through hmsg as a request stream
 * (fuzz_hmsg_response.c reuses this file for responses), the way the edge
 * does: unconsumed bytes are kept and handed back with more appended.
 *
 * Each input runs whole and split in pseudo-random piece sizes derived from
 * the input, with the default and with tiny limits, and aborts when:
 *  - used > n, NEED_MORE consumes bytes, or a head grows past max_head;
 *  - events are out of order (BODY/END without HEAD, HEAD inside a message),
 *    or a call makes no progress twice in a row;
 *  - after ERROR any call returns something else, or the status is not one
 *    of those the kind can produce;
 *  - the transcript (heads, body bytes, ends, error status) differs between
 *    the whole run and a split run (body bytes of a message cut short by an
 *    error are left out: how many went out first depends on the split);
 *  - fewer bytes than hmsg_body_run() promised are not all taken as body,
 *    or it promises anything outside a message body;
 *  - hmsg_host_name or hmsg_rewrite_request write past their cap (buffers
 *    are malloc'd to the exact cap so ASan sees it), or the rewritten head
 *    does not parse again as the same request with the edge's values.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hmsg.h"

#ifndef FUZZ_HMSG_KIND
#define FUZZ_HMSG_KIND HMSG_REQUEST
#endif

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static const struct hmsg_limits configs[] = {{16384, 100}, {64, 4}};

/* FNV-1a, used both to derive parameters and to summarise transcripts. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static uint64_t fnv_tag(uint64_t h, char tag, uint64_t v)
{
    h = fnv(h, &tag, 1);
    return fnv(h, &v, sizeof v);
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

static bool in_range(const char *p, size_t n, const uint8_t *lo, size_t len)
{
    return n == 0 || ((const uint8_t *)p >= lo && (const uint8_t *)p + n <= lo + len);
}

static void check_host_name(const struct hmsg_head *h)
{
    char *out = malloc(300);
    ssize_t r = hmsg_host_name(h, out, 300);
    REQUIRE(r == -EINVAL || (r > 0 && r < 300));
    if (r > 0) {
        REQUIRE((size_t)r == strlen(out));
        /* a cap of exactly r + 1 fits, r does not */
        char *tight = malloc((size_t)r + 1);
        REQUIRE(hmsg_host_name(h, tight, (size_t)r + 1) == r);
        REQUIRE(strcmp(tight, out) == 0);
        REQUIRE(hmsg_host_name(h, tight, (size_t)r) == -EINVAL);
        free(tight);
    }
    free(out);
}

/* The rewritten head is a request of its own: it must parse again. */
static void check_reparse(const struct hmsg_head *h, const uint8_t *out, size_t n)
{
    static const struct hmsg_limits big = {65536, HMSG_MAX_HEADERS_LIMIT};
    if (h->nheaders + 4 > HMSG_MAX_HEADERS_LIMIT)
        return; /* the edge's three fields (and maybe Host) would be over the count */
    hmsg *m = hmsg_new(HMSG_REQUEST, &big);
    size_t used;
    REQUIRE(hmsg_feed(m, out, n, &used) == HMSG_HEAD);
    REQUIRE(used == n);
    const struct hmsg_head *r = hmsg_head(m);
    REQUIRE(r->method.len == h->method.len && memcmp(r->method.p, h->method.p, h->method.len) == 0);
    REQUIRE(r->http_minor == h->http_minor);
    REQUIRE(r->has_length == h->has_length && r->content_length == h->content_length);
    REQUIRE(r->chunked == h->chunked);
    REQUIRE(r->target.len > 0 && (r->target.p[0] == '/' || r->target.p[0] == '*'));
    const struct hmsg_header *xff = hmsg_find(r, "x-forwarded-for");
    REQUIRE(xff && xff->value.len == 9 && memcmp(xff->value.p, "192.0.2.1", 9) == 0);
    char a[300], b[300];
    ssize_t ra = hmsg_host_name(h, a, sizeof a), rb = hmsg_host_name(r, b, sizeof b);
    REQUIRE(ra == rb && (ra < 0 || strcmp(a, b) == 0));
    hmsg_free(m);
}

static void check_rewrite(const struct hmsg_head *h, uint32_t *rnd)
{
    struct hmsg_forward fw = {"192.0.2.1", "https"};
    size_t big = h->raw.len + 4 * h->nheaders + 256 + h->host.len + h->target.len;
    uint8_t *full = malloc(big);
    ssize_t n = hmsg_rewrite_request(h, &fw, full, big);
    REQUIRE(n > 0 && (size_t)n <= big);
    size_t cap = next_rand(rnd) % ((size_t)n + 1);
    uint8_t *part = malloc(cap ? cap : 1);
    ssize_t r = hmsg_rewrite_request(h, &fw, part, cap);
    REQUIRE(cap < (size_t)n ? r == -ENOSPC : r == n);
    free(part);
    check_reparse(h, full, (size_t)n);
    free(full);
}

static void check_head(hmsg *m, const uint8_t *p, size_t used, const struct hmsg_limits *lim,
                       uint32_t *rnd)
{
    const struct hmsg_head *h = hmsg_head(m);
    REQUIRE(used > 0 && used <= lim->max_head);
    REQUIRE((const uint8_t *)h->raw.p + h->raw.len == p + used &&
            in_range(h->raw.p, h->raw.len, p, used));
    REQUIRE(h->raw.len >= 2 && h->raw.p[h->raw.len - 1] == '\n');
    if (FUZZ_HMSG_KIND == HMSG_REQUEST)
        REQUIRE(h->raw.len >= 4 && memcmp(h->raw.p + h->raw.len - 4, "\r\n\r\n", 4) == 0);
    REQUIRE(h->nheaders <= lim->max_headers);
    for (unsigned i = 0; i < h->nheaders; i++) {
        REQUIRE(h->headers[i].name.len > 0);
        REQUIRE(in_range(h->headers[i].name.p, h->headers[i].name.len, p, used));
        REQUIRE(in_range(h->headers[i].value.p, h->headers[i].value.len, p, used));
    }
    REQUIRE(h->http_major == 1 && h->http_minor <= 1);
    REQUIRE(!(h->chunked && h->has_length));
    if (FUZZ_HMSG_KIND == HMSG_REQUEST) {
        REQUIRE(h->method.len > 0 && h->target.len > 0);
        REQUIRE(in_range(h->method.p, h->method.len, p, used));
        REQUIRE(in_range(h->target.p, h->target.len, p, used));
        REQUIRE(h->http_minor == 1 ? h->host.len > 0 : true);
        REQUIRE(!h->until_eof);
        check_host_name(h);
        check_rewrite(h, rnd);
    } else {
        REQUIRE(h->status >= 100 && h->status <= 999);
        REQUIRE(h->upgrade == (h->status == 101));
        REQUIRE(!(h->until_eof && h->keep_alive));
    }
}

/* Runs the stream; returns the transcript hash. */
static uint64_t run(const uint8_t *data, size_t len, const struct hmsg_limits *lim, uint32_t seed,
                    unsigned maxpiece, uint32_t head_mask)
{
    hmsg *m = hmsg_new(FUZZ_HMSG_KIND, lim);
    REQUIRE(m);
    uint8_t *pend = malloc(len ? len : 1);
    size_t plen = 0, off = 0;
    unsigned msgno = 0, stalls = 0;
    bool in_body = false, failed = false;
    uint64_t t = 0xcbf29ce484222325u, t_body = t;
    uint32_t rnd = seed;

    if (FUZZ_HMSG_KIND == HMSG_RESPONSE && (head_mask & 1))
        hmsg_expect_head_response(m);
    while (!failed) {
        if (off == len)
            break;
        size_t piece = maxpiece ? 1 + next_rand(&rnd) % maxpiece : len - off;
        if (piece > len - off)
            piece = len - off;
        memcpy(pend + plen, data + off, piece);
        plen += piece;
        off += piece;
        stalls = 0;
        for (;;) {
            size_t used = 12345;
            /* hmsg_body_run's promise (the edge reads that many body bytes
             * past the parser): fewer than `run` bytes are all plain body */
            uint64_t run = hmsg_body_run(m);
            REQUIRE(in_body || run == 0);
            enum hmsg_event ev = hmsg_feed(m, pend, plen, &used);
            REQUIRE(used <= plen);
            if (plen > 0 && run > plen)
                REQUIRE(ev == HMSG_BODY && used == plen);
            if (ev == HMSG_NEED_MORE) {
                REQUIRE(used == 0);
                REQUIRE(in_body || plen <= lim->max_head);
                break;
            }
            if (ev == HMSG_ERROR) {
                unsigned st = hmsg_error_status(m);
                if (FUZZ_HMSG_KIND == HMSG_REQUEST)
                    REQUIRE(st == 400 || st == 414 || st == 431 || st == 501 || st == 505);
                else
                    REQUIRE(st == 502);
                REQUIRE(hmsg_error_reason(m)[0] != '\0');
                REQUIRE(used == 0);
                if (in_body)
                    t = t_body;
                t = fnv_tag(t, 'X', st);
                REQUIRE(hmsg_feed(m, pend, plen, &used) == HMSG_ERROR);
                failed = true;
                break;
            }
            if (ev == HMSG_HEAD) {
                REQUIRE(!in_body);
                check_head(m, pend, used, lim, &rnd);
                REQUIRE(hmsg_in_message(m));
                t = fnv_tag(t, 'H', used);
                t = fnv(t, hmsg_head(m)->raw.p, hmsg_head(m)->raw.len);
                t_body = t;
                in_body = true;
            } else {
                REQUIRE(in_body);
                t = fnv(t, pend, used);
                if (ev == HMSG_BODY) {
                    REQUIRE(used > 0);
                    REQUIRE(hmsg_in_message(m));
                } else {
                    REQUIRE(ev == HMSG_END);
                    REQUIRE(!hmsg_in_message(m));
                    t = fnv_tag(t, 'E', 0);
                    in_body = false;
                    msgno++;
                    if (FUZZ_HMSG_KIND == HMSG_RESPONSE && msgno < 32 && (head_mask >> msgno & 1))
                        hmsg_expect_head_response(m);
                }
            }
            stalls = used ? 0 : stalls + 1;
            REQUIRE(stalls <= 2);
            memmove(pend, pend + used, plen - used);
            plen -= used;
        }
    }
    enum hmsg_event ev = hmsg_feed_eof(m);
    if (failed) {
        REQUIRE(ev == HMSG_ERROR);
    } else if (ev == HMSG_END) {
        t = fnv_tag(t, 'F', 0);
    } else {
        REQUIRE(ev == HMSG_ERROR);
        if (in_body)
            t = t_body;
        t = fnv_tag(t, 'Y', hmsg_error_status(m));
    }
    REQUIRE(hmsg_feed_eof(m) == ev);
    size_t used;
    REQUIRE(hmsg_feed(m, pend, plen, &used) == HMSG_ERROR || (plen == 0 && !failed));
    free(pend);
    hmsg_free(m);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fnv(0xcbf29ce484222325u, data, size);
    uint32_t seed = (uint32_t)h | 1, head_mask = (uint32_t)(h >> 32);
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        const struct hmsg_limits *lim = &configs[c];
        uint64_t ref = run(data, size, lim, seed, 0, head_mask);
        REQUIRE(run(data, size, lim, seed, 7, head_mask) == ref);
        REQUIRE(run(data, size, lim, seed ^ 0x5bd1e995u, 300, head_mask) == ref);
        if (size <= 4096)
            REQUIRE(run(data, size, lim, seed, 1, head_mask) == ref);
    }
    return 0;
}
