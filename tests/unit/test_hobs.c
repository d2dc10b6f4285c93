/*
 * test_hobs: the relayed-stream observer. Each scenario is a byte stream
 * with the exact sequence of on_head / on_end events it must produce, where
 * each on_end records hobs_total() (which must be the offset just past the
 * message that ended). Every scenario is fed whole, split in two at every
 * byte boundary, one byte at a time and in random pieces (empty ones
 * included); each piece is a fresh heap copy freed right after the call, so
 * the sanitizers catch an observer that keeps pointers into the caller's
 * bytes. The event log must be the same for every split.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hobs.h"

#define LOG_MAX 4096
#define DATA_MAX 4096

struct rec {
    hobs *o;
    enum hmsg_kind kind;
    char log[LOG_MAX];
    size_t len;
    /* Pipelined HEAD requests: the k-th final response answers a HEAD
     * request when heads[k] == 'H'. The recorder tells the observer the way
     * a relay does: before the first response and from on_end. */
    const char *heads;
    size_t nfinal;
    unsigned last_status;
};

static void rec_printf(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->len, sizeof r->log - r->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->len += (size_t)n < sizeof r->log - r->len ? (size_t)n : sizeof r->log - r->len - 1;
}

static void tell_head(struct rec *r)
{
    if (r->heads && r->nfinal < strlen(r->heads) && r->heads[r->nfinal] == 'H')
        hobs_expect_head_response(r->o);
}

static void on_head(void *ud, const struct hmsg_head *h)
{
    struct rec *r = ud;
    if (r->kind == HMSG_REQUEST)
        rec_printf(r, "H %.*s %.*s;", (int)h->method.len, h->method.p, (int)h->target.len,
                   h->target.p);
    else
        rec_printf(r, "H %u;", h->status);
    r->last_status = h->status;
}

static void on_end(void *ud)
{
    struct rec *r = ud;
    rec_printf(r, "E %" PRIu64 ";", hobs_total(r->o));
    if (r->kind == HMSG_RESPONSE && r->last_status >= 200) {
        r->nfinal++;
        tell_head(r);
    }
}

static const struct hobs_ops ops = {on_head, on_end};

struct result {
    char log[LOG_MAX];
    bool failed;      /* a feed returned -EBADMSG */
    bool not_passive; /* a feed after the failure returned something else */
    bool late_event;  /* an event after the failure */
    int eof_rc;
    uint64_t total;
    bool raw;
};

/* Feeds data in pieces of the given sizes (summing to len), then EOF. */
static void run(enum hmsg_kind kind, size_t max_head, const char *heads, const uint8_t *data,
                size_t len, const size_t *sizes, size_t nsizes, struct result *res)
{
    static struct rec r;
    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof *res);
    struct hmsg_limits lim = {max_head, 100};
    r.kind = kind;
    r.heads = heads;
    r.o = hobs_new(kind, &lim, &ops, &r);
    CHECK(r.o != NULL);
    if (!r.o)
        return;
    tell_head(&r);
    size_t off = 0, log_at_fail = 0;
    for (size_t i = 0; i < nsizes; i++) {
        uint8_t *piece = malloc(sizes[i] ? sizes[i] : 1);
        if (!piece)
            abort();
        memcpy(piece, data + off, sizes[i]);
        int rc = hobs_feed(r.o, piece, sizes[i]);
        memset(piece, 0xee, sizes[i]); /* the caller reuses its buffer at once */
        free(piece);
        off += sizes[i];
        if (res->failed && rc != -EBADMSG)
            res->not_passive = true;
        if (rc == -EBADMSG && !res->failed) {
            res->failed = true;
            log_at_fail = r.len;
        } else if (rc != 0 && rc != -EBADMSG) {
            res->not_passive = true;
        }
    }
    if (off != len)
        abort(); /* a bad plan: a bug in this test */
    if (res->failed) {
        /* still passive, and quiet */
        uint8_t more[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        if (hobs_feed(r.o, more, sizeof more - 1) != -EBADMSG)
            res->not_passive = true;
        if (r.len != log_at_fail)
            res->late_event = true;
    }
    res->total = hobs_total(r.o);
    res->raw = hobs_is_raw(r.o);
    res->eof_rc = hobs_eof(r.o);
    if (res->failed && r.len != log_at_fail)
        res->late_event = true;
    memcpy(res->log, r.log, sizeof res->log);
    hobs_free(r.o);
}

