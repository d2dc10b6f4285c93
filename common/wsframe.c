/*
 * wsframe: application-side WebSocket framing in bulk (see wsframe.h for why
 * and the invariants). The parser is a small state machine over headers; the
 * payload path is memcpy/XOR over whole runs of bytes, never a per-byte loop
 * with a branch per state.
 */
#include "wsframe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* SHA-1's own functions: see wshs_accept */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <sodium.h>
#include <stdio.h>

static void next_key(struct wsmask *m, uint8_t key[4])
{
    if (!m->filled || m->used + 4 > sizeof m->pool) {
        randombytes_buf(m->pool, sizeof m->pool);
        m->used = 0;
        m->filled = true;
    }
    memcpy(key, m->pool + m->used, 4);
    sodium_memzero(m->pool + m->used, 4); /* a key is used once */
    m->used += 4;
}

size_t wsframe_header(uint8_t *h, uint8_t opcode, uint64_t len, const uint8_t *mask)
{
    size_t n = 2;
    h[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        h[1] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        h[1] = m | 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        n = 4;
    } else {
        h[1] = m | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    return n;
}

/* XOR with the key starting at phase `phase` (0..3). */
static void mask_phase(uint8_t *p, size_t len, const uint8_t key[4], size_t phase)
{
    uint8_t k8b[8];
    for (int i = 0; i < 8; i++)
        k8b[i] = key[(phase + (size_t)i) & 3];
    uint64_t k8;
    memcpy(&k8, k8b, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k8;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++)
        p[i] ^= key[(phase + i) & 3];
}

void wsframe_mask(uint8_t *p, size_t len, const uint8_t key[4])
{
    mask_phase(p, len, key, 0);
}

size_t wsframe_batch(uint8_t *out, size_t cap, size_t max_payload, struct wsmask *masks,
                     wsframe_next_fn next, void *ud)
{
    /* Payloads below 64 KiB have a 2- or 4-byte length: reserve 4 (+4 for a
     * mask) and move short payloads down by 2 once their length is known. */
    const size_t reserve = masks ? 8 : 4;
    if (max_payload > 0xffff)
        max_payload = 0xffff;
    size_t pos = 0;
    while (cap - pos >= reserve + max_payload) {
        uint8_t *payload = out + pos + reserve;
        size_t n = next(ud, payload, max_payload);
        if (n == 0)
            break;
        uint8_t key[4], h[WS_HDR_MAX];
        if (masks)
            next_key(masks, key);
        size_t hl = wsframe_header(h, WS_BINARY, n, masks ? key : NULL);
        if (hl < reserve)
            memmove(out + pos + hl, payload, n);
        memcpy(out + pos, h, hl);
        if (masks)
            wsframe_mask(out + pos + hl, n, key);
        pos += hl + n;
    }
    return pos;
}

size_t wsframe_build(uint8_t *out, size_t cap, uint8_t opcode, const uint8_t *payload, size_t len,
                     struct wsmask *masks)
{
    if (len + WS_HDR_MAX > cap)
        return 0;
    uint8_t key[4];
    if (masks)
        next_key(masks, key);
    size_t hl = wsframe_header(out, opcode, len, masks ? key : NULL);
    if (len)
        memcpy(out + hl, payload, len);
    if (masks)
        wsframe_mask(out + hl, len, key);
    return hl + len;
}

struct wsparse {
    bool expect_masked;
    size_t max_message;
    /* header being collected */
    uint8_t hdr[WS_HDR_MAX];
    size_t hlen;
    /* frame in progress (after its header) */
    bool in_frame;
    uint8_t opcode;
    bool fin, masked;
    uint8_t key[4];
    uint64_t remaining; /* payload bytes still to come */
    uint64_t done;      /* payload bytes already seen (mask phase) */
    /* control frame payload (<= 125 bytes) */
    uint8_t ctl[125];
    size_t ctllen;
    /* data message being assembled (fragmented, or split across feeds) */
    uint8_t msg_opcode; /* 0: no fragmented message in progress */
    uint8_t *msg;
    size_t msglen;
    bool keep_buffer; /* keep msg allocated between messages */
};

wsparse *wsparse_new(bool expect_masked, size_t max_message)
{
    wsparse *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->expect_masked = expect_masked;
    w->max_message = max_message;
    return w;
}

void wsparse_free(wsparse *w)
{
    if (!w)
        return;
    free(w->msg);
    free(w);
}

/* Bytes of header needed so far, given what is in hdr (>= 2 bytes known). */
static size_t header_need(const uint8_t *h)
{
    size_t n = 2;
    uint8_t l = h[1] & 0x7f;
    if (l == 126)
        n += 2;
    else if (l == 127)
        n += 8;
    if (h[1] & 0x80)
        n += 4;
    return n;
}

/* Validate a complete header and start the frame. 0 or -close code. */
static int begin_frame(wsparse *w)
{
    const uint8_t *h = w->hdr;
    if (h[0] & 0x70)
        return -WS_CLOSE_PROTOCOL; /* no extension was negotiated */
    uint8_t op = h[0] & 0x0f;
    bool fin = h[0] & 0x80, masked = h[1] & 0x80;
    if (masked != w->expect_masked)
        return -WS_CLOSE_PROTOCOL;
    uint64_t len = h[1] & 0x7f;
    size_t at = 2;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        if (len < 126)
            return -WS_CLOSE_PROTOCOL;
        at = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len <= 0xffff || (len >> 63))
            return -WS_CLOSE_PROTOCOL;
        at = 10;
    }
    switch (op) {
    case WS_CLOSE:
    case WS_PING:
    case WS_PONG:
        if (!fin || len > 125)
            return -WS_CLOSE_PROTOCOL;
        w->ctllen = 0;
        break;
    case WS_TEXT:
    case WS_BINARY:
        if (w->msg_opcode)
            return -WS_CLOSE_PROTOCOL; /* a new message inside a fragmented one */
        if (len > w->max_message)
            return -WS_CLOSE_TOO_BIG;
        w->msglen = 0;
        break;
    case WS_CONT:
        if (!w->msg_opcode)
            return -WS_CLOSE_PROTOCOL;
        if (len > w->max_message - w->msglen)
            return -WS_CLOSE_TOO_BIG;
        break;
    default:
        return -WS_CLOSE_PROTOCOL;
    }
    if (masked)
        memcpy(w->key, h + at, 4);
    w->opcode = op;
    w->fin = fin;
    w->masked = masked;
    w->remaining = len;
    w->done = 0;
    w->in_frame = true;
    return 0;
}

