/*
 * peermsg: the record layer and control messages of peer links.
 *
 * Invariants: a record is decided only from bytes inside the buffer it was
 * given (a length prefix out of bounds is refused before its bytes arrive);
 * a sealed record is used only after its tag checks out (opening decrypts
 * in place while the tag is computed: a record that fails leaves unverified
 * bytes in the caller's buffer, which kills the link), and the counter
 * advances only then; every string of a parsed message is NUL-terminated
 * within its array and was checked against its bound, never truncated (except
 * type_text, which is only for logs); a parse writes *out only on success.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "peermsg.h"

_Static_assert(PEERMSG_SEAL_TAG == crypto_aead_chacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(PEERMSG_MAC_LEN == crypto_auth_BYTES, "MAC size");
_Static_assert(PEERMSG_KEY_LEN == crypto_auth_KEYBYTES, "key size");

/* --- records --- */

static void seal_nonce(uint64_t seq, uint8_t nonce[12])
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

/* ChaCha20-Poly1305 (RFC 8439, no associated data, the tag after the text),
 * as libsodium's crypto_aead_chacha20poly1305_ietf seals it, done by
 * OpenSSL: its vectorised code seals and opens about three times as fast as
 * libsodium's on the same CPU (docs/benchmarks.md). One context per
 * direction, kept for the process (single-threaded). */
static EVP_CIPHER_CTX *aead_ctx(bool enc)
{
    static EVP_CIPHER_CTX *ctx[2];
    if (!ctx[enc]) {
        /* the cipher is set once; each record then only sets key and nonce */
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        if (!c || EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, NULL, NULL, enc) != 1) {
            EVP_CIPHER_CTX_free(c);
            return NULL;
        }
        ctx[enc] = c;
    }
    return ctx[enc];
}

static bool aead_seal(uint8_t *p, size_t n, const uint8_t *key, const uint8_t nonce[12])
{
    EVP_CIPHER_CTX *c = aead_ctx(true);
    int a = 0, b = 0;
    return c && n <= INT32_MAX && EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) == 1 &&
           EVP_EncryptUpdate(c, p, &a, p, (int)n) == 1 && EVP_EncryptFinal_ex(c, p + a, &b) == 1 &&
           (size_t)(a + b) == n &&
           EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, PEERMSG_SEAL_TAG, p + n) == 1;
}

/* Opens clen bytes (text and tag) in place; false when the tag is wrong. */
static bool aead_open(uint8_t *p, size_t clen, const uint8_t *key, const uint8_t nonce[12])
{
    EVP_CIPHER_CTX *c = aead_ctx(false);
    size_t n = clen - PEERMSG_SEAL_TAG;
    int a = 0, b = 0;
    return c && n <= INT32_MAX && EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) == 1 &&
           EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, PEERMSG_SEAL_TAG, p + n) == 1 &&
           EVP_DecryptUpdate(c, p, &a, p, (int)n) == 1 && EVP_DecryptFinal_ex(c, p + a, &b) == 1 &&
           (size_t)(a + b) == n;
}

long peermsg_record_take(uint8_t *p, size_t len, const uint8_t *key, uint64_t *seq, struct frame *f,
                         size_t *frame_len)
{
    if (!key) {
        struct frame fr;
        long r = frame_split(p, len, &fr);
        if (r <= 0)
            return r == -EMSGSIZE || r == 0 ? r : -EINVAL;
        *f = fr;
        *frame_len = (size_t)r - FRAME_LEN_PREFIX;
        return r;
    }
    if (len < FRAME_LEN_PREFIX)
        return 0;
    size_t clen = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (clen < PEERMSG_SEALED_MIN || clen > PEERMSG_SEALED_MAX)
        return -EMSGSIZE;
    if (len - FRAME_LEN_PREFIX < clen)
        return 0;
    uint8_t *rec = p + FRAME_LEN_PREFIX, nonce[12];
    size_t mlen = clen - PEERMSG_SEAL_TAG;
    seal_nonce(*seq, nonce);
    if (!aead_open(rec, clen, key, nonce))
        return -EBADMSG;
    (*seq)++;
    struct frame fr;
    if (frame_decode(rec, (size_t)mlen, &fr) < 0)
        return -EINVAL;
    *f = fr;
    *frame_len = (size_t)mlen;
    return (long)(FRAME_LEN_PREFIX + clen);
}

size_t peermsg_seal(uint8_t *p, size_t n, const uint8_t key[PEERMSG_KEY_LEN], uint64_t *seq)
{
    uint8_t nonce[12];
    seal_nonce((*seq)++, nonce);
    if (!aead_seal(p, n, key, nonce))
        return 0; /* the context could not be allocated */
    return n + PEERMSG_SEAL_TAG;
}

