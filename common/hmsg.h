/*
 * hmsg: HTTP/1 message framing for one direction of one connection
 * (DESIGN.md decision 4, docs/http.md).
 *
 * The edge frames every request a visitor sends, and both the edge and the CLI
 * frame the responses coming back, so that pipelined requests, bodies
 * (Content-Length or chunked) and upgrades are delimited exactly and a head can
 * be checked and rewritten before it is forwarded. Bodies are never buffered:
 * the caller learns how many of the bytes it holds belong to the current body
 * and forwards them as they are (chunk framing included).
 *
 * The head is checked strictly (RFC 9112) on top of http-parser 2.9: bare LF or
 * CR, obs-fold, control bytes, header names that are not tokens, duplicate
 * Host or Content-Length, Content-Length with Transfer-Encoding, a
 * Transfer-Encoding other than "chunked", TE in HTTP/1.0, an invalid
 * Content-Length, a missing Host in HTTP/1.1, a Connection header naming
 * Content-Length, Transfer-Encoding or Host: 400. Head over max_head bytes
 * or over max_headers fields: 431 (414 while still in the request line, past
 * the method). Version other than 1.0 / 1.1: 505.
 * Body framing uses http_parser_execute (chunk sizes, extensions, trailers).
 *
 * Usage (request side):
 *   hmsg *m = hmsg_new(HMSG_REQUEST, &limits);
 *   loop: ev = hmsg_feed(m, bytes, n, &used)
 *     HMSG_NEED_MORE: head incomplete; keep ALL bytes (used == 0) and call
 *                     again with more appended (the head must be contiguous).
 *                     Also returned inside a body when n == 0.
 *     HMSG_HEAD:      used == head length; hmsg_head(m) describes it (its
 *                     slices point into the bytes passed in this call).
 *                     Empty lines before the start line are ignored (RFC 9112
 *                     2.2): they count in used and max_head, not in raw.
 *     HMSG_BODY:      used > 0 bytes are body bytes of the current message.
 *     HMSG_END:       used >= 0 bytes end the current message (the last body
 *                     bytes, possibly 0); the next feed starts a new message.
 *     HMSG_ERROR:     hmsg_error_status(m) is the HTTP status to answer
 *                     (requests: 400, 414, 431, 501, 505; responses: 502),
 *                     hmsg_error_reason(m) a short text.
 *   After HMSG_HEAD the caller keeps feeding until HMSG_END, even for messages
 *   without a body (that feed returns HMSG_END with used == 0, and may be
 *   called with n == 0). After the HMSG_END of a 101 response the connection
 *   is no longer HTTP: feeding more bytes returns HMSG_ERROR.
 */
#ifndef WARREN_HMSG_H
#define WARREN_HMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HMSG_MAX_HEADERS_LIMIT 100

enum hmsg_kind { HMSG_REQUEST, HMSG_RESPONSE };

enum hmsg_event { HMSG_NEED_MORE, HMSG_HEAD, HMSG_BODY, HMSG_END, HMSG_ERROR };

struct hmsg_limits {
    size_t max_head;      /* bytes, e.g. 16384 */
    unsigned max_headers; /* fields, <= HMSG_MAX_HEADERS_LIMIT, e.g. 100 */
};

/* A slice of the head bytes passed to hmsg_feed. */
struct hslice {
    const char *p;
    size_t len;
};

struct hmsg_header {
    struct hslice name, value; /* value without surrounding whitespace */
};

struct hmsg_head {
    /* request */
    struct hslice method; /* "GET" */
    struct hslice target; /* request-target as sent */
    struct hslice host;   /* Host header value (empty if absent) */
    /* response */
    unsigned status; /* 100..999 */
    /* both */
    unsigned http_major, http_minor;
    bool keep_alive; /* after this message the connection may carry another */
    bool upgrade;    /* request: Connection: upgrade + Upgrade header;
                        response: status 101 */
    bool chunked;    /* Transfer-Encoding: chunked */
    bool has_length; /* Content-Length present */
    uint64_t content_length;
    bool until_eof; /* response body delimited by connection close */
    unsigned nheaders;
    struct hmsg_header headers[HMSG_MAX_HEADERS_LIMIT];
    struct hslice raw; /* the whole head including the final CRLFCRLF */
};

