/*
 * hmsg: HTTP/1 message framing for one direction of one connection.
 *
 * Why: the edge must decide, byte for byte, where each visitor request starts
 * and ends before it forwards anything; a disagreement with the application
 * behind the tunnel is request smuggling. Two independent parsers look at
 * every byte and must agree:
 *
 *  - our own scanners (strict, RFC 9112) check the head line by line and the
 *    chunked body byte by byte (chunk sizes, extensions, CRLFs, trailers);
 *  - http-parser (Debian's build, which is NOT compiled strict: it takes any
 *    two bytes after chunk data as the CRLF and accepts "Name : v") frames the
 *    same bytes; its head flags and body boundaries are cross-checked against
 *    ours and any difference is an error, never a guess.
 *
 * Invariants:
 *  - a head is validated only from bytes the caller passed in this or earlier
 *    NEED_MORE calls (the caller keeps them); the scan is resumable and its
 *    outcome depends only on the byte sequence, never on how it was split;
 *  - no message consumes a byte of the next one: http-parser is paused in
 *    on_message_complete and a fresh parser frames each message;
 *  - every error is final (ST_ERROR is absorbing);
 *  - request errors carry the status to answer (400, 414, 431, 501, 505);
 *    response errors are always 502 (the edge answers the visitor);
 *  - nothing here allocates after hmsg_new, logs, or keeps global state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <http_parser.h>

#include "hmsg.h"

/* Upper bound for limits.max_head: below http-parser's compiled-in
 * HTTP_MAX_HEADER_SIZE (80 KiB), so our limit is always the one that fires. */
#define HMSG_MAX_HEAD_LIMIT 65536u

/* Chunk sizes are capped so that http-parser's own overflow check can never
 * fire on a size we accepted (it rejects values near 2^64). */
#define CHUNK_SIZE_MAX ((UINT64_C(1) << 60) - 1)

enum state { ST_HEAD, ST_BODY, ST_END_PENDING, ST_UPGRADED, ST_CLOSED, ST_ERROR };
enum body { B_NONE, B_LENGTH, B_CHUNKED, B_EOF };
enum tform { TF_NONE, TF_ORIGIN, TF_ABSOLUTE, TF_ASTERISK };

struct span {
    uint32_t off, len;
};

struct field {
    struct span name, value;
};

/* Head scan state: offsets into the bytes the caller keeps across NEED_MORE. */
struct scan {
    size_t pos;   /* next byte to look at */
    size_t line;  /* start of the current line */
    size_t start; /* start of the start line (after ignored empty lines) */
    bool started; /* start line complete */
    struct span method, target, authority;
    enum tform form;
    unsigned major, minor;
    unsigned nfields;
    int host, cl, te; /* field index, -1 if absent */
    uint64_t cl_value;
    bool conn_close, conn_keep_alive, conn_upgrade, has_upgrade;
    bool conn_framing; /* Connection names Content-Length, Transfer-Encoding or Host */
    struct field f[HMSG_MAX_HEADERS_LIMIT];
};

enum cstate {
    C_SIZE0,
    C_SIZE,
    C_BWS,
    C_EXT_NAME0,
    C_EXT_NAME,
    C_EXT_AFTER_NAME,
    C_EXT_VAL0,
    C_EXT_TOKEN,
    C_EXT_QSTR,
    C_EXT_QPAIR,
    C_EXT_QEND,
    C_EXT_AFTER_VAL,
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TR_LINE0,
    C_TR_NAME,
    C_TR_VALUE,
    C_TR_LF,
    C_TR_END_LF,
    C_DONE,
};

/* Strict chunked-body scanner (RFC 9112 section 7.1). */
struct chunkv {
    enum cstate st;
    uint64_t size;
    size_t line;          /* bytes of the current chunk-size line */
    size_t trailer_bytes; /* bytes of the trailer section */
    unsigned ntrailers;
    unsigned name_len; /* trailer field name matcher */
    unsigned cand;     /* bitmask of forbidden names still matching */
};

struct hmsg {
    enum hmsg_kind kind;
    struct hmsg_limits lim;
    enum state st;
    enum body body;
    uint64_t remaining; /* B_LENGTH */
    struct chunkv cv;   /* B_CHUNKED */
    bool expect_head;   /* response: the request was HEAD/CONNECT */
    http_parser hp;
    bool hp_headers, hp_done;
    unsigned hp_flags;
    uint64_t hp_cl;
    unsigned err_status;
    const char *err_reason;
    struct hmsg_head head;
    struct scan sc;
};

enum scan_result { SCAN_MORE, SCAN_DONE, SCAN_ERR };

/* ---- character classes ------------------------------------------------- */

static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* Case-insensitive equality of a byte range with a lowercase C string. */
static bool ci_eq(const uint8_t *p, size_t len, const char *s)
{
    size_t sl = strlen(s);
    if (len != sl)
        return false;
    for (size_t i = 0; i < len; i++)
        if (lower(p[i]) != (uint8_t)s[i])
            return false;
    return true;
}

static bool ci_prefix(const uint8_t *p, size_t len, const char *s)
{
    size_t sl = strlen(s);
    return len >= sl && ci_eq(p, sl, s);
}

/* ---- errors -------------------------------------------------------------- */

static enum hmsg_event fail(hmsg *m, unsigned status, const char *reason)
{
    if (m->kind == HMSG_RESPONSE)
        status = 502; /* a bad response is answered to the visitor as 502 */
    m->st = ST_ERROR;
    m->err_status = status;
    m->err_reason = reason;
    return HMSG_ERROR;
}

static int fail_scan(hmsg *m, unsigned status, const char *reason)
{
    fail(m, status, reason);
    return -1;
}

/* ---- hosts and targets --------------------------------------------------- */

