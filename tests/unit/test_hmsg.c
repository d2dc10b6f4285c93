/*
 * test_hmsg: HTTP/1 framing. The request side is the smuggling boundary, so
 * most vectors are requests with the exact status each must get; pipelined
 * streams are replayed split at every byte boundary and must give the same
 * event/byte transcript every time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hmsg.h"

static const struct hmsg_limits lim = {16384, 100};

/* ---- a caller that keeps unconsumed bytes and records what it saw ---- */

struct out {
    char s[65536];
    size_t len;
};

static void out_add(struct out *o, const void *p, size_t n)
{
    if (n > sizeof o->s - o->len - 1)
        n = sizeof o->s - o->len - 1;
    memcpy(o->s + o->len, p, n);
    o->len += n;
    o->s[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
    out_add(o, s, strlen(s));
}

/* Feeds `in` in pieces cut at the offsets in cuts[] (ascending), then EOF.
 * Transcript: "H[<head>]" for HEAD, body bytes appended verbatim inside
 * "B[...]" per message, "E" for END, "X<status>" for ERROR, then "|eof:E" or
 * "|eof:X<status>". If resp_head_mask bit i is set, response i is a HEAD
 * answer. Returns the last error status or 0. */
static unsigned run_cuts(enum hmsg_kind kind, const char *in, size_t len, const size_t *cuts,
                         size_t ncuts, unsigned resp_head_mask, struct out *o)
{
    hmsg *m = hmsg_new(kind, &lim);
    uint8_t *pend = malloc(len + 1);
    size_t plen = 0, off = 0, msgno = 0, body_start = 0;
    bool in_body = false, err = false;
    o->len = 0;
    o->s[0] = '\0';
    if (kind == HMSG_RESPONSE && (resp_head_mask & 1))
        hmsg_expect_head_response(m);
    for (size_t c = 0; c <= ncuts && !err; c++) {
        size_t to = c < ncuts ? cuts[c] : len;
        memcpy(pend + plen, in + off, to - off);
        plen += to - off;
        off = to;
        for (;;) {
            size_t used = 0;
            enum hmsg_event ev = hmsg_feed(m, pend, plen, &used);
            CHECK(used <= plen);
            if (ev == HMSG_NEED_MORE)
                break;
            if (ev == HMSG_ERROR) {
                char b[32];
                if (in_body) { /* how much body went out first depends on the split */
                    o->len = body_start;
                    o->s[o->len] = '\0';
                }
                snprintf(b, sizeof b, "X%u", hmsg_error_status(m));
                out_str(o, b);
                err = true;
                break;
            }
            if (ev == HMSG_HEAD) {
                out_str(o, "H[");
                out_add(o, hmsg_head(m)->raw.p, hmsg_head(m)->raw.len);
                out_str(o, "]B[");
                body_start = o->len;
                in_body = true;
            } else {
                CHECK(in_body);
                out_add(o, pend, used);
                if (ev == HMSG_END) {
                    out_str(o, "]E");
                    in_body = false;
                    msgno++;
                    if (kind == HMSG_RESPONSE && msgno < 32 && (resp_head_mask >> msgno & 1))
                        hmsg_expect_head_response(m);
                }
            }
            memmove(pend, pend + used, plen - used);
            plen -= used;
        }
    }
    if (!err) {
        enum hmsg_event ev = hmsg_feed_eof(m);
        if (ev == HMSG_END) {
            if (in_body)
                out_str(o, "]E");
            out_str(o, "|eof:E");
        } else {
            char b[32];
            if (in_body) {
                o->len = body_start;
                o->s[o->len] = '\0';
            }
            snprintf(b, sizeof b, "|eof:X%u", hmsg_error_status(m));
            out_str(o, b);
        }
    }
    unsigned st = hmsg_error_status(m);
    hmsg_free(m);
    free(pend);
    return st;
}

static unsigned run_whole(enum hmsg_kind kind, const char *in, size_t len, struct out *o)
{
    return run_cuts(kind, in, len, NULL, 0, 0, o);
}

/* Every split into two and into single bytes gives the whole-input transcript. */
static void check_all_splits(enum hmsg_kind kind, const char *in, unsigned head_mask,
                             const char *expect)
{
    size_t len = strlen(in);
    static struct out ref, o;
    run_cuts(kind, in, len, NULL, 0, head_mask, &ref);
    if (expect)
        CHECK_STR(ref.s, expect);
    unsigned bad = 0;
    for (size_t k = 0; k <= len; k++) {
        run_cuts(kind, in, len, &k, 1, head_mask, &o);
        if (strcmp(o.s, ref.s) != 0 && bad++ < 3)
            fprintf(stderr, "split at %zu: %s\n", k, o.s);
    }
    size_t *every = malloc(len * sizeof *every);
    for (size_t k = 0; k < len; k++)
        every[k] = k;
    run_cuts(kind, in, len, every, len, head_mask, &o);
    if (strcmp(o.s, ref.s) != 0 && bad++ < 3)
        fprintf(stderr, "byte by byte: %s\n", o.s);
    free(every);
    CHECK_EQ(bad, 0);
}

/* Three pieces, every (i, j). */
static void check_three_piece_splits(enum hmsg_kind kind, const char *in)
{
    size_t len = strlen(in);
    static struct out ref, o;
    run_whole(kind, in, len, &ref);
    unsigned bad = 0;
    for (size_t i = 0; i <= len; i++)
        for (size_t j = i; j <= len; j++) {
            size_t cuts[2] = {i, j};
            run_cuts(kind, in, len, cuts, 2, 0, &o);
            if (strcmp(o.s, ref.s) != 0)
                bad++;
        }
    CHECK_EQ(bad, 0);
}

/* ---- request vectors: exact status (0 = accepted with a clean END) ---- */

struct vec {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen */
    unsigned status;
};

#define H "Host: a.example\r\n"
#define LIT(s) s, sizeof(s) - 1

static const struct vec vecs[] = {
    /* accepted */
    {"simple GET", "GET / HTTP/1.1\r\n" H "\r\n", 0, 0},
    {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0, 0},
    {"POST with Content-Length", "POST /p HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello", 0, 0},
    {"Content-Length with OWS", "POST / HTTP/1.1\r\n" H "Content-Length:\t 5 \r\n\r\nhello", 0, 0},
    {"Content-Length leading zeros", "POST / HTTP/1.1\r\n" H "Content-Length: 005\r\n\r\nhello", 0,
     0},
    {"Content-Length 0", "POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 0, 0},
    {"chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     0, 0},
    {"Chunked upper case", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n", 0,
     0},
    {"chunked with spaces",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding:  chunked  \r\n\r\n0\r\n\r\n", 0, 0},
    {"chunk extensions and trailer",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
     "A ; a=b;c=\"q\\\"s\" ;d\r\n0123456789\r\n0\r\nX-T: v\r\n\r\n",
     0, 0},
    {"hex chunk size",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n00a\r\n0123456789\r\n0\r\n\r\n", 0,
     0},
    {"absolute-form, Host differs in case",
     "GET http://A.Example/x?y HTTP/1.1\r\nHost: a.EXAMPLE\r\n\r\n", 0, 0},
    {"absolute-form https with port",
     "GET https://a.example:8443 HTTP/1.1\r\nHost: a.example:8443\r\n\r\n", 0, 0},
    {"absolute-form HTTP/1.0 no Host", "GET http://a.example/ HTTP/1.0\r\n\r\n", 0, 0},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" H "\r\n", 0, 0},
    {"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n", 0, 0},
    {"Host with port", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 0, 0},
    {"Host trailing dot", "GET / HTTP/1.1\r\nHost: a.example.\r\n\r\n", 0, 0},
    {"Host upper case", "GET / HTTP/1.1\r\nHost: A.EXAMPLE\r\n\r\n", 0, 0},
    {"Host IPv6 literal", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", 0, 0},
    {"value with HT and obs-text", "GET / HTTP/1.1\r\n" H "X-A: a\tb \xc3\xa9\r\n\r\n", 0, 0},
    {"empty value", "GET / HTTP/1.1\r\n" H "X-E:\r\n\r\n", 0, 0},
    {"Connection with other tokens",
     "GET / HTTP/1.1\r\n" H "Connection: keep-alive, x-host\r\n\r\n", 0, 0},

    /* CL + TE */
    {"CL then TE",
     "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0,
     400},
    {"TE then CL",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 0,
     400},
    {"CL 0 with TE",
     "POST / HTTP/1.1\r\n" H "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400},
    /* Transfer-Encoding variants */
    {"TE chunked, chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n",
     0, 400},
    {"TE xchunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", 0, 400},
    {"TE chunkedx", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunkedx\r\n\r\n", 0, 400},
    {"TE gzip, chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 0,
     400},
    {"TE chunked, gzip", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n", 0,
     400},
    {"TE identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 0, 400},
    {"TE empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", 0, 400},
    {"TE quoted", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n", 0, 400},
    {"TE trailing tab", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\t\r\n\r\n", 0, 400},
    {"TE vertical tab",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\x0b"
     "chunked\r\n\r\n",
     0, 400},
    {"TE twice",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
     400},
    {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400},
    {"TE space before colon", "POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n", 0,
     400},
    {"TE underscore alias", "POST / HTTP/1.1\r\n" H "Transfer_Encoding: chunked\r\n\r\n", 0, 400},
    {"TE obs-folded", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n chunked\r\n\r\n", 0, 400},
    /* Connection naming a framing field: a proxy behind the edge would drop it */
    {"Connection names Content-Length",
     "POST / HTTP/1.1\r\n" H "Connection: keep-alive, Content-Length\r\nContent-Length: 5\r\n\r\n"
     "hello",
     0, 400},
    {"Connection names Transfer-Encoding",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nConnection: transfer-encoding\r\n\r\n"
     "0\r\n\r\n",
     0, 400},
    {"Connection names Host", "GET / HTTP/1.1\r\n" H "Connection: HOST\r\n\r\n", 0, 400},
    /* Content-Length */
    {"duplicate CL equal",
     "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 0, 400},
    {"duplicate CL differ",
     "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 0, 400},
    {"CL list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\nhello", 0, 400},
    {"CL plus sign", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\nhello", 0, 400},
    {"CL negative", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 0, 400},
    {"CL hex", "POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\nhello", 0, 400},
    {"CL empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 0, 400},
    {"CL two numbers", "POST / HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\nhello", 0, 400},
    {"CL overflow", "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999\r\n\r\n", 0, 400},
    {"CL 2^64", "POST / HTTP/1.1\r\n" H "Content-Length: 18446744073709551616\r\n\r\n", 0, 400},
    {"CL trailing tab", "POST / HTTP/1.1\r\n" H "Content-Length: 5\t\r\n\r\nhello", 0, 400},
    {"CL underscore alias", "POST / HTTP/1.1\r\n" H "Content_Length: 5\r\n\r\nhello", 0, 400},
    /* chunked body errors (after a good head) */
    {"chunk size not hex", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\ng\r\n", 0,
     400},
    {"chunk size negative", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n-1\r\n", 0,
     400},
    {"chunk size 0x prefix",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk size empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n\r\n", 0, 400},
    {"chunk size trailing space",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk size overflow",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 0, 400},
    {"chunk size bare LF",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 0, 400},
    {"chunk ext bare LF",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n", 0,
     400},
    {"chunk size then tab",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\t;a\r\nhello\r\n0\r\n\r\n", 0,
     400},
    {"TE name prefix", "POST / HTTP/1.1\r\n" H "Transfer-Encodingx: chunked\r\n\r\n", 0, 400},
    {"chunk ext bad byte",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5;a@b\r\nhello\r\n0\r\n\r\n", 0,
     400},
    {"chunk ext unterminated quote",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n", 0,
     400},
    {"missing CRLF after data",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1\r\naXY0\r\n\r\n", 0, 400},
    {"LF only after data",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n1\r\na\n0\r\n\r\n", 0, 400},
    {"chunk data too long",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 0, 400},
    {"trailer obs-fold",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", 0, 400},
    {"trailer Content-Length",
     "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\ncontent-length: 5\r\n\r\n", 0,
     400},
    {"trailer bare LF", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\r\n",
     0, 400},
    {"truncated chunked body", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
     0, 400},
    {"truncated CL body", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhel", 0, 400},
    /* line endings and bytes */
    {"bare LF request line", "GET / HTTP/1.1\n" H "\r\n", 0, 400},
    {"bare LF header",
     "GET / HTTP/1.1\r\n"
     "Host: a.example\n\r\n",
     0, 400},
    {"bare LF end of head", "GET / HTTP/1.1\r\n" H "\n", 0, 400},
    {"bare CR request line", "GET / HTTP/1.1\r" H "\r\n", 0, 400},
    {"bare CR in value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", 0, 400},
    {"CR CR LF", "GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n", 0, 400},
    {"obs-fold", "GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", 0, 400},
    {"obs-fold tab", "GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", 0, 400},
    {"first header starts with space", "GET / HTTP/1.1\r\n Host: a.example\r\n\r\n", 0, 400},
    {"NUL in value", LIT("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"), 400},
    {"NUL in target", LIT("GET /\0 HTTP/1.1\r\n" H "\r\n"), 400},
    {"NUL in method", LIT("G\0T / HTTP/1.1\r\n" H "\r\n"), 400},
    {"NUL at end of head", LIT("GET / HTTP/1.1\r\n" H "\r\n\0"), 400},
    {"control byte in value",
     "GET / HTTP/1.1\r\n" H "X: a\x01"
     "b\r\n\r\n",
     0, 400},
    {"DEL in value",
     "GET / HTTP/1.1\r\n" H "X: a\x7f"
     "b\r\n\r\n",
     0, 400},
    {"escape in name", "GET / HTTP/1.1\r\n" H "X\x1b: a\r\n\r\n", 0, 400},
    /* header syntax */
    {"header without colon", "GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", 0, 400},
    {"whitespace before colon", "GET / HTTP/1.1\r\n" H "X-A : b\r\n\r\n", 0, 400},
    {"tab before colon", "GET / HTTP/1.1\r\n" H "X-A\t: b\r\n\r\n", 0, 400},
    {"name not a token", "GET / HTTP/1.1\r\n" H "X(A): b\r\n\r\n", 0, 400},
    {"name with obs-text", "GET / HTTP/1.1\r\n" H "X\xc3\xa9: b\r\n\r\n", 0, 400},
    {"empty name", "GET / HTTP/1.1\r\n" H ": b\r\n\r\n", 0, 400},
    /* Host */
    {"missing Host 1.1", "GET / HTTP/1.1\r\n\r\n", 0, 400},
    {"duplicate Host same", "GET / HTTP/1.1\r\n" H H "\r\n", 0, 400},
    {"duplicate Host differ", "GET / HTTP/1.1\r\n" H "host: b.example\r\n\r\n", 0, 400},
    {"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, 400},
    {"empty Host spaces", "GET / HTTP/1.1\r\nHost:   \r\n\r\n", 0, 400},
    {"Host with space", "GET / HTTP/1.1\r\nHost: a example\r\n\r\n", 0, 400},
    {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n", 0, 400},
    {"Host with path", "GET / HTTP/1.1\r\nHost: a.example/x\r\n\r\n", 0, 400},
    {"Host port too big", "GET / HTTP/1.1\r\nHost: a.example:65536\r\n\r\n", 0, 400},
    {"Host port not digits", "GET / HTTP/1.1\r\nHost: a.example:8o\r\n\r\n", 0, 400},
    {"Host two colons", "GET / HTTP/1.1\r\nHost: a.example:1:2\r\n\r\n", 0, 400},
    {"Host open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 0, 400},
    /* request line and target */
    {"absolute-form Host differs", "GET http://b.example/ HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"absolute-form port differs", "GET http://a.example:81/ HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"absolute-form userinfo", "GET http://u@a.example/ HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"absolute-form empty authority", "GET http:///x HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"absolute-form other scheme", "GET ftp://a.example/ HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"authority-form", "GET a.example:443 HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"CONNECT", "CONNECT a.example:443 HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"asterisk with GET", "GET * HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"relative target", "GET x/y HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"fragment in target", "GET /a#b HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"obs-text in target", "GET /\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"double space", "GET  / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"trailing space", "GET / HTTP/1.1 \r\n" H "\r\n", 0, 400},
    {"tab separator", "GET\t/ HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"no version", "GET /\r\n" H "\r\n", 0, 400},
    {"method not a token", "G(T / HTTP/1.1\r\n" H "\r\n", 0, 400},
    {"unknown method", "FOO / HTTP/1.1\r\n" H "\r\n", 0, 501},
    {"lower-case method", "get / HTTP/1.1\r\n" H "\r\n", 0, 501},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", 0, 505},
    {"HTTP/0.9", "GET / HTTP/0.9\r\n" H "\r\n", 0, 505},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n" H "\r\n", 0, 505},
    {"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 505},
    {"HTTP/1.10", "GET / HTTP/1.10\r\n" H "\r\n", 0, 400},
    {"lower-case http", "GET / http/1.1\r\n" H "\r\n", 0, 400},
    {"truncated head", "GET / HTTP/1.1\r\n" H, 0, 400},
};

static void test_vectors(void)
{
    static struct out o;
    size_t n = sizeof vecs / sizeof vecs[0];
    unsigned accepted = 0;
    for (size_t i = 0; i < n; i++) {
        const struct vec *v = &vecs[i];
        size_t len = v->len ? v->len : strlen(v->in);
        unsigned st = run_whole(HMSG_REQUEST, v->in, len, &o);
        if (st != v->status)
            fprintf(stderr, "vector \"%s\": status %u, want %u (%s)\n", v->name, st, v->status,
                    o.s);
        CHECK_EQ(st, v->status);
        if (v->status == 0) {
            accepted++;
            /* one message, ended, clean EOF */
            size_t hl = strlen(o.s);
            CHECK(hl >= 8 && strcmp(o.s + hl - 8, "]E|eof:E") == 0);
        }
    }
    printf("%zu request vectors (%u accepted, %zu rejected)\n", n, accepted, n - accepted);
    CHECK(n - accepted >= 60);
}

/* ---- one request, step by step ---- */

static enum hmsg_event feed_str(hmsg *m, const char *s, size_t *used)
{
    return hmsg_feed(m, (const uint8_t *)s, strlen(s), used);
}

static void test_events_cl(void)
{
    hmsg *m = hmsg_new(HMSG_REQUEST, &lim);
    const char *in = "POST /up?x=1 HTTP/1.1\r\nHost: My.Example:8080\r\nContent-Length: 5\r\n"
                     "X-Forwarded-For: 6.6.6.6\r\n\r\nhelloGET";
    size_t used, hl = strlen(in) - 8;
    CHECK_EQ(feed_str(m, in, &used), HMSG_HEAD);
    CHECK_EQ(used, hl);
    CHECK(hmsg_in_message(m));
    const struct hmsg_head *h = hmsg_head(m);
    CHECK(h->method.len == 4 && memcmp(h->method.p, "POST", 4) == 0);
    CHECK(h->target.len == 7 && memcmp(h->target.p, "/up?x=1", 7) == 0);
    CHECK(h->host.len == 15 && memcmp(h->host.p, "My.Example:8080", 15) == 0);
    CHECK_EQ(h->http_major, 1);
    CHECK_EQ(h->http_minor, 1);
    CHECK(h->keep_alive);
    CHECK(!h->upgrade);
    CHECK(!h->chunked);
    CHECK(h->has_length);
    CHECK_EQ(h->content_length, 5);
    CHECK(!h->until_eof);
    CHECK_EQ(h->nheaders, 3);
    CHECK(h->raw.p == in && h->raw.len == hl);
    const struct hmsg_header *f = hmsg_find(h, "content-LENGTH");
    CHECK(f && f->value.len == 1 && f->value.p[0] == '5');
    CHECK(hmsg_find(h, "content-len") == NULL);
    char name[64];
    CHECK_EQ(hmsg_host_name(h, name, sizeof name), 10);
    CHECK_STR(name, "my.example");

    /* body in two pieces; the pipelined "GET" is not consumed */
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)in + hl, 2, &used), HMSG_BODY);
    CHECK_EQ(used, 2);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)in + hl + 2, 6, &used), HMSG_END);
    CHECK_EQ(used, 3);
    CHECK(!hmsg_in_message(m));
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)"GET", 3, &used), HMSG_NEED_MORE);
    CHECK_EQ(used, 0);
    CHECK_EQ(hmsg_feed_eof(m), HMSG_ERROR); /* truncated head */
    CHECK_EQ(hmsg_error_status(m), 400);
    hmsg_free(m);
}

static void test_events_no_body(void)
{
    hmsg *m = hmsg_new(HMSG_REQUEST, &lim);
    size_t used;
    CHECK_EQ(hmsg_error_status(m), 0);
    CHECK_STR(hmsg_error_reason(m), "");
    CHECK_EQ(hmsg_feed(m, NULL, 0, &used), HMSG_NEED_MORE);
    CHECK_EQ(feed_str(m, "GET / HTTP/1.1\r\nHost: a\r\n", &used), HMSG_NEED_MORE);
    CHECK_EQ(used, 0);
    CHECK_EQ(feed_str(m, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &used), HMSG_HEAD);
    CHECK_EQ(used, 27);
    CHECK(hmsg_in_message(m));
    CHECK_EQ(hmsg_feed(m, NULL, 0, &used), HMSG_END);
    CHECK_EQ(used, 0);
    CHECK(!hmsg_in_message(m));
    CHECK_EQ(hmsg_feed_eof(m), HMSG_END);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)"G", 1, &used), HMSG_ERROR);
    hmsg_free(m);

    /* END pending: EOF right after the head is still a clean end */
    m = hmsg_new(HMSG_REQUEST, &lim);
    CHECK_EQ(feed_str(m, "GET / HTTP/1.0\r\n\r\n", &used), HMSG_HEAD);
    CHECK_EQ(hmsg_feed_eof(m), HMSG_END);
    hmsg_free(m);

    /* only empty lines before EOF: clean */
    m = hmsg_new(HMSG_REQUEST, &lim);
    CHECK_EQ(feed_str(m, "\r\n\r\n", &used), HMSG_NEED_MORE);
    CHECK_EQ(hmsg_feed_eof(m), HMSG_END);
    hmsg_free(m);

    /* leading empty lines are part of used, not of raw */
    m = hmsg_new(HMSG_REQUEST, &lim);
    CHECK_EQ(feed_str(m, "\r\nGET / HTTP/1.0\r\n\r\n", &used), HMSG_HEAD);
    CHECK_EQ(used, 20);
    CHECK_EQ(hmsg_head(m)->raw.len, 18);
    CHECK(memcmp(hmsg_head(m)->raw.p, "GET", 3) == 0);
    hmsg_free(m);
}

static void test_error_sticky(void)
{
    hmsg *m = hmsg_new(HMSG_REQUEST, &lim);
    size_t used = 99;
    CHECK_EQ(feed_str(m, "GET / HTTP/1.1\nHost: a\r\n\r\n", &used), HMSG_ERROR);
    CHECK_EQ(used, 0);
    CHECK_EQ(hmsg_error_status(m), 400);
    CHECK_STR(hmsg_error_reason(m), "bare LF");
    CHECK_EQ(feed_str(m, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &used), HMSG_ERROR);
    CHECK_EQ(hmsg_feed(m, NULL, 0, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_feed_eof(m), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 400);
    hmsg_free(m);
}

static void test_limits(void)
{
    struct hmsg_limits small = {64, 3};
    CHECK(hmsg_new(HMSG_REQUEST, NULL) == NULL);
    CHECK(hmsg_new(HMSG_REQUEST, &(struct hmsg_limits){0, 10}) == NULL);
    CHECK(hmsg_new(HMSG_REQUEST, &(struct hmsg_limits){1 << 20, 10}) == NULL);
    CHECK(hmsg_new(HMSG_REQUEST, &(struct hmsg_limits){1024, HMSG_MAX_HEADERS_LIMIT + 1}) == NULL);
    CHECK(hmsg_new((enum hmsg_kind)7, &lim) == NULL);

    /* head of exactly max_head bytes is fine, one more is 431 */
    char buf[256];
    size_t used;
    const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    size_t pl = strlen(pre);
    memcpy(buf, pre, pl);
    memset(buf + pl, 'v', 64 - pl - 4);
    memcpy(buf + 60, "\r\n\r\n", 4);
    hmsg *m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)buf, 64, &used), HMSG_HEAD);
    CHECK_EQ(used, 64);
    hmsg_free(m);
    memmove(buf + 61, buf + 60, 4);
    buf[60] = 'v';
    m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)buf, 65, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 431);
    hmsg_free(m);

    /* incomplete head: NEED_MORE up to max_head bytes, 431 at the next one */
    memset(buf, 'v', sizeof buf);
    memcpy(buf, pre, pl);
    m = hmsg_new(HMSG_REQUEST, &small);
    unsigned need_more = 0;
    enum hmsg_event ev = HMSG_NEED_MORE;
    size_t k;
    for (k = 1; k <= 200 && ev == HMSG_NEED_MORE; k++) {
        ev = hmsg_feed(m, (const uint8_t *)buf, k, &used);
        need_more += ev == HMSG_NEED_MORE;
    }
    CHECK_EQ(ev, HMSG_ERROR);
    CHECK_EQ(k - 1, 65);
    CHECK_EQ(need_more, 64);
    CHECK_EQ(hmsg_error_status(m), 431);
    hmsg_free(m);

    /* same when it arrives in one piece */
    m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)buf, 200, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 431);
    hmsg_free(m);

    /* still in the request line past the method: 414, however it arrives;
     * no space yet (a method over the limit): 431 */
    memset(buf, 'a', sizeof buf);
    memcpy(buf, "GET /", 5);
    m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)buf, 200, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 414);
    hmsg_free(m);
    m = hmsg_new(HMSG_REQUEST, &small);
    for (k = 1, ev = HMSG_NEED_MORE; k <= 200 && ev == HMSG_NEED_MORE; k++)
        ev = hmsg_feed(m, (const uint8_t *)buf, k, &used);
    CHECK_EQ(k - 1, 65);
    CHECK_EQ(hmsg_error_status(m), 414);
    hmsg_free(m);
    m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)buf + 5, 100, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 431);
    hmsg_free(m);
    /* after empty lines too */
    memcpy(buf, "\r\n\r\nGET /", 9);
    m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)buf, 200, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 414);
    hmsg_free(m);

    /* header count: 3 fine, 4 is 431 */
    m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(feed_str(m, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", &used), HMSG_HEAD);
    CHECK_EQ(hmsg_head(m)->nheaders, 3);
    hmsg_free(m);
    m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(feed_str(m, "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &used),
             HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 431);
    hmsg_free(m);

    /* a violation before the limit wins over 431 */
    m = hmsg_new(HMSG_REQUEST, &small);
    memset(buf, 'v', sizeof buf);
    memcpy(buf, "GET / HTTP/1.1\r\nHost: a\n", 24);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)buf, 200, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 400);
    hmsg_free(m);

    /* trailer section larger than max_head: 400 in the body */
    m = hmsg_new(HMSG_REQUEST, &small);
    CHECK_EQ(feed_str(m, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &used),
             HMSG_HEAD);
    memset(buf, 'v', sizeof buf);
    memcpy(buf, "0\r\nX: ", 6);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)buf, 200, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 400);
    hmsg_free(m);
}

static void test_keep_alive_upgrade(void)
{
    static const struct {
        const char *in;
        bool keep_alive, upgrade;
    } t[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false, false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\n\r\n", false, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: x ,keep-alive \r\n\r\n", true, false},
        {"GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", false, false},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true,
         true},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, upgrade\r\nUpgrade: "
         "websocket\r\n\r\n",
         true, true},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: upgrade\r\nUpgrade: "
         "h2c\r\n\r\n",
         true, true},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", true, false},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", true, false},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade:\r\n\r\n", true, false},
        {"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgraded\r\nUpgrade: websocket\r\n\r\n", true,
         false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        hmsg *m = hmsg_new(HMSG_REQUEST, &lim);
        size_t used;
        CHECK_EQ(feed_str(m, t[i].in, &used), HMSG_HEAD);
        CHECK_EQ(hmsg_head(m)->keep_alive, t[i].keep_alive);
        CHECK_EQ(hmsg_head(m)->upgrade, t[i].upgrade);
        CHECK_EQ(hmsg_feed(m, NULL, 0, &used), HMSG_END);
        hmsg_free(m);
    }
    /* an upgrade request that the app refuses: the next request still parses */
    hmsg *m = hmsg_new(HMSG_REQUEST, &lim);
    const char *two = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
                      "Content-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t used, off = 0;
    CHECK_EQ(feed_str(m, two, &used), HMSG_HEAD);
    off += used;
    CHECK_EQ(feed_str(m, two + off, &used), HMSG_END);
    CHECK_EQ(used, 2);
    off += used;
    CHECK_EQ(feed_str(m, two + off, &used), HMSG_HEAD);
    CHECK_EQ(off + used, strlen(two));
    hmsg_free(m);
}