/* One piece of a scenario: its bytes, the label on_head logs for it (NULL:
 * no head starts here) and whether on_end fires just after its last byte. */
struct seg {
    const char *text;
    const char *head;
    bool end;
};

struct scenario {
    const char *name;
    enum hmsg_kind kind;
    size_t max_head; /* 0: 16384 */
    const char *heads;
    const struct seg *segs;
    size_t nsegs;
    bool fails;   /* the stream is refused at some point */
    int eof_rc;   /* what hobs_eof returns at the end */
    bool eof_end; /* hobs_eof reports the end of the last message */
    bool raw;     /* the observer is raw at the end */
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Compares one run with the expectation; prints the first difference of a
 * scenario only. Returns true if it matched. */
static bool check_run(const struct scenario *sc, const struct result *res, const char *want_log,
                      size_t len, const char *how, bool *printed)
{
    bool ok = true;
    if (strcmp(res->log, want_log) != 0)
        ok = false;
    if (res->failed != sc->fails || res->not_passive || res->late_event)
        ok = false;
    if (res->eof_rc != sc->eof_rc || res->raw != sc->raw)
        ok = false;
    if (!sc->fails && res->total != len)
        ok = false;
    if (res->total > len)
        ok = false;
    CHECK(ok);
    if (!ok && !*printed) {
        *printed = true;
        fprintf(stderr,
                "%s (%s):\n  got  %s failed=%d passive_ok=%d quiet=%d eof=%d raw=%d total=%" PRIu64
                "\n  want %s failed=%d eof=%d raw=%d total=%zu\n",
                sc->name, how, res->log, res->failed, !res->not_passive, !res->late_event,
                res->eof_rc, res->raw, res->total, want_log, sc->fails, sc->eof_rc, sc->raw, len);
    }
    return ok;
}

static void check_scenario(const struct scenario *sc)
{
    static uint8_t data[DATA_MAX];
    static char want[LOG_MAX];
    static size_t sizes[DATA_MAX + 1];
    static struct result res;
    size_t len = 0, wl = 0;
    want[0] = 0;
    for (size_t i = 0; i < sc->nsegs; i++) {
        const struct seg *s = &sc->segs[i];
        size_t n = strlen(s->text);
        if (len + n > sizeof data)
            abort();
        memcpy(data + len, s->text, n);
        len += n;
        if (s->head)
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "H %s;", s->head);
        if (s->end)
            wl += (size_t)snprintf(want + wl, sizeof want - wl, "E %zu;", len);
    }
    if (sc->eof_end)
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "E %zu;", len);
    size_t max_head = sc->max_head ? sc->max_head : 16384;
    bool printed = false;
    char how[64];

    /* whole */
    sizes[0] = len;
    run(sc->kind, max_head, sc->heads, data, len, sizes, 1, &res);
    check_run(sc, &res, want, len, "whole", &printed);

    /* split in two at every boundary, the ends included */
    for (size_t i = 0; i <= len; i++) {
        sizes[0] = i;
        sizes[1] = len - i;
        run(sc->kind, max_head, sc->heads, data, len, sizes, 2, &res);
        snprintf(how, sizeof how, "split at %zu", i);
        check_run(sc, &res, want, len, how, &printed);
    }

    /* one byte at a time */
    for (size_t i = 0; i < len; i++)
        sizes[i] = 1;
    run(sc->kind, max_head, sc->heads, data, len, sizes, len, &res);
    check_run(sc, &res, want, len, "bytewise", &printed);

    /* random pieces, empty ones included */
    for (int round = 0; round < 200; round++) {
        size_t n = 0, left = len;
        size_t top = round % 2 ? 8 : 200;
        while (left > 0) {
            size_t k = (size_t)(rng() % (top + 1));
            if (k > left)
                k = left;
            sizes[n++] = k;
            left -= k;
            if (n == DATA_MAX) {
                sizes[n++] = left;
                left = 0;
            }
        }
        run(sc->kind, max_head, sc->heads, data, len, sizes, n, &res);
        snprintf(how, sizeof how, "random round %d", round);
        if (!check_run(sc, &res, want, len, how, &printed))
            break;
    }
}