/* uri-host [ ":" port ] as accepted in Host and in an absolute-form target:
 * reg-name limited to letters, digits, '-', '.', '_' or an IP literal
 * "[hex:dots]"; port at most 5 digits, <= 65535 (may be empty, RFC 3986). */
static bool valid_authority(const uint8_t *p, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return false;
    if (p[0] == '[') {
        for (i = 1; i < len && p[i] != ']'; i++)
            if (hexval(p[i]) < 0 && p[i] != ':' && p[i] != '.')
                return false;
        if (i >= len || i == 1)
            return false;
        i++;
    } else {
        for (; i < len && p[i] != ':'; i++) {
            uint8_t c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
                  c == '.' || c == '_'))
                return false;
        }
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    if (p[i] != ':' || len - i - 1 > 5)
        return false;
    unsigned port = 0;
    for (i++; i < len; i++) {
        if (!is_digit(p[i]))
            return false;
        port = port * 10 + (unsigned)(p[i] - '0');
    }
    return port <= 65535;
}

/* Splits a request-target. For absolute-form, *auth is the authority and
 * *rest the path-abempty [ "?" query ] that follows it. */
static enum tform target_form(const uint8_t *t, size_t len, struct hslice *auth,
                              struct hslice *rest)
{
    if (len == 0)
        return TF_NONE;
    if (t[0] == '/')
        return TF_ORIGIN;
    if (len == 1 && t[0] == '*')
        return TF_ASTERISK;
    size_t skip;
    if (ci_prefix(t, len, "http://"))
        skip = 7;
    else if (ci_prefix(t, len, "https://"))
        skip = 8;
    else
        return TF_NONE;
    size_t e = skip;
    while (e < len && t[e] != '/' && t[e] != '?')
        e++;
    if (auth) {
        auth->p = (const char *)t + skip;
        auth->len = e - skip;
    }
    if (rest) {
        rest->p = (const char *)t + e;
        rest->len = len - e;
    }
    return TF_ABSOLUTE;
}

/* ---- head lines ---------------------------------------------------------- */

static int check_request_line(hmsg *m, const uint8_t *p, size_t s, size_t e)
{
    struct scan *sc = &m->sc;
    const uint8_t *sp1 = memchr(p + s, ' ', e - s);
    if (!sp1)
        return fail_scan(m, 400, "malformed request line");
    size_t a = (size_t)(sp1 - p);
    const uint8_t *sp2 = memchr(p + a + 1, ' ', e - a - 1);
    if (!sp2)
        return fail_scan(m, 400, "malformed request line");
    size_t b = (size_t)(sp2 - p);
    if (a == s || b == a + 1 || memchr(p + b + 1, ' ', e - b - 1))
        return fail_scan(m, 400, "malformed request line");
    for (size_t i = s; i < a; i++)
        if (!is_tchar(p[i]))
            return fail_scan(m, 400, "invalid method");
    const uint8_t *v = p + b + 1;
    if (e - b - 1 != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit(v[5]) || v[6] != '.' ||
        !is_digit(v[7]))
        return fail_scan(m, 400, "malformed HTTP version");
    sc->major = (unsigned)(v[5] - '0');
    sc->minor = (unsigned)(v[7] - '0');
    if (sc->major != 1 || sc->minor > 1)
        return fail_scan(m, 505, "HTTP version not supported");
    for (size_t i = a + 1; i < b; i++)
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == '#')
            return fail_scan(m, 400, "invalid byte in request target");
    sc->method = (struct span){(uint32_t)s, (uint32_t)(a - s)};
    sc->target = (struct span){(uint32_t)(a + 1), (uint32_t)(b - a - 1)};
    if (a - s == 7 && memcmp(p + s, "CONNECT", 7) == 0)
        return fail_scan(m, 400, "CONNECT is not supported");
    struct hslice auth;
    sc->form = target_form(p + a + 1, b - a - 1, &auth, NULL);
    switch (sc->form) {
    case TF_ORIGIN:
        return 0;
    case TF_ASTERISK:
        if (a - s == 7 && memcmp(p + s, "OPTIONS", 7) == 0)
            return 0;
        return fail_scan(m, 400, "asterisk-form target is only for OPTIONS");
    case TF_ABSOLUTE:
        if (!valid_authority((const uint8_t *)auth.p, auth.len))
            return fail_scan(m, 400, "invalid authority in absolute-form target");
        sc->authority = (struct span){(uint32_t)((const uint8_t *)auth.p - p), (uint32_t)auth.len};
        return 0;
    case TF_NONE:
        break;
    }
    return fail_scan(m, 400, "request target is not origin-form or absolute-form");
}

static int check_status_line(hmsg *m, const uint8_t *p, size_t s, size_t e)
{
    /* http-parser checks the rest (version digits, status code). */
    if (e - s < 12 || memcmp(p + s, "HTTP/", 5) != 0)
        return fail_scan(m, 502, "malformed status line");
    return 0;
}

/* Walks a comma-separated Connection value and records the tokens we act on. */
static void connection_tokens(struct scan *sc, const uint8_t *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ws(v[i]) || v[i] == ','))
            i++;
        size_t t = i;
        while (i < len && v[i] != ',')
            i++;
        size_t e = i;
        while (e > t && is_ws(v[e - 1]))
            e--;
        if (ci_eq(v + t, e - t, "close"))
            sc->conn_close = true;
        else if (ci_eq(v + t, e - t, "keep-alive"))
            sc->conn_keep_alive = true;
        else if (ci_eq(v + t, e - t, "upgrade"))
            sc->conn_upgrade = true;
        else if (ci_eq(v + t, e - t, "content-length") ||
                 ci_eq(v + t, e - t, "transfer-encoding") || ci_eq(v + t, e - t, "host"))
            sc->conn_framing = true;
    }
}