/* ---- pipelining: exact transcript at every split ---- */

static void test_pipelining(void)
{
    const char *two = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
                      "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    check_all_splits(HMSG_REQUEST, two, 0,
                     "H[GET /a HTTP/1.1\r\nHost: a\r\n\r\n]B[]E"
                     "H[POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n]B[hello]E|eof:E");
    check_three_piece_splits(HMSG_REQUEST, two);

    const char *three = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n"
                        "POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                        "GET /g HTTP/1.1\r\nHost: a\r\n\r\n";
    check_all_splits(HMSG_REQUEST, three, 0,
                     "H[POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n]"
                     "B[3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n]E"
                     "H[POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n]B[xyz]E"
                     "H[GET /g HTTP/1.1\r\nHost: a\r\n\r\n]B[]E|eof:E");
    check_three_piece_splits(HMSG_REQUEST, three);

    /* a chunked body that looks like a request must stay body */
    const char *smuggle = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "20\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n";
    check_all_splits(HMSG_REQUEST, smuggle, 0,
                     "H[POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n]"
                     "B[20\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n]E|eof:E");

    /* an error in the second message: the first is delivered intact */
    const char *bad =
        "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    check_all_splits(HMSG_REQUEST, bad, 0, "H[GET / HTTP/1.1\r\nHost: a\r\n\r\n]B[]EX400");

    /* the bytes after a bad chunk are never framed as a message (body bytes
     * passed before the error are dropped from the transcript) */
    const char *badchunk = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "1\r\naGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    check_all_splits(HMSG_REQUEST, badchunk, 0,
                     "H[POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n]B[X400");
}