void peermsg_link_key(const uint8_t fleet_key[PEERMSG_KEY_LEN], const char *dir,
                      const uint8_t nd[PEERMSG_NONCE_LEN], const uint8_t na[PEERMSG_NONCE_LEN],
                      uint8_t out[PEERMSG_KEY_LEN])
{
    uint8_t msg[32 + 2 * PEERMSG_NONCE_LEN];
    size_t n = (size_t)snprintf((char *)msg, 32, "warren-link-v1 %s", dir);
    if (n > 31)
        n = 31;
    memcpy(msg + n, nd, PEERMSG_NONCE_LEN);
    memcpy(msg + n + PEERMSG_NONCE_LEN, na, PEERMSG_NONCE_LEN);
    crypto_generichash(out, PEERMSG_KEY_LEN, msg, n + 2 * PEERMSG_NONCE_LEN, fleet_key,
                       PEERMSG_KEY_LEN);
}

/* --- control messages --- */

static const struct {
    const char *text;
    enum peermsg_type type;
} types[] = {
    {"peer_challenge", PEERMSG_CHALLENGE},  {"peer_hello", PEERMSG_HELLO},
    {"peer_welcome", PEERMSG_WELCOME},      {"lookup", PEERMSG_LOOKUP},
    {"lookup_reply", PEERMSG_LOOKUP_REPLY}, {"claim", PEERMSG_CLAIM},
    {"claim_reply", PEERMSG_CLAIM_REPLY},
};

static const char *type_text(enum peermsg_type t)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == t)
            return types[i].text;
    return NULL;
}

/* Exactly `want` bytes of base64url without padding. */
static int unb64(const char *s, size_t n, uint8_t *out, size_t want)
{
    size_t got = 0;
    if (sodium_base642bin(out, want, s, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        got != want)
        return -EINVAL;
    return 0;
}

/* A string field of at most cap - 1 bytes (min_len..), copied; -EBADMSG otherwise. */
static int get_str(json_t *o, const char *key, char *out, size_t cap, size_t min_len)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return -EBADMSG;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n < min_len || n >= cap || memchr(s, 0, n))
        return -EBADMSG;
    memcpy(out, s, n + 1);
    return 0;
}

static int get_int(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return -EBADMSG;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int get_nonce(json_t *o, struct peermsg *m)
{
    if (get_str(o, "nonce", m->nonce_text, sizeof m->nonce_text, 1) < 0 ||
        unb64(m->nonce_text, strlen(m->nonce_text), m->nonce, sizeof m->nonce) < 0)
        return -EBADMSG;
    return 0;
}

static int parse_auth(json_t *o, struct peermsg *m)
{
    char mac[64];
    int64_t ts;
    if (get_str(o, "instance", m->instance, sizeof m->instance, 1) < 0 ||
        get_int(o, "ts", &ts) < 0 || get_nonce(o, m) < 0 ||
        get_str(o, "mac", mac, sizeof mac, 1) < 0 ||
        unb64(mac, strlen(mac), m->mac, sizeof m->mac) < 0)
        return -EBADMSG;
    m->ts = (uint64_t)ts;
    return 0;
}

static int get_name(json_t *o, struct peermsg *m)
{
    json_t *v = json_object_get(o, "name");
    if (!json_is_string(v))
        return -EBADMSG;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n >= sizeof m->name || name_validate(s, n) == -EINVAL)
        return -EBADMSG;
    memcpy(m->name, s, n + 1);
    return 0;
}

static int parse_fields(json_t *o, struct peermsg *m)
{
    int64_t ts;
    switch (m->type) {
    case PEERMSG_CHALLENGE:
        return get_nonce(o, m);
    case PEERMSG_HELLO:
    case PEERMSG_WELCOME:
        return parse_auth(o, m);
    case PEERMSG_LOOKUP:
        return get_int(o, "id", &m->id) < 0 || get_name(o, m) < 0 ? -EBADMSG : 0;
    case PEERMSG_CLAIM:
        if (get_int(o, "id", &m->id) < 0 || get_name(o, m) < 0 || get_int(o, "ts", &ts) < 0 ||
            get_str(o, "instance", m->instance, sizeof m->instance, 0) < 0)
            return -EBADMSG;
        m->ts = (uint64_t)ts;
        m->owner = json_is_true(json_object_get(o, "owner"));
        return 0;
    case PEERMSG_LOOKUP_REPLY:
        m->have = json_is_true(json_object_get(o, "have"));
        m->reserved = json_is_true(json_object_get(o, "reserved"));
        return get_int(o, "id", &m->id);
    case PEERMSG_CLAIM_REPLY:
        m->ok = json_is_true(json_object_get(o, "ok"));
        return get_int(o, "id", &m->id);
    case PEERMSG_UNKNOWN:
        return 0;
    }
    return -EBADMSG;
}