/* Content-Length and Transfer-Encoding: http-parser accepts leading SP/HT but
 * only SP after the value, so a trailing HT is refused here rather than
 * leaving the two parsers to disagree. */
static bool framing_ows_ok(const uint8_t *p, size_t vend, size_t e)
{
    for (size_t i = vend; i < e; i++)
        if (p[i] != ' ')
            return false;
    return true;
}

/* Name equal to a framing header once '_' is read as '-' (CGI-style backends
 * merge the two spellings). */
static bool underscore_alias(const uint8_t *n, size_t len, const char *name)
{
    if (len != strlen(name) || !memchr(n, '_', len))
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = n[i] == '_' ? '-' : lower(n[i]);
        if (c != (uint8_t)name[i])
            return false;
    }
    return true;
}

static int request_field(hmsg *m, const uint8_t *p, int idx, size_t vend, size_t e)
{
    struct scan *sc = &m->sc;
    const uint8_t *n = p + sc->f[idx].name.off, *v = p + sc->f[idx].value.off;
    size_t nl = sc->f[idx].name.len, vl = sc->f[idx].value.len;

    if (underscore_alias(n, nl, "content-length") || underscore_alias(n, nl, "transfer-encoding"))
        return fail_scan(m, 400, "header name aliases a framing header");
    if (ci_eq(n, nl, "host")) {
        if (sc->host >= 0)
            return fail_scan(m, 400, "duplicate Host");
        if (vl == 0)
            return fail_scan(m, 400, "empty Host");
        if (!valid_authority(v, vl))
            return fail_scan(m, 400, "invalid Host");
        sc->host = idx;
    } else if (ci_eq(n, nl, "content-length")) {
        if (sc->cl >= 0)
            return fail_scan(m, 400, "duplicate Content-Length");
        if (sc->te >= 0)
            return fail_scan(m, 400, "Content-Length with Transfer-Encoding");
        if (vl == 0 || !framing_ows_ok(p, vend, e))
            return fail_scan(m, 400, "invalid Content-Length");
        uint64_t x = 0;
        for (size_t i = 0; i < vl; i++) {
            if (!is_digit(v[i]))
                return fail_scan(m, 400, "invalid Content-Length");
            if (x > (UINT64_C(999999999999999999) - (uint64_t)(v[i] - '0')) / 10)
                return fail_scan(m, 400, "Content-Length too large");
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        sc->cl = idx;
        sc->cl_value = x;
    } else if (ci_eq(n, nl, "transfer-encoding")) {
        if (sc->minor == 0)
            return fail_scan(m, 400, "Transfer-Encoding in HTTP/1.0");
        if (sc->te >= 0)
            return fail_scan(m, 400, "duplicate Transfer-Encoding");
        if (sc->cl >= 0)
            return fail_scan(m, 400, "Content-Length with Transfer-Encoding");
        if (!ci_eq(v, vl, "chunked") || !framing_ows_ok(p, vend, e))
            return fail_scan(m, 400, "Transfer-Encoding other than chunked");
        sc->te = idx;
    }
    return 0;
}

static int check_field_line(hmsg *m, const uint8_t *p, size_t s, size_t e)
{
    struct scan *sc = &m->sc;
    if (is_ws(p[s]))
        return fail_scan(m, 400, "obs-fold (line folding) is not allowed");
    size_t i = s;
    while (i < e && is_tchar(p[i]))
        i++;
    if (i == e)
        return fail_scan(m, 400, "header line without colon");
    if (p[i] != ':') {
        if (is_ws(p[i]))
            return fail_scan(m, 400, "whitespace before colon");
        return fail_scan(m, 400, "invalid header name");
    }
    if (i == s)
        return fail_scan(m, 400, "empty header name");
    if (sc->nfields >= m->lim.max_headers)
        return fail_scan(m, 431, "too many header fields");
    size_t vs = i + 1, ve = e;
    while (vs < ve && is_ws(p[vs]))
        vs++;
    while (ve > vs && is_ws(p[ve - 1]))
        ve--;
    int idx = (int)sc->nfields++;
    sc->f[idx].name = (struct span){(uint32_t)s, (uint32_t)(i - s)};
    sc->f[idx].value = (struct span){(uint32_t)vs, (uint32_t)(ve - vs)};
    if (ci_eq(p + s, i - s, "connection"))
        connection_tokens(sc, p + vs, ve - vs);
    else if (ci_eq(p + s, i - s, "upgrade") && ve > vs)
        sc->has_upgrade = true;
    if (m->kind == HMSG_REQUEST)
        return request_field(m, p, idx, ve, e);
    if (ci_eq(p + s, i - s, "transfer-encoding"))
        sc->te = idx; /* responses: http-parser judges the value */
    return 0;
}

/* One complete line [s, e) (terminator excluded). 1: end of head, 0: go on,
 * -1: error (already recorded). */
static int scan_line(hmsg *m, const uint8_t *p, size_t s, size_t e, size_t next)
{
    struct scan *sc = &m->sc;
    if (s == e) {
        if (sc->started)
            return 1;
        sc->start = next; /* empty lines before the start line are ignored */
        return 0;
    }
    if (!sc->started) {
        sc->started = true;
        sc->start = s;
        if (m->kind == HMSG_REQUEST)
            return check_request_line(m, p, s, e);
        return check_status_line(m, p, s, e);
    }
    return check_field_line(m, p, s, e);
}

/* The index of the first byte from i on (before limit) that is not plain
 * head text: below 0x20 (CR, LF, tab and the control bytes) or 0x7f. Tab
 * stops the run too, the caller takes it one byte at a time. */
static size_t plain_run(const uint8_t *p, size_t i, size_t limit)
{
#if defined(__SSE2__)
    const __m128i lo = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    while (i + 16 <= limit) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        /* unsigned v <= 0x1f  <=>  min(v, 0x1f) == v */
        __m128i ctl = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, lo), v), _mm_cmpeq_epi8(v, del));
        int mask = _mm_movemask_epi8(ctl);
        if (mask)
            return i + (size_t)__builtin_ctz((unsigned)mask);
        i += 16;
    }