/* ---- responses ---- */

static void test_responses(void)
{
    check_all_splits(HMSG_RESPONSE,
                     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
                     "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"
                     "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "2\r\nhi\r\n0\r\n\r\n",
                     0,
                     "H[HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n]B[abc]E"
                     "H[HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n]B[]E"
                     "H[HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n]B[]E"
                     "H[HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n]"
                     "B[2\r\nhi\r\n0\r\n\r\n]E|eof:E");

    /* interim 100 and 103, then the real response */
    check_all_splits(HMSG_RESPONSE,
                     "HTTP/1.1 100 Continue\r\n\r\n"
                     "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                     0,
                     "H[HTTP/1.1 100 Continue\r\n\r\n]B[]E"
                     "H[HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n]B[]E"
                     "H[HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n]B[ok]E|eof:E");

    /* HEAD answer: no body whatever CL says; applies to that one response,
     * and survives an interim 100 */
    check_all_splits(HMSG_RESPONSE,
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                     "HTTP/1.1 100 Continue\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                     1u | 2u,
                     "H[HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n]B[]E"
                     "H[HTTP/1.1 100 Continue\r\n\r\n]B[]E"
                     "H[HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n]B[]E"
                     "H[HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n]B[hello]E|eof:E");

    /* until EOF */
    check_all_splits(HMSG_RESPONSE,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc\r\n\r\nHTTP/1.1", 0,
                     "H[HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n]"
                     "B[abc\r\n\r\nHTTP/1.1]E|eof:E");
    check_all_splits(HMSG_RESPONSE, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", 0,
                     "H[HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n]B[zz]E|eof:E");

    /* 101: the message ends with the head; what follows is not ours */
    hmsg *m = hmsg_new(HMSG_RESPONSE, &lim);
    const char *up = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\n\r\n\x81\x05hello";
    size_t used, hl = strlen(up) - 7;
    CHECK_EQ(feed_str(m, up, &used), HMSG_HEAD);
    CHECK_EQ(used, hl);
    CHECK_EQ(hmsg_head(m)->status, 101);
    CHECK(hmsg_head(m)->upgrade);
    CHECK(!hmsg_head(m)->keep_alive);
    CHECK_EQ(feed_str(m, up + hl, &used), HMSG_END);
    CHECK_EQ(used, 0);
    CHECK_EQ(feed_str(m, up + hl, &used), HMSG_ERROR);
    CHECK_EQ(hmsg_error_status(m), 502);
    hmsg_free(m);

    /* fields of a response head */
    m = hmsg_new(HMSG_RESPONSE, &lim);
    CHECK_EQ(feed_str(m, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", &used), HMSG_HEAD);
    CHECK_EQ(hmsg_head(m)->status, 404);
    CHECK_EQ(hmsg_head(m)->http_minor, 0);
    CHECK(!hmsg_head(m)->keep_alive);
    CHECK(hmsg_head(m)->has_length);
    CHECK_EQ(hmsg_head(m)->method.len, 0);
    CHECK_EQ(hmsg_feed(m, NULL, 0, &used), HMSG_END);
    CHECK_EQ(feed_str(m, "HTTP/1.1 200 OK\r\n\r\n", &used), HMSG_HEAD);
    CHECK(hmsg_head(m)->until_eof);
    CHECK(!hmsg_head(m)->keep_alive);
    CHECK_EQ(hmsg_feed(m, NULL, 0, &used), HMSG_NEED_MORE);
    CHECK_EQ(hmsg_feed_eof(m), HMSG_END);
    hmsg_free(m);

    /* lenient like http-parser: LF-only line ends */
    check_all_splits(HMSG_RESPONSE, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 0,
                     "H[HTTP/1.1 200 OK\nContent-Length: 2\n\n]B[ok]E|eof:E");

    /* never mis-framed: each of these is a 502 */
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;\nx\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
        "FOO 200 OK\r\n\r\n",
    };
    static struct out o;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned st = run_whole(HMSG_RESPONSE, bad[i], strlen(bad[i]), &o);
        if (st != 502)
            fprintf(stderr, "bad response %zu: %s\n", i, o.s);
        CHECK_EQ(st, 502);
    }
}