int peermsg_parse(const uint8_t *p, size_t len, struct peermsg *out)
{
    if (len > FRAME_CTL_MAX)
        return -EINVAL;
    json_error_t je;
    json_t *o = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return -EINVAL;
    }
    struct peermsg m;
    memset(&m, 0, sizeof m);
    json_t *tv = json_object_get(o, "type");
    int r = -EBADMSG;
    if (json_is_string(tv)) {
        const char *t = json_string_value(tv);
        size_t tn = json_string_length(tv);
        m.type = PEERMSG_UNKNOWN;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strlen(types[i].text) == tn && memcmp(types[i].text, t, tn) == 0)
                m.type = types[i].type;
        for (size_t i = 0; i < tn && i + 1 < sizeof m.type_text; i++)
            m.type_text[i] = t[i] > 0x20 && t[i] < 0x7f ? t[i] : '?';
        r = parse_fields(o, &m);
    }
    json_decref(o);
    if (r == 0)
        *out = m;
    return r;
}

char *peermsg_encode(const struct peermsg *m)
{
    const char *type = type_text(m->type);
    char mac[64];
    json_t *o = NULL;
    if (!type)
        return NULL;
    switch (m->type) {
    case PEERMSG_CHALLENGE:
        o = json_pack("{s:s, s:i, s:s}", "type", type, "v", 1, "nonce", m->nonce_text);
        break;
    case PEERMSG_HELLO:
    case PEERMSG_WELCOME:
        sodium_bin2base64(mac, sizeof mac, m->mac, sizeof m->mac,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        o = json_pack("{s:s, s:i, s:s, s:I, s:s, s:s}", "type", type, "v", 1, "instance",
                      m->instance, "ts", (json_int_t)m->ts, "nonce", m->nonce_text, "mac", mac);
        break;
    case PEERMSG_LOOKUP:
        o = json_pack("{s:s, s:I, s:s}", "type", type, "id", (json_int_t)m->id, "name", m->name);
        break;
    case PEERMSG_CLAIM:
        o = json_pack("{s:s, s:I, s:s, s:b, s:I, s:s}", "type", type, "id", (json_int_t)m->id,
                      "name", m->name, "owner", m->owner, "ts", (json_int_t)m->ts, "instance",
                      m->instance);
        break;
    case PEERMSG_LOOKUP_REPLY:
        o = json_pack("{s:s, s:I, s:b, s:b}", "type", type, "id", (json_int_t)m->id, "have",
                      m->have, "reserved", m->reserved);
        break;
    case PEERMSG_CLAIM_REPLY:
        o = json_pack("{s:s, s:I, s:b}", "type", type, "id", (json_int_t)m->id, "ok", m->ok);
        break;
    case PEERMSG_UNKNOWN:
        break;
    }
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void peermsg_nonce_new(uint8_t nonce[PEERMSG_NONCE_LEN], char text[PEERMSG_NONCE_TEXT])
{
    randombytes_buf(nonce, PEERMSG_NONCE_LEN);
    sodium_bin2base64(text, PEERMSG_NONCE_TEXT, nonce, PEERMSG_NONCE_LEN,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* The text a handshake MAC covers; 0 or -EINVAL (not a hello or welcome). */
static int mac_text(const struct peermsg *m, const char *peer_nonce, char *out, size_t cap)
{
    if (m->type != PEERMSG_HELLO && m->type != PEERMSG_WELCOME)
        return -EINVAL;
    int n = snprintf(out, cap, "warren-peer-v1|%s|%s|%llu|%s|%s", type_text(m->type), m->instance,
                     (unsigned long long)m->ts, m->nonce_text, peer_nonce ? peer_nonce : "");
    return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

void peermsg_auth_sign(struct peermsg *m, const char *peer_nonce_text,
                       const uint8_t key[PEERMSG_KEY_LEN])
{
    char text[400];
    if (mac_text(m, peer_nonce_text, text, sizeof text) == 0)
        crypto_auth(m->mac, (const uint8_t *)text, strlen(text), key);
}

int peermsg_auth_verify(const struct peermsg *m, const char *peer_nonce_text,
                        const uint8_t key[PEERMSG_KEY_LEN])
{
    char text[400];
    if (mac_text(m, peer_nonce_text, text, sizeof text) < 0 ||
        crypto_auth_verify(m->mac, (const uint8_t *)text, strlen(text), key) != 0)
        return -EACCES;
    return 0;
}