static int ensure_msg(wsparse *w)
{
    if (!w->msg && !(w->msg = malloc(w->max_message ? w->max_message : 1)))
        return -ENOMEM;
    return 0;
}

/* The frame's payload is complete: deliver what is due. */
static int end_frame(wsparse *w, wsparse_msg_fn on_msg, void *ud)
{
    w->in_frame = false;
    w->hlen = 0;
    if (w->opcode & 0x08)
        return on_msg(ud, w->opcode, w->ctl, w->ctllen);
    if (w->opcode != WS_CONT && !w->fin) {
        w->msg_opcode = w->opcode; /* first fragment */
        return 0;
    }
    if (!w->fin)
        return 0;
    uint8_t op = w->opcode == WS_CONT ? w->msg_opcode : w->opcode;
    w->msg_opcode = 0;
    size_t n = w->msglen;
    w->msglen = 0;
    int r = on_msg(ud, op, w->msg, n);
    if (!w->keep_buffer) {
        free(w->msg); /* an idle connection holds no reassembly buffer */
        w->msg = NULL;
    }
    return r;
}

static int feed(wsparse *w, const uint8_t *cp, uint8_t *mp, size_t len, wsparse_msg_fn on_msg,
                void *ud)
{
    const uint8_t *p = cp ? cp : mp;
    while (len > 0) {
        if (!w->in_frame) {
            /* Fast path: a whole unmasked, unfragmented data frame in the input. */
            if (w->hlen == 0 && (!w->expect_masked || mp) && len >= 2 && !w->msg_opcode) {
                size_t need = header_need(p);
                if (len >= need) {
                    memcpy(w->hdr, p, need);
                    int r = begin_frame(w);
                    if (r < 0)
                        return r;
                    if ((w->opcode == WS_TEXT || w->opcode == WS_BINARY) && w->fin &&
                        len - need >= w->remaining) {
                        size_t n = (size_t)w->remaining;
                        w->in_frame = false;
                        if (w->masked) /* in place: the caller's buffer is ours to change */
                            mask_phase(mp + (p - mp) + need, n, w->key, 0);
                        r = on_msg(ud, w->opcode, p + need, n);
                        if (r)
                            return r;
                        p += need + n;
                        len -= need + n;
                        continue;
                    }
                    p += need;
                    len -= need;
                    w->hlen = need;
                    goto payload;
                }
            }
            /* Collect the header byte by byte across feeds (at most 14). */
            w->hdr[w->hlen++] = *p++;
            len--;
            if (w->hlen < 2 || w->hlen < header_need(w->hdr))
                continue;
            int r = begin_frame(w);
            if (r < 0)
                return r;
        }
    payload:;
        size_t take = w->remaining < len ? (size_t)w->remaining : len;
        if (take) {
            uint8_t *dst;
            if (w->opcode & 0x08) {
                dst = w->ctl + w->ctllen;
                w->ctllen += take;
            } else {
                if (ensure_msg(w) < 0)
                    return -WS_CLOSE_TOO_BIG;
                dst = w->msg + w->msglen;
                w->msglen += take;
            }
            memcpy(dst, p, take);
            if (w->masked)
                mask_phase(dst, take, w->key, (size_t)(w->done & 3));
            w->done += take;
            w->remaining -= take;
            p += take;
            len -= take;
        }
        if (w->remaining == 0) {
            int r = end_frame(w, on_msg, ud);
            if (r)
                return r;
        }
    }
    return 0;
}