static struct scenario scenario(const char *name, enum hmsg_kind kind, const struct seg *segs,
                                size_t nsegs)
{
    return (struct scenario){.name = name, .kind = kind, .segs = segs, .nsegs = nsegs};
}

/* Declares the segments and resets sc to a scenario with default options. */
#define SCENARIO(nm, k, ...)                                                                       \
    static const struct seg nm##_segs[] = {__VA_ARGS__};                                           \
    sc = scenario(#nm, k, nm##_segs, sizeof nm##_segs / sizeof nm##_segs[0])

static void test_requests(void)
{
    struct scenario sc;
    SCENARIO(
        pipelined_requests, HMSG_REQUEST, {"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a", true},
        {"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "POST /b", false},
        {"he", NULL, false}, {"llo", NULL, true},
        {"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "POST /c", false},
        {"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: t\r\n\r\n", NULL, true},
        /* empty lines before a start line are allowed (RFC 9112 2.2) */
        {"\r\nGET /d?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "GET /d?q=1", true},
        {"PUT /e HTTP/1.0\r\nContent-Length: 2\r\n\r\nok", "PUT /e", true},
        {"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS *", true});
    check_scenario(&sc);

    /* a request body that looks like a request is body */
    SCENARIO(body_looks_like_http, HMSG_REQUEST,
             {"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 28\r\n\r\n", "POST /u", false},
             {"GET /x HTTP/1.1\r\nHost: x\r\n\r\n", NULL, true},
             {"GET /y HTTP/1.1\r\nHost: x\r\n\r\n", "GET /y", true});
    check_scenario(&sc);

    /* an upgrade request: the relay switches it to raw when the 101 comes,
     * until then its bytes are HTTP */
    SCENARIO(upgrade_request, HMSG_REQUEST,
             {"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
              "GET /ws", true},
             {"GET /after HTTP/1.1\r\nHost: x\r\n\r\n", "GET /after", true});
    check_scenario(&sc);

    /* a trailing empty line before the close is a clean end (RFC 9112 2.2) */
    SCENARIO(trailing_crlf, HMSG_REQUEST, {"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a", true},
             {"\r\n", NULL, false});
    check_scenario(&sc);
}

static void test_responses(void)
{
    struct scenario sc;
    SCENARIO(
        pipelined_responses, HMSG_RESPONSE,
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", "200", true},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", "204", true},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "304", true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "200",
         true},
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "404", true},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", "200", true});
    check_scenario(&sc);

    /* HEAD: no body whatever the headers say; the relay says so for the
     * first response before it starts and for the others from on_end */
    SCENARIO(head_responses, HMSG_RESPONSE,
             {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "200", true},
             {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "200", true},
             {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "200", true},
             {"HTTP/1.1 200 OK\r\n\r\n", "200", true},
             {"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody", "200", true});
    sc.heads = "H.HH.";
    check_scenario(&sc);

    /* 100-continue, then the real response; a HEAD expectation survives the 1xx */
    SCENARIO(continue_then_200, HMSG_RESPONSE, {"HTTP/1.1 100 Continue\r\n\r\n", "100", true},
             {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "200", true},
             {"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", "103", true},
             {"HTTP/1.1 100 Continue\r\n\r\n", "100", true},
             {"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", "200", true},
             {"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n!", "201", true});
    sc.heads = ".H.";
    check_scenario(&sc);

    /* 101: the head ends the HTTP part; what follows is opaque even if it
     * looks like HTTP, and the stream may end anywhere in it */
    SCENARIO(switching_protocols, HMSG_RESPONSE,
             {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "\r\n",
              "101", true},
             {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL, false},
             {"\x81\x05hello\xff\xfe GET / HTTP/1.1\r\n\r\n HTTP/1.1 200", NULL, false});
    sc.raw = true;
    check_scenario(&sc);

    /* a body delimited by the close of the connection */
    SCENARIO(until_eof, HMSG_RESPONSE,
             {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", "200", false},
             {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL, false},
             {"more body", NULL, false});
    sc.eof_end = true;
    check_scenario(&sc);
    SCENARIO(until_eof_after_others, HMSG_RESPONSE,
             {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", "200", true},
             {"HTTP/1.0 200 OK\r\n\r\n", "200", false});
    sc.eof_end = true;
    check_scenario(&sc);
}

static void test_truncated(void)
{
    struct scenario sc;
    SCENARIO(cut_in_body, HMSG_REQUEST, {"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a", true},
             {"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "POST /b", false},
             {"12345", NULL, false});
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
    SCENARIO(cut_in_head, HMSG_REQUEST, {"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a", true},
             {"GET /b HTTP/1.1\r\nHo", NULL, false});
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
    SCENARIO(cut_in_chunked, HMSG_RESPONSE,
             {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "200", false},
             {"5\r\nhello\r\n0\r\n", NULL, false});
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
    SCENARIO(cut_in_status_line, HMSG_RESPONSE, {"HTTP/1.1 2", NULL, false});
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
    /* a HEAD response has no body to wait for */
    SCENARIO(head_at_eof, HMSG_RESPONSE,
             {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "200", true});
    sc.heads = "H";
    check_scenario(&sc);
}

static void test_invalid(void)
{
    struct scenario sc;
    /* a head over max_head: refused, passive afterwards */
    static char h64[80], h65[80];
    snprintf(h64, sizeof h64, "GET /%.37s HTTP/1.1\r\nHost: x\r\n\r\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    snprintf(h65, sizeof h65, "GET /%.38s HTTP/1.1\r\nHost: x\r\n\r\n",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    CHECK_EQ(strlen(h64), 64);
    CHECK_EQ(strlen(h65), 65);
    SCENARIO(head_at_max, HMSG_REQUEST, {"GET /s HTTP/1.1\r\nHost: x\r\n\r\n", "GET /s", true},
             {h64, "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true});
    sc.max_head = 64;
    check_scenario(&sc);
    SCENARIO(head_over_max, HMSG_REQUEST, {"GET /s HTTP/1.1\r\nHost: x\r\n\r\n", "GET /s", true},
             {h65, NULL, false}, {"GET /t HTTP/1.1\r\nHost: x\r\n\r\n", NULL, false});
    sc.max_head = 64;
    sc.fails = true;
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
    /* an endless head without a line end */
    static char endless[300];
    memset(endless, 'A', sizeof endless - 1);
    SCENARIO(endless_head, HMSG_RESPONSE, {endless, NULL, false});
    sc.max_head = 128;
    sc.fails = true;
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);

    /* not HTTP at all, or broken in the middle */
    SCENARIO(garbage, HMSG_REQUEST, {"\x16\x03\x01\x02\x01\x01\x03\x03 TLS hello", NULL, false});
    sc.fails = true;
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
    SCENARIO(bad_second, HMSG_REQUEST, {"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a", true},
             {"GET /b HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", NULL, false});
    sc.fails = true;
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
    SCENARIO(bad_chunk, HMSG_RESPONSE,
             {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "200", false},
             {"5\r\nhelloXX0\r\n\r\n", NULL, false});
    sc.fails = true;
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
    SCENARIO(smuggle, HMSG_REQUEST,
             {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
              "\r\n0\r\n\r\n",
              NULL, false});
    sc.fails = true;
    sc.eof_rc = -EBADMSG;
    check_scenario(&sc);
}

/* Direct checks of the state queries and of switching to raw by hand. */
static void test_states(void)
{
    static struct rec r;
    memset(&r, 0, sizeof r);
    struct hmsg_limits lim = {16384, 100};
    r.kind = HMSG_REQUEST;
    r.o = hobs_new(HMSG_REQUEST, &lim, &ops, &r);
    CHECK(r.o != NULL);
    if (!r.o)
        return;
    CHECK(!hobs_in_message(r.o));
    CHECK(!hobs_is_raw(r.o));
    CHECK_EQ(hobs_total(r.o), 0);
    CHECK_EQ(hobs_feed(r.o, NULL, 0), 0);
    CHECK_EQ(hobs_eof(r.o), 0);
    hobs_free(r.o);

    memset(&r, 0, sizeof r);
    r.kind = HMSG_REQUEST;
    r.o = hobs_new(HMSG_REQUEST, &lim, &ops, &r);
    const char *a = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab";
    CHECK_EQ(hobs_feed(r.o, (const uint8_t *)a, strlen(a)), 0);
    CHECK(hobs_in_message(r.o));
    CHECK_EQ(hobs_total(r.o), strlen(a));
    CHECK_STR(r.log, "H POST /p;");
    CHECK_EQ(hobs_feed(r.o, (const uint8_t *)"cd", 2), 0);
    CHECK(!hobs_in_message(r.o));
    char want[64];
    snprintf(want, sizeof want, "H POST /p;E %zu;", strlen(a) + 2);
    CHECK_STR(r.log, want);
    /* a partial head is a message in progress */
    CHECK_EQ(hobs_feed(r.o, (const uint8_t *)"GET", 3), 0);
    CHECK(hobs_in_message(r.o));
    /* switched to raw by the relay: everything is opaque, counted, quiet */
    hobs_set_raw(r.o);
    CHECK(hobs_is_raw(r.o));
    CHECK(!hobs_in_message(r.o));
    static const uint8_t junk[] = " / HTTP/1.1\r\n\r\n\x00\x01\x02";
    CHECK_EQ(hobs_feed(r.o, junk, sizeof junk - 1), 0);
    CHECK_EQ(hobs_total(r.o), strlen(a) + 2 + 3 + sizeof junk - 1);
    CHECK_STR(r.log, want);
    CHECK_EQ(hobs_eof(r.o), 0);
    hobs_free(r.o);

    /* limits hmsg refuses give no observer */
    struct hmsg_limits bad = {0, 100};
    CHECK(hobs_new(HMSG_REQUEST, &bad, &ops, &r) == NULL);
    bad = (struct hmsg_limits){16384, HMSG_MAX_HEADERS_LIMIT + 1};
    CHECK(hobs_new(HMSG_RESPONSE, &bad, &ops, &r) == NULL);
    hobs_free(NULL);

    /* callbacks are optional */
    static const struct hobs_ops none = {NULL, NULL};
    hobs *o = hobs_new(HMSG_RESPONSE, &lim, &none, NULL);
    CHECK(o != NULL);
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 101 S\r\n\r\nraw";
    CHECK_EQ(hobs_feed(o, (const uint8_t *)resp, strlen(resp)), 0);
    CHECK(hobs_is_raw(o));
    CHECK_EQ(hobs_total(o), strlen(resp));
    hobs_free(o);
}

int main(void)
{
    test_requests();
    test_responses();
    test_truncated();
    test_invalid();
    test_states();
    return check_done();
}