/* ---- host name and rewrite ---- */

static const struct hmsg_head *parse_one(hmsg **mp, const char *in)
{
    size_t used;
    *mp = hmsg_new(HMSG_REQUEST, &lim);
    if (feed_str(*mp, in, &used) != HMSG_HEAD)
        return NULL;
    return hmsg_head(*mp);
}

static void test_host_name(void)
{
    static const struct {
        const char *in;
        const char *want; /* NULL: -EINVAL */
    } t[] = {
        {"GET / HTTP/1.1\r\nHost: MyApp.Example.COM\r\n\r\n", "myapp.example.com"},
        {"GET / HTTP/1.1\r\nHost: myapp.example.com.:8080\r\n\r\n", "myapp.example.com"},
        {"GET / HTTP/1.1\r\nHost: myapp.example.com:\r\n\r\n", "myapp.example.com"},
        {"GET / HTTP/1.1\r\nHost: [2001:DB8::1]:443\r\n\r\n", "[2001:db8::1]"},
        {"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "127.0.0.1"},
        {"GET HTTP://Other.Example/x HTTP/1.1\r\nHost: other.example\r\n\r\n", "other.example"},
        {"GET http://x.example:81?q HTTP/1.0\r\n\r\n", "x.example"},
        {"GET / HTTP/1.0\r\n\r\n", NULL},
        {"GET / HTTP/1.1\r\nHost: .\r\n\r\n", NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        hmsg *m;
        const struct hmsg_head *h = parse_one(&m, t[i].in);
        CHECK(h != NULL);
        if (h) {
            char out[64];
            ssize_t r = hmsg_host_name(h, out, sizeof out);
            if (t[i].want) {
                CHECK_EQ(r, (ssize_t)strlen(t[i].want));
                CHECK_STR(out, t[i].want);
            } else {
                CHECK_EQ(r, -EINVAL);
            }
        }
        hmsg_free(m);
    }
    /* cap: exactly len + 1 works, len does not */
    hmsg *m;
    const struct hmsg_head *h = parse_one(&m, "GET / HTTP/1.1\r\nHost: abc.example\r\n\r\n");
    char out[16];
    CHECK_EQ(hmsg_host_name(h, out, 12), 11);
    CHECK_EQ(hmsg_host_name(h, out, 11), -EINVAL);
    CHECK_EQ(hmsg_host_name(h, out, 0), -EINVAL);
    hmsg_free(m);

    /* a hand-made head with bad bytes is refused */
    struct hmsg_head hh;
    memset(&hh, 0, sizeof hh);
    hh.host = (struct hslice){"a b", 3};
    hh.target = (struct hslice){"/", 1};
    CHECK_EQ(hmsg_host_name(&hh, out, sizeof out), -EINVAL);
    hh.host = (struct hslice){"a%2e", 4};
    CHECK_EQ(hmsg_host_name(&hh, out, sizeof out), -EINVAL);
}

static void test_rewrite(void)
{
    hmsg *m;
    const struct hmsg_head *h =
        parse_one(&m, "POST http://App.Example/p?q=1 HTTP/1.1\r\nHost: app.example\r\n"
                      "X-Forwarded-For: 6.6.6.6\r\nx-forwarded-proto: https\r\n"
                      "X-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\nForwarded: for=1.2.3.4\r\n"
                      "X-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nx-client-ip: 6.6.6.6\r\n"
                      "Content-Length:  3 \r\nX-Keep: a\tb\r\n\r\n");
    CHECK(h != NULL);
    struct hmsg_forward fw = {"203.0.113.9", "http"};
    uint8_t out[1024];
    const char *want = "POST /p?q=1 HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n"
                       "X-Keep: a\tb\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: http\r\n"
                       "X-Forwarded-Host: app.example\r\n\r\n";
    ssize_t n = hmsg_rewrite_request(h, &fw, out, sizeof out);
    CHECK_EQ(n, (ssize_t)strlen(want));
    CHECK(n > 0 && memcmp(out, want, (size_t)n) == 0);
    /* every cap below the length is -ENOSPC and writes nothing past cap */
    unsigned bad = 0;
    for (size_t cap = 0; cap < (size_t)n; cap++) {
        memset(out, 0xAA, sizeof out);
        if (hmsg_rewrite_request(h, &fw, out, cap) != -ENOSPC || out[cap] != 0xAA)
            bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(hmsg_rewrite_request(h, &fw, out, (size_t)n), n);
    /* the rewritten head is itself a valid request */
    hmsg *r = hmsg_new(HMSG_REQUEST, &lim);
    size_t used;
    CHECK_EQ(hmsg_feed(r, out, (size_t)n, &used), HMSG_HEAD);
    CHECK_EQ(used, (size_t)n);
    hmsg_free(r);
    /* bad forward values */
    CHECK_EQ(
        hmsg_rewrite_request(h, &(struct hmsg_forward){"1.2.3.4\r\nX: y", "http"}, out, sizeof out),
        -EINVAL);
    CHECK_EQ(hmsg_rewrite_request(h, &(struct hmsg_forward){NULL, "http"}, out, sizeof out),
             -EINVAL);
    CHECK_EQ(hmsg_rewrite_request(h, NULL, out, sizeof out), -EINVAL);
    hmsg_free(m);

    /* absolute-form without path, HTTP/1.0 without Host: Host is added */
    h = parse_one(&m, "GET http://a.example:8080?x HTTP/1.0\r\n\r\n");
    want = "GET /?x HTTP/1.0\r\nHost: a.example:8080\r\nX-Forwarded-For: 2001:db8::1\r\n"
           "X-Forwarded-Proto: https\r\nX-Forwarded-Host: a.example:8080\r\n\r\n";
    n = hmsg_rewrite_request(h, &(struct hmsg_forward){"2001:db8::1", "https"}, out, sizeof out);
    CHECK_EQ(n, (ssize_t)strlen(want));
    CHECK(n > 0 && memcmp(out, want, (size_t)n) == 0);
    hmsg_free(m);

    /* framing fields in canonical form; underscore spellings of the dropped
     * fields are dropped too (a WSGI app reads X_Forwarded_For as
     * HTTP_X_FORWARDED_FOR); names that only look alike stay */
    h = parse_one(&m, "POST /u HTTP/1.1\r\nHost: a\r\ntransfer-encoding:\tCHUNKED \r\n"
                      "X_Forwarded_For: 6.6.6.6\r\nX-Forwarded_Host: evil\r\nx_real_ip: 6\r\n"
                      "True_Client_IP: 6\r\nX_Client_Ip: 6\r\nForwarded: x\r\nX-Forwarded: y\r\n"
                      "XForwarded-For: z\r\n\r\n");
    CHECK(h != NULL);
    want = "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Forwarded: y\r\n"
           "XForwarded-For: z\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: http\r\n"
           "X-Forwarded-Host: a\r\n\r\n";
    n = hmsg_rewrite_request(h, &(struct hmsg_forward){"1.2.3.4", "http"}, out, sizeof out);
    CHECK_EQ(n, (ssize_t)strlen(want));
    CHECK(n > 0 && memcmp(out, want, (size_t)n) == 0);
    hmsg_free(m);
    h = parse_one(&m, "PUT /u HTTP/1.1\r\nHost: a\r\ncontent-length: 007\r\n\r\n");
    CHECK(h != NULL);
    want = "PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nX-Forwarded-For: 1.2.3.4\r\n"
           "X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n";
    n = hmsg_rewrite_request(h, &(struct hmsg_forward){"1.2.3.4", "http"}, out, sizeof out);
    CHECK_EQ(n, (ssize_t)strlen(want));
    CHECK(n > 0 && memcmp(out, want, (size_t)n) == 0);
    hmsg_free(m);
    h = parse_one(&m, "PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n");
    CHECK(h != NULL);
    n = hmsg_rewrite_request(h, &(struct hmsg_forward){"1.2.3.4", "http"}, out, sizeof out);
    CHECK(n > 0 && memmem(out, (size_t)n, "Content-Length: 999999999999999999\r\n", 36) != NULL);
    hmsg_free(m);

    /* origin-form 1.0 without Host: no X-Forwarded-Host; asterisk stays */
    h = parse_one(&m, "OPTIONS * HTTP/1.0\r\n\r\n");
    want = "OPTIONS * HTTP/1.0\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: http\r\n\r\n";
    n = hmsg_rewrite_request(h, &(struct hmsg_forward){"1.2.3.4", "http"}, out, sizeof out);
    CHECK_EQ(n, (ssize_t)strlen(want));
    CHECK(n > 0 && memcmp(out, want, (size_t)n) == 0);
    hmsg_free(m);
}

/* The caller may hand back its bytes with more appended at any size; the scan
 * resumes and the result is the same as in one piece. Also: a caller that
 * passes fewer bytes than before (contract breach) gets a fresh scan. */
static void test_resume(void)
{
    const char *in = "GET /x HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n";
    hmsg *m = hmsg_new(HMSG_REQUEST, &lim);
    size_t used;
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)in, 20, &used), HMSG_NEED_MORE);
    CHECK_EQ(hmsg_feed(m, (const uint8_t *)in, 5, &used), HMSG_NEED_MORE);
    CHECK_EQ(feed_str(m, in, &used), HMSG_HEAD);
    CHECK_EQ(used, strlen(in));
    CHECK_EQ(hmsg_head(m)->nheaders, 2);
    hmsg_free(m);
}

int main(void)
{
    test_vectors();
    test_events_cl();
    test_events_no_body();
    test_error_sticky();
    test_limits();
    test_keep_alive_upgrade();
    test_pipelining();
    test_responses();
    test_host_name();
    test_rewrite();
    test_resume();
    return check_done();
}