int wsparse_feed(wsparse *w, const uint8_t *p, size_t len, wsparse_msg_fn on_msg, void *ud)
{
    return feed(w, p, NULL, len, on_msg, ud);
}

int wsparse_feed_inplace(wsparse *w, uint8_t *p, size_t len, wsparse_msg_fn on_msg, void *ud)
{
    return feed(w, NULL, p, len, on_msg, ud);
}

void wsparse_keep_buffer(wsparse *w, bool keep)
{
    w->keep_buffer = keep;
}

/* --- opening handshake --- */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void wshs_new_key(char key[WSHS_KEY_LEN + 1])
{
    uint8_t raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(key, WSHS_KEY_LEN + 1, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
}

size_t wshs_request(char *out, size_t cap, const char *path, const char *host, const char *key,
                    const char *protocol)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n"
                     "\r\n",
                     path[0] ? path : "/", host, key, protocol);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

long wshs_head_end(const uint8_t *p, size_t len)
{
    size_t lim = len < WSHS_HEAD_MAX ? len : WSHS_HEAD_MAX;
    for (size_t i = 0; i + 3 < lim; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return (long)(i + 4);
    return len >= WSHS_HEAD_MAX ? -EMSGSIZE : 0;
}

int wshs_accept(const char *key, size_t klen, char out[29])
{
    char text[64 + sizeof WS_GUID];
    uint8_t digest[20];
    if (klen == 0 || klen > 64)
        return -EINVAL;
    memcpy(text, key, klen);
    memcpy(text + klen, WS_GUID, sizeof WS_GUID - 1);
    /* OpenSSL's SHA-1 functions, not EVP: the first EVP call initialises
     * OpenSSL's providers, which a CLI speaking ws:// needs for nothing else
     * (1.8 MiB more of libcrypto's pages in its RSS). Deprecated in 3.0, still
     * in every 3.x. */
    SHA_CTX sha;
    if (!SHA1_Init(&sha) || !SHA1_Update(&sha, text, klen + sizeof WS_GUID - 1) ||
        !SHA1_Final(digest, &sha))
        return -EINVAL;
    sodium_bin2base64(out, 29, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

static bool ieq(const uint8_t *a, size_t n, const char *b)
{
    size_t m = strlen(b);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t x = a[i], y = (uint8_t)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (uint8_t)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (uint8_t)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

/* Does the comma-separated list v[0..n) contain token t (case-insensitive)? */
static bool list_has(const uint8_t *v, size_t n, const char *t)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (ieq(v + a, b - a, t))
            return true;
        i = j + 1;
    }
    return false;
}

bool wshs_list_has(const char *v, size_t n, const char *t)
{
    return list_has((const uint8_t *)v, n, t);
}

int wshs_check_response(const uint8_t *p, size_t len, const char *key, const char *protocol,
                        int *status, char *err, size_t errcap)
{
    *status = 0;
    /* status line: HTTP/1.x SP 3DIGIT SP reason CRLF */
    size_t eol = 0;
    while (eol + 1 < len && !(p[eol] == '\r' && p[eol + 1] == '\n'))
        eol++;
    if (eol + 1 >= len || eol < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' ||
        p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9') {
        snprintf(err, errcap, "the server's answer is not HTTP");
        return -EPROTO;
    }
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (*status != 101) {
        size_t rl = eol > 13 ? eol - 13 : 0;
        if (rl > 60)
            rl = 60;
        char reason[64];
        size_t k = 0;
        for (size_t i = 0; i < rl; i++)
            if (p[13 + i] >= 0x20 && p[13 + i] < 0x7f)
                reason[k++] = (char)p[13 + i];
        reason[k] = 0;
        snprintf(err, errcap, "the server answered %d %s instead of upgrading to a WebSocket",
                 *status, reason);
        return -EPROTO;
    }
    char want[29];
    if (wshs_accept(key, strlen(key), want) < 0) {
        snprintf(err, errcap, "SHA-1 unavailable");
        return -EPROTO;
    }
    bool upgrade = false, connection = false, accept = false, proto_ok = true;
    size_t i = eol + 2;
    while (i + 1 < len && !(p[i] == '\r' && p[i + 1] == '\n')) {
        size_t e = i;
        while (e + 1 < len && !(p[e] == '\r' && p[e + 1] == '\n'))
            e++;
        if (e + 1 >= len)
            break;
        size_t c = i;
        while (c < e && p[c] != ':')
            c++;
        if (c == e || c == i) {
            snprintf(err, errcap, "the server's handshake has a malformed header line");
            return -EPROTO;
        }
        size_t vs = c + 1, ve = e;
        while (vs < ve && (p[vs] == ' ' || p[vs] == '\t'))
            vs++;
        while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
            ve--;
        const uint8_t *name = p + i, *v = p + vs;
        size_t nl = c - i, vl = ve - vs;
        if (ieq(name, nl, "upgrade"))
            upgrade = ieq(v, vl, "websocket");
        else if (ieq(name, nl, "connection"))
            connection = list_has(v, vl, "upgrade");
        else if (ieq(name, nl, "sec-websocket-accept"))
            accept = vl == strlen(want) && memcmp(v, want, vl) == 0;
        else if (ieq(name, nl, "sec-websocket-protocol"))
            proto_ok = vl == strlen(protocol) && memcmp(v, protocol, vl) == 0;
        else if (ieq(name, nl, "sec-websocket-extensions") && vl > 0) {
            snprintf(err, errcap, "the server chose a WebSocket extension we did not offer");
            return -EPROTO;
        }
        i = e + 2;
    }
    if (!upgrade || !connection) {
        snprintf(err, errcap, "the server's 101 lacks Upgrade: websocket / Connection: upgrade");
        return -EPROTO;
    }
    if (!accept) {
        snprintf(err, errcap, "the server's Sec-WebSocket-Accept does not match our key");
        return -EPROTO;
    }
    if (!proto_ok) {
        snprintf(err, errcap, "the server chose another WebSocket protocol than %s", protocol);
        return -EPROTO;
    }
    return 0;
}