#endif
    while (i < limit && p[i] >= 0x20 && p[i] != 0x7f)
        i++;
    return i;
}

/* Resumable byte scan of a head. Only the first max_head bytes are looked
 * at, so the first violation (or 431) is the same however the bytes arrive. */
static enum scan_result scan_head(hmsg *m, const uint8_t *p, size_t n)
{
    struct scan *sc = &m->sc;
    size_t limit = n < m->lim.max_head ? n : m->lim.max_head;
    bool req = m->kind == HMSG_REQUEST;

    while (sc->pos < limit) {
        size_t i = sc->pos;
        if (!(i > sc->line && p[i - 1] == '\r')) {
            /* plain text needs no look: skip to the next CR, LF or control */
            i = plain_run(p, i, limit);
            sc->pos = i;
            if (i == limit)
                break;
        }
        uint8_t c = p[i];
        bool after_cr = i > sc->line && p[i - 1] == '\r';
        if (c == '\n') {
            size_t e = after_cr ? i - 1 : i;
            if (!after_cr && req) {
                fail(m, 400, "bare LF");
                return SCAN_ERR;
            }
            sc->pos = i + 1;
            int r = scan_line(m, p, sc->line, e, i + 1);
            sc->line = i + 1;
            if (r < 0)
                return SCAN_ERR;
            if (r > 0)
                return SCAN_DONE;
            continue;
        }
        if (after_cr) {
            fail(m, 400, "bare CR");
            return SCAN_ERR;
        }
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f) {
            fail(m, 400, c == 0 ? "NUL byte in head" : "control byte in head");
            return SCAN_ERR;
        }
        sc->pos = i + 1;
    }
    if (n > m->lim.max_head) {
        /* still in the request line, past the method: the target is too long */
        if (req && !sc->started && memchr(p + sc->line, ' ', limit - sc->line))
            fail(m, 414, "request target too long");
        else
            fail(m, 431, "head too large");
        return SCAN_ERR;
    }
    return SCAN_MORE;
}

static void scan_reset(hmsg *m)
{
    struct scan *sc = &m->sc;
    sc->pos = sc->line = sc->start = 0;
    sc->started = false;
    sc->method = sc->target = sc->authority = (struct span){0, 0};
    sc->form = TF_NONE;
    sc->major = sc->minor = 0;
    sc->nfields = 0;
    sc->host = sc->cl = sc->te = -1;
    sc->cl_value = 0;
    sc->conn_close = sc->conn_keep_alive = sc->conn_upgrade = sc->has_upgrade = false;
    sc->conn_framing = false;
}

/* ---- http-parser --------------------------------------------------------- */

static int on_headers_complete(http_parser *hp)
{
    hmsg *m = hp->data;
    m->hp_headers = true;
    m->hp_flags = hp->flags;
    m->hp_cl = hp->content_length;
    if (m->kind == HMSG_REQUEST)
        return 0;
    unsigned s = hp->status_code;
    if (s / 100 == 1 || s == 204 || s == 304 || m->expect_head) {
        m->body = B_NONE;
        return 1; /* no body */
    }
    if (hp->flags & F_CHUNKED)
        m->body = B_CHUNKED;
    else if (m->sc.te >= 0)
        m->body = B_EOF; /* a coding other than chunked last (RFC 9112 6.3) */
    else if (!(hp->flags & F_CONTENTLENGTH))
        m->body = B_EOF; /* no length at all */
    else if (hp->content_length != 0 && hp->content_length != UINT64_MAX)
        m->body = B_LENGTH;
    else
        m->body = B_NONE;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    hmsg *m = hp->data;
    m->hp_done = true;
    http_parser_pause(hp, 1); /* never read into the next message */
    return 0;
}