typedef struct hmsg hmsg;

/* NULL on allocation failure or invalid limits (max_head must be 1..65536,
 * max_headers <= HMSG_MAX_HEADERS_LIMIT). */
hmsg *hmsg_new(enum hmsg_kind kind, const struct hmsg_limits *lim);
void hmsg_free(hmsg *m); /* accepts NULL */

/* Feed bytes; see the usage above. *used is always written. After HMSG_ERROR
 * every further call returns HMSG_ERROR. */
enum hmsg_event hmsg_feed(hmsg *m, const uint8_t *p, size_t n, size_t *used);

/* The peer closed its side. Returns HMSG_END if that ends the current message
 * cleanly (no message in progress, or a response delimited by EOF), else
 * HMSG_ERROR (truncated head or body). Feeding bytes afterwards is an error. */
enum hmsg_event hmsg_feed_eof(hmsg *m);

/* Response side only: the request this response answers was HEAD (no body
 * whatever the headers say) / was CONNECT. Call before the response's head is
 * fed; applies to that one response. */
void hmsg_expect_head_response(hmsg *m);

/* Valid after HMSG_HEAD until the next hmsg_feed that starts another head. */
const struct hmsg_head *hmsg_head(const hmsg *m);
/* How many of the next bytes are body payload taken as they are: the rest of
 * a Content-Length body, of the current chunk's data, or UINT64_MAX for a
 * response delimited by EOF; 0 outside a body or inside chunk framing.
 * Feeding up to that many (less one, to keep HMSG_END on the usual path)
 * only counts them, so a caller may read them straight to their destination
 * and feed them afterwards. */
uint64_t hmsg_body_run(const hmsg *m);
/* True between HMSG_HEAD and HMSG_END. */
bool hmsg_in_message(const hmsg *m);
unsigned hmsg_error_status(const hmsg *m);
const char *hmsg_error_reason(const hmsg *m); /* never NULL */

/* Case-insensitive lookup of the first header with this name; NULL if none. */
const struct hmsg_header *hmsg_find(const struct hmsg_head *h, const char *name);

/* Normalised host name of a request: Host value (or the authority of an
 * absolute-form target) lowercased, without port and without one trailing dot.
 * Writes NUL-terminated into out. Returns its length, or -EINVAL when the host
 * is empty, too long for cap, or holds bytes not allowed in a host name. */
ssize_t hmsg_host_name(const struct hmsg_head *h, char *out, size_t cap);

/* What the edge adds to a forwarded request. */
struct hmsg_forward {
    const char *client_ip; /* visitor address without port, e.g. "203.0.113.9" or "2001:db8::1" */
    const char *proto;     /* "http" or "https" */
};

/* Write the request head to forward: request line (absolute-form target turned
 * into origin-form), every header except X-Forwarded-* and Forwarded sent by
 * the visitor (as "Name: value"; Transfer-Encoding and Content-Length in one
 * canonical form, "chunked" and plain decimal), Host: <authority> if an HTTP/1.0
 * absolute-form request had no Host, then X-Forwarded-For: client_ip,
 * X-Forwarded-Proto: proto, X-Forwarded-Host: <Host as sent> (omitted when
 * there is none), then CRLF. Returns the length, -ENOSPC when cap is too
 * small, or -EINVAL when client_ip/proto are missing, empty or hold bytes
 * outside visible ASCII. */
ssize_t hmsg_rewrite_request(const struct hmsg_head *h, const struct hmsg_forward *fw, uint8_t *out,
                             size_t cap);

#endif