static const http_parser_settings hp_settings = {
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* Runs http-parser over len bytes; 0 if it took exactly them without error. */
static int hp_run(hmsg *m, const uint8_t *p, size_t len)
{
    size_t r = http_parser_execute(&m->hp, &hp_settings, (const char *)p, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&m->hp);
    if (e != HPE_OK && !(e == HPE_PAUSED && m->hp_done)) {
        if (e == HPE_INVALID_METHOD)
            fail(m, 501, "method not implemented");
        else
            fail(m, 400, http_errno_description(e));
        return -1;
    }
    if (r != len) {
        fail(m, 400, "framing disagreement");
        return -1;
    }
    return 0;
}

/* ---- head completion ----------------------------------------------------- */

static int finish_request_head(hmsg *m, const uint8_t *p)
{
    struct scan *sc = &m->sc;
    if (sc->minor == 1 && sc->host < 0)
        return fail_scan(m, 400, "missing Host");
    /* a proxy behind us that drops the fields Connection names would drop the
     * very field that frames or routes this request */
    if (sc->conn_framing)
        return fail_scan(m, 400, "Connection names a framing header");
    if (sc->form == TF_ABSOLUTE && sc->host >= 0) {
        struct span a = sc->authority, h = sc->f[sc->host].value;
        bool same = a.len == h.len;
        for (uint32_t i = 0; same && i < a.len; i++)
            same = lower(p[a.off + i]) == lower(p[h.off + i]);
        if (!same)
            return fail_scan(m, 400, "Host differs from the target's authority");
    }
    if (sc->te >= 0)
        m->body = B_CHUNKED;
    else if (sc->cl >= 0 && sc->cl_value > 0)
        m->body = B_LENGTH;
    else
        m->body = B_NONE;
    return 0;
}

static int cross_check_request(hmsg *m)
{
    struct scan *sc = &m->sc;
    bool hp_chunked = m->hp_flags & F_CHUNKED, hp_cl = m->hp_flags & F_CONTENTLENGTH;
    if (hp_chunked != (sc->te >= 0) || hp_cl != (sc->cl >= 0) ||
        (hp_cl && m->hp_cl != sc->cl_value))
        return fail_scan(m, 400, "framing disagreement");
    return 0;
}

static struct hslice slice(const uint8_t *p, struct span s)
{
    return (struct hslice){(const char *)p + s.off, s.len};
}

static void fill_head(hmsg *m, const uint8_t *p, size_t end)
{
    struct scan *sc = &m->sc;
    struct hmsg_head *h = &m->head;
    static const char empty[1] = "";
    bool req = m->kind == HMSG_REQUEST;

    h->method = req ? slice(p, sc->method) : (struct hslice){empty, 0};
    h->target = req ? slice(p, sc->target) : (struct hslice){empty, 0};
    h->host = req && sc->host >= 0 ? slice(p, sc->f[sc->host].value) : (struct hslice){empty, 0};
    h->status = req ? 0 : m->hp.status_code;
    h->http_major = req ? sc->major : m->hp.http_major;
    h->http_minor = req ? sc->minor : m->hp.http_minor;
    h->chunked = m->hp_flags & F_CHUNKED;
    h->has_length = m->hp_flags & F_CONTENTLENGTH;
    h->content_length = h->has_length ? m->hp_cl : 0;
    h->until_eof = m->body == B_EOF;
    if (h->http_minor == 1)
        h->keep_alive = !sc->conn_close;
    else
        h->keep_alive = sc->conn_keep_alive && !sc->conn_close;
    if (req) {
        h->upgrade = sc->conn_upgrade && sc->has_upgrade;
    } else {
        h->upgrade = h->status == 101;
        if (h->upgrade || h->until_eof)
            h->keep_alive = false;
    }
    h->nheaders = sc->nfields;
    for (unsigned i = 0; i < sc->nfields; i++) {
        h->headers[i].name = slice(p, sc->f[i].name);
        h->headers[i].value = slice(p, sc->f[i].value);
    }
    h->raw = (struct hslice){(const char *)p + sc->start, end - sc->start};
}

static enum hmsg_event feed_head(hmsg *m, const uint8_t *p, size_t n, size_t *used)
{
    if (n < m->sc.pos)
        scan_reset(m); /* the caller did not keep the bytes: start over */
    enum scan_result r = scan_head(m, p, n);
    if (r == SCAN_ERR)
        return HMSG_ERROR;
    if (r == SCAN_MORE)
        return HMSG_NEED_MORE;

    size_t end = m->sc.pos;
    bool req = m->kind == HMSG_REQUEST;
    if (req && finish_request_head(m, p) < 0)
        return HMSG_ERROR;

    http_parser_init(&m->hp, req ? HTTP_REQUEST : HTTP_RESPONSE);
    m->hp.data = m;
    m->hp_headers = m->hp_done = false;
    if (hp_run(m, p, end) < 0)
        return HMSG_ERROR;
    if (!m->hp_headers)
        return fail(m, 400, "framing disagreement");
    if (req && cross_check_request(m) < 0)
        return HMSG_ERROR;
    if (!req) {
        if (m->hp.http_major != 1 || m->hp.http_minor > 1)
            return fail(m, 502, "response HTTP version not supported");
        if (m->hp.status_code < 100)
            return fail(m, 502, "invalid status code");
    }
    if (m->hp_done != (m->body == B_NONE))
        return fail(m, 400, "framing disagreement");

    fill_head(m, p, end);
    if (m->body == B_LENGTH)
        m->remaining = req ? m->sc.cl_value : m->hp_cl;
    if (m->body == B_CHUNKED)
        m->cv = (struct chunkv){.st = C_SIZE0};
    m->st = m->body == B_NONE ? ST_END_PENDING : ST_BODY;
    *used = end;
    return HMSG_HEAD;
}

/* ---- chunked body -------------------------------------------------------- */

static const char *const forbidden_trailers[] = {"content-length", "transfer-encoding", "host"};
#define NFORBIDDEN (sizeof forbidden_trailers / sizeof forbidden_trailers[0])

static bool is_qdtext(uint8_t c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/* Trailer name byte: narrows the set of forbidden names still matching. */
static void trailer_name_byte(struct chunkv *cv, uint8_t c)
{
    for (unsigned k = 0; k < NFORBIDDEN; k++) {
        const char *f = forbidden_trailers[k];
        if ((cv->cand & (1u << k)) &&
            (cv->name_len >= strlen(f) || lower(c) != (uint8_t)f[cv->name_len]))
            cv->cand &= ~(1u << k);
    }
    cv->name_len++;
}

static bool trailer_name_forbidden(const struct chunkv *cv)
{
    for (unsigned k = 0; k < NFORBIDDEN; k++)
        if ((cv->cand & (1u << k)) && cv->name_len == strlen(forbidden_trailers[k]))
            return true;
    return false;
}

/* One byte of the chunk-size line (size and extensions). NULL if fine. */
static const char *chunk_line_byte(struct chunkv *cv, uint8_t c)
{
    switch (cv->st) {
    case C_SIZE0:
        if (hexval(c) < 0)
            return "invalid chunk size";
        cv->size = (uint64_t)hexval(c);
        cv->st = C_SIZE;
        return NULL;
    case C_SIZE:
        if (hexval(c) >= 0) {
            if (cv->size > (CHUNK_SIZE_MAX >> 4))
                return "chunk size too large";
            cv->size = cv->size * 16 + (uint64_t)hexval(c);
        } else if (c == ';') {
            cv->st = C_EXT_NAME0;
        } else if (c == ' ') {
            cv->st = C_BWS; /* http-parser takes no HT here */
        } else if (c == '\r') {
            cv->st = C_SIZE_LF;
        } else {
            return "invalid chunk size";
        }
        return NULL;
    case C_BWS:
        if (c == ';')
            cv->st = C_EXT_NAME0;
        else if (c != ' ')
            return "invalid chunk extension";
        return NULL;
    case C_EXT_AFTER_VAL:
        if (c == ';')
            cv->st = C_EXT_NAME0;
        else if (!is_ws(c))
            return "invalid chunk extension";
        return NULL;
    case C_EXT_NAME0:
        if (is_tchar(c))
            cv->st = C_EXT_NAME;
        else if (!is_ws(c))
            return "invalid chunk extension";
        return NULL;
    case C_EXT_NAME:
    case C_EXT_AFTER_NAME:
        if (c == '=')
            cv->st = C_EXT_VAL0;
        else if (c == ';')
            cv->st = C_EXT_NAME0;
        else if (is_ws(c))
            cv->st = C_EXT_AFTER_NAME;
        else if (cv->st == C_EXT_NAME && is_tchar(c))
            ;
        else if (cv->st == C_EXT_NAME && c == '\r')
            cv->st = C_SIZE_LF;
        else
            return "invalid chunk extension";
        return NULL;
    case C_EXT_VAL0:
        if (c == '"')
            cv->st = C_EXT_QSTR;
        else if (is_tchar(c))
            cv->st = C_EXT_TOKEN;
        else if (!is_ws(c))
            return "invalid chunk extension";
        return NULL;
    case C_EXT_TOKEN:
    case C_EXT_QEND:
        if (c == ';')
            cv->st = C_EXT_NAME0;
        else if (is_ws(c))
            cv->st = C_EXT_AFTER_VAL;
        else if (c == '\r')
            cv->st = C_SIZE_LF;
        else if (!(cv->st == C_EXT_TOKEN && is_tchar(c)))
            return "invalid chunk extension";
        return NULL;
    case C_EXT_QSTR:
        if (c == '"')
            cv->st = C_EXT_QEND;
        else if (c == '\\')
            cv->st = C_EXT_QPAIR;
        else if (!is_qdtext(c))
            return "invalid chunk extension";
        return NULL;
    case C_EXT_QPAIR:
        if (!(c == '\t' || (c >= 0x20 && c != 0x7f)))
            return "invalid chunk extension";
        cv->st = C_EXT_QSTR;
        return NULL;
    case C_SIZE_LF:
        if (c != '\n')
            return "missing LF after chunk size";
        cv->st = cv->size ? C_DATA : C_TR_LINE0;
        cv->line = 0;
        return NULL;
    default:
        return "internal chunk state";
    }
}

/* One byte of the trailer section. NULL if fine. */
static const char *trailer_byte(struct chunkv *cv, uint8_t c, unsigned max_fields)
{
    switch (cv->st) {
    case C_TR_LINE0:
        if (c == '\r') {
            cv->st = C_TR_END_LF;
        } else if (is_tchar(c)) {
            cv->st = C_TR_NAME;
            cv->name_len = 0;
            cv->cand = (1u << NFORBIDDEN) - 1;
            trailer_name_byte(cv, c);
        } else {
            return is_ws(c) ? "obs-fold in trailer" : "invalid trailer field";
        }
        return NULL;
    case C_TR_NAME:
        if (c == ':') {
            if (trailer_name_forbidden(cv))
                return "framing header in trailer";
            cv->st = C_TR_VALUE;
        } else if (is_tchar(c)) {
            trailer_name_byte(cv, c);
        } else {
            return "invalid trailer field";
        }
        return NULL;
    case C_TR_VALUE:
        if (c == '\r')
            cv->st = C_TR_LF;
        else if (!(c == '\t' || (c >= 0x20 && c != 0x7f)))
            return "invalid byte in trailer";
        return NULL;
    case C_TR_LF:
        if (c != '\n')
            return "bare CR in trailer";
        if (++cv->ntrailers > max_fields)
            return "too many trailer fields";
        cv->st = C_TR_LINE0;
        return NULL;
    case C_TR_END_LF:
        if (c != '\n')
            return "bare CR in trailer";
        cv->st = C_DONE;
        return NULL;
    default:
        return "internal chunk state";
    }
}

/* Scans up to n bytes of a chunked body; stops right after its last byte.
 * Returns the bytes accepted, or sets *err. */
static size_t chunk_scan(struct chunkv *cv, const uint8_t *p, size_t n,
                         const struct hmsg_limits *lim, const char **err)
{
    size_t i = 0;
    *err = NULL;
    while (i < n && cv->st != C_DONE) {
        uint8_t c = p[i];
        switch (cv->st) {
        case C_DATA: {
            uint64_t take = n - i < cv->size ? n - i : cv->size;
            i += (size_t)take;
            cv->size -= take;
            if (cv->size == 0)
                cv->st = C_DATA_CR;
            continue;
        }
        case C_DATA_CR:
            if (c != '\r')
                *err = "missing CRLF after chunk data";
            cv->st = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (c != '\n')
                *err = "missing CRLF after chunk data";
            cv->st = C_SIZE0;
            cv->line = 0;
            break;
        case C_TR_LINE0:
        case C_TR_NAME:
        case C_TR_VALUE:
        case C_TR_LF:
        case C_TR_END_LF:
            if (++cv->trailer_bytes > lim->max_head)
                *err = "trailer section too large";
            else
                *err = trailer_byte(cv, c, lim->max_headers);
            break;
        default:
            if (++cv->line > lim->max_head)
                *err = "chunk size line too long";
            else
                *err = chunk_line_byte(cv, c);
            break;
        }
        if (*err)
            return i;
        i++;
    }
    return i;
}

/* ---- body ---------------------------------------------------------------- */

static void end_message(hmsg *m)
{
    if (m->kind == HMSG_RESPONSE && m->head.upgrade) {
        m->st = ST_UPGRADED;
    } else {
        if (m->kind == HMSG_RESPONSE && m->head.status >= 200)
            m->expect_head = false; /* a final response answers the request */
        m->st = ST_HEAD;
    }
    m->body = B_NONE;
    scan_reset(m);
}

static enum hmsg_event feed_body(hmsg *m, const uint8_t *p, size_t n, size_t *used)
{
    if (n == 0)
        return HMSG_NEED_MORE;
    size_t k;
    bool done;
    switch (m->body) {
    case B_EOF:
        *used = n;
        return HMSG_BODY;
    case B_LENGTH:
        k = n < m->remaining ? n : (size_t)m->remaining;
        m->remaining -= k;
        done = m->remaining == 0;
        break;
    case B_CHUNKED: {
        const char *err;
        k = chunk_scan(&m->cv, p, n, &m->lim, &err);
        if (err)
            return fail(m, 400, err);
        done = m->cv.st == C_DONE;
        break;
    }
    default:
        return fail(m, 400, "internal body state");
    }
    if (hp_run(m, p, k) < 0)
        return HMSG_ERROR;
    if (m->hp_done != done)
        return fail(m, 400, "framing disagreement");
    *used = k;
    if (!done)
        return HMSG_BODY;
    end_message(m);
    return HMSG_END;
}

/* ---- public -------------------------------------------------------------- */

hmsg *hmsg_new(enum hmsg_kind kind, const struct hmsg_limits *lim)
{
    if (!lim || (kind != HMSG_REQUEST && kind != HMSG_RESPONSE) || lim->max_head == 0 ||
        lim->max_head > HMSG_MAX_HEAD_LIMIT || lim->max_headers > HMSG_MAX_HEADERS_LIMIT)
        return NULL;
    hmsg *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->kind = kind;
    m->lim = *lim;
    m->st = ST_HEAD;
    m->err_reason = "";
    scan_reset(m);
    return m;
}

uint64_t hmsg_body_run(const hmsg *m)
{
    if (m->st != ST_BODY)
        return 0;
    switch (m->body) {
    case B_LENGTH:
        return m->remaining;
    case B_CHUNKED:
        return m->cv.st == C_DATA ? m->cv.size : 0;
    case B_EOF:
        return UINT64_MAX;
    default:
        return 0;
    }
}

void hmsg_free(hmsg *m)
{
    free(m);
}

enum hmsg_event hmsg_feed(hmsg *m, const uint8_t *p, size_t n, size_t *used)
{
    *used = 0;
    switch (m->st) {
    case ST_HEAD:
        return feed_head(m, p, n, used);
    case ST_BODY:
        return feed_body(m, p, n, used);
    case ST_END_PENDING:
        end_message(m);
        return HMSG_END;
    case ST_UPGRADED:
        return n ? fail(m, 502, "data after a 101 response is not HTTP") : HMSG_NEED_MORE;
    case ST_CLOSED:
        return n ? fail(m, 400, "data after end of stream") : HMSG_NEED_MORE;
    case ST_ERROR:
        break;
    }
    return HMSG_ERROR;
}

enum hmsg_event hmsg_feed_eof(hmsg *m)
{
    switch (m->st) {
    case ST_HEAD:
        if (m->sc.started || m->sc.line != m->sc.pos)
            return fail(m, 400, "connection closed in the middle of a head");
        break;
    case ST_BODY:
        if (m->body != B_EOF)
            return fail(m, 400, "connection closed in the middle of a body");
        break;
    case ST_ERROR:
        return HMSG_ERROR;
    case ST_END_PENDING:
    case ST_UPGRADED:
    case ST_CLOSED:
        break;
    }
    m->st = ST_CLOSED;
    m->body = B_NONE;
    return HMSG_END;
}

void hmsg_expect_head_response(hmsg *m)
{
    if (m->kind == HMSG_RESPONSE)
        m->expect_head = true;
}

const struct hmsg_head *hmsg_head(const hmsg *m)
{
    return &m->head;
}

bool hmsg_in_message(const hmsg *m)
{
    return m->st == ST_BODY || m->st == ST_END_PENDING;
}

unsigned hmsg_error_status(const hmsg *m)
{
    return m->st == ST_ERROR ? m->err_status : 0;
}

const char *hmsg_error_reason(const hmsg *m)
{
    return m->st == ST_ERROR ? m->err_reason : "";
}

const struct hmsg_header *hmsg_find(const struct hmsg_head *h, const char *name)
{
    for (unsigned i = 0; i < h->nheaders && i < HMSG_MAX_HEADERS_LIMIT; i++) {
        const struct hslice *n = &h->headers[i].name;
        size_t len = strlen(name);
        if (n->len != len)
            continue;
        size_t j = 0;
        while (j < len && lower((uint8_t)n->p[j]) == lower((uint8_t)name[j]))
            j++;
        if (j == len)
            return &h->headers[i];
    }
    return NULL;
}

ssize_t hmsg_host_name(const struct hmsg_head *h, char *out, size_t cap)
{
    struct hslice src = h->host, auth;
    if (target_form((const uint8_t *)h->target.p, h->target.len, &auth, NULL) == TF_ABSOLUTE)
        src = auth;
    const uint8_t *s = (const uint8_t *)src.p;
    size_t len = 0;
    if (src.len == 0)
        return -EINVAL;
    bool literal = s[0] == '[';
    if (literal) {
        while (len < src.len && s[len] != ']')
            len++;
        if (len == src.len)
            return -EINVAL;
        len++; /* keep the brackets: "[2001:db8::1]" */
    } else {
        while (len < src.len && s[len] != ':')
            len++;
        if (len > 0 && s[len - 1] == '.')
            len--;
    }
    if (len == 0 || len >= cap)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = lower(s[i]);
        bool ok;
        if (literal)
            ok = (i == 0 && c == '[') || (i == len - 1 && c == ']') ||
                 (i > 0 && i < len - 1 && (hexval(c) >= 0 || c == ':' || c == '.'));
        else
            ok = (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '.' || c == '_';
        if (!ok)
            return -EINVAL;
        out[i] = (char)c;
    }
    out[len] = '\0';
    return (ssize_t)len;
}

/* Bounded writer for hmsg_rewrite_request. */
struct wr {
    uint8_t *out;
    size_t cap, len;
    bool full;
};

static void put(struct wr *w, const void *p, size_t n)
{
    if (w->full || n > w->cap - w->len) {
        w->full = true;
        return;
    }
    memcpy(w->out + w->len, p, n);
    w->len += n;
}

static void puts_(struct wr *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_slice(struct wr *w, struct hslice s)
{
    put(w, s.p, s.len);
}

static void put_uint(struct wr *w, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(w, d + i, sizeof d - i);
}

static bool visible(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if ((uint8_t)*s < 0x21 || (uint8_t)*s > 0x7e)
            return false;
    return true;
}

/* Case-insensitive comparison of a field name (or its first strlen(s) bytes
 * when prefix) with a lowercase name, '_' read as '-': CGI-style servers
 * (WSGI, Rack, PHP) map both spellings to the same variable. */
static bool alias_eq(const uint8_t *p, size_t len, const char *s, bool prefix)
{
    size_t sl = strlen(s);
    if (prefix ? len < sl : len != sl)
        return false;
    for (size_t i = 0; i < sl; i++)
        if ((p[i] == '_' ? '-' : lower(p[i])) != (uint8_t)s[i])
            return false;
    return true;
}

/* Headers that claim a client address or the original request: only the
 * edge may say these, so the visitor's own are dropped, in either spelling
 * ("X_Forwarded_For" would reach a WSGI app as HTTP_X_FORWARDED_FOR). */
static bool dropped_header(struct hslice n)
{
    const uint8_t *p = (const uint8_t *)n.p;
    return alias_eq(p, n.len, "x-forwarded-", true) || alias_eq(p, n.len, "forwarded", false) ||
           alias_eq(p, n.len, "x-real-ip", false) || alias_eq(p, n.len, "true-client-ip", false) ||
           alias_eq(p, n.len, "x-client-ip", false);
}

ssize_t hmsg_rewrite_request(const struct hmsg_head *h, const struct hmsg_forward *fw, uint8_t *out,
                             size_t cap)
{
    if (!h || !fw || !out || h->method.len == 0 || !visible(fw->client_ip) || !visible(fw->proto))
        return -EINVAL;
    struct wr w = {out, cap, 0, false};
    struct hslice auth = {"", 0}, rest = h->target;
    enum tform form = target_form((const uint8_t *)h->target.p, h->target.len, &auth, &rest);

    put_slice(&w, h->method);
    puts_(&w, " ");
    if (form == TF_ABSOLUTE && (rest.len == 0 || rest.p[0] != '/'))
        puts_(&w, "/"); /* "http://a" -> "/", "http://a?q" -> "/?q" */
    put_slice(&w, rest);
    puts_(&w, " HTTP/");
    put_uint(&w, h->http_major);
    puts_(&w, ".");
    put_uint(&w, h->http_minor);
    puts_(&w, "\r\n");
    for (unsigned i = 0; i < h->nheaders && i < HMSG_MAX_HEADERS_LIMIT; i++) {
        const struct hslice *n = &h->headers[i].name;
        if (dropped_header(*n))
            continue;
        /* the framing fields in one canonical spelling: an application that
         * compares "chunked" case-sensitively, or reads "007" as octal,
         * frames the body exactly as the edge did */
        if (h->chunked && ci_eq((const uint8_t *)n->p, n->len, "transfer-encoding")) {
            puts_(&w, "Transfer-Encoding: chunked\r\n");
            continue;
        }
        if (h->has_length && ci_eq((const uint8_t *)n->p, n->len, "content-length")) {
            puts_(&w, "Content-Length: ");
            put_uint(&w, h->content_length);
            puts_(&w, "\r\n");
            continue;
        }
        put_slice(&w, h->headers[i].name);
        puts_(&w, ": ");
        put_slice(&w, h->headers[i].value);
        puts_(&w, "\r\n");
    }
    struct hslice host = h->host;
    if (host.len == 0 && form == TF_ABSOLUTE && auth.len > 0) {
        /* HTTP/1.0 absolute-form without Host: the origin-form we send needs one */
        puts_(&w, "Host: ");
        put_slice(&w, auth);
        puts_(&w, "\r\n");
        host = auth;
    }
    puts_(&w, "X-Forwarded-For: ");
    puts_(&w, fw->client_ip);
    puts_(&w, "\r\nX-Forwarded-Proto: ");
    puts_(&w, fw->proto);
    puts_(&w, "\r\n");
    if (host.len > 0) {
        puts_(&w, "X-Forwarded-Host: ");
        put_slice(&w, host);
        puts_(&w, "\r\n");
    }
    puts_(&w, "\r\n");
    return w.full ? -ENOSPC : (ssize_t)w.len;
}
