/*
 * test_peermsg: the peer-link record layer and control messages.
 *
 * Records: a plain record is never decided before its last byte, a length
 * prefix out of bounds is refused from its four bytes alone; sealed records
 * come back in order, and a replayed, reordered, altered or foreign one is
 * refused without advancing the counter. Keys and MACs match vectors computed
 * independently (Python's hashlib/hmac, as tests/cluster/cluster.py does).
 * Messages: every type survives encode + parse; each malformed shape gets the
 * documented error and leaves the output untouched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "peermsg.h"

static const uint8_t key[PEERMSG_KEY_LEN] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static int parse(const char *json, struct peermsg *m)
{
    return peermsg_parse((const uint8_t *)json, strlen(json), m);
}

/* ---- records ------------------------------------------------------------- */

static void test_plain_records(void)
{
    uint8_t buf[64];
    struct frame f;
    size_t flen = 0;
    uint64_t seq = 0;
    size_t n = frame_encode_ctl(buf + 4, sizeof buf - 4, "{}", 2);
    frame_put_prefix(buf, n);
    for (size_t i = 0; i < 4 + n; i++)
        CHECK_EQ(peermsg_record_take(buf, i, NULL, &seq, &f, &flen), 0);
    CHECK_EQ(peermsg_record_take(buf, 4 + n, NULL, &seq, &f, &flen), (long)(4 + n));
    CHECK_EQ(f.type, FRAME_CTL);
    CHECK_EQ(flen, n);
    CHECK_EQ(f.len, 2);
    CHECK(memcmp(f.payload, "{}", 2) == 0);
    CHECK_EQ(seq, 0);

    /* a prefix above the largest frame is refused from its 4 bytes */
    uint8_t big[4];
    frame_put_prefix(big, PEERMSG_PLAIN_MAX + 1);
    CHECK_EQ(peermsg_record_take(big, 4, NULL, &seq, &f, &flen), -EMSGSIZE);
    /* a complete but malformed frame (CTL on stream 1) */
    buf[4 + 1 + 3] = 1;
    CHECK_EQ(peermsg_record_take(buf, 4 + n, NULL, &seq, &f, &flen), -EINVAL);
}

static size_t put_sealed(uint8_t *dst, const char *json, const uint8_t *k, uint64_t *seq)
{
    size_t n = frame_encode_ctl(dst + 4, FRAME_MAX_LEN, json, strlen(json));
    n = peermsg_seal(dst + 4, n, k, seq);
    frame_put_prefix(dst, n);
    return 4 + n;
}

static void test_sealed_records(void)
{
    static uint8_t stream[4096], copy[4096];
    uint64_t tx = 0, rx = 0;
    size_t len = 0, at[4];
    const char *msgs[] = {"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"};
    for (int i = 0; i < 3; i++) {
        at[i] = len;
        len += put_sealed(stream + len, msgs[i], key, &tx);
    }
    at[3] = len;
    CHECK_EQ(tx, 3);
    memcpy(copy, stream, len);

    struct frame f;
    size_t flen = 0, off = 0;
    for (int i = 0; i < 3; i++) {
        size_t rlen = at[i + 1] - at[i];
        CHECK_EQ(rlen, 4 + 5 + strlen(msgs[i]) + PEERMSG_SEAL_TAG);
        CHECK_EQ(peermsg_record_take(stream + off, rlen - 1, key, &rx, &f, &flen), 0);
        CHECK_EQ(peermsg_record_take(stream + off, len - off, key, &rx, &f, &flen), (long)rlen);
        CHECK_EQ(rx, (uint64_t)i + 1);
        CHECK_EQ(f.type, FRAME_CTL);
        CHECK(f.len == strlen(msgs[i]) && memcmp(f.payload, msgs[i], f.len) == 0);
        off += rlen;
    }

    /* replayed: record 0 again, with the counter at 3 */
    memcpy(stream, copy, len);
    CHECK_EQ(peermsg_record_take(stream, len, key, &rx, &f, &flen), -EBADMSG);
    CHECK_EQ(rx, 3);
    /* reordered: record 1 first */
    uint64_t fresh = 0;
    CHECK_EQ(peermsg_record_take(stream + at[1], len - at[1], key, &fresh, &f, &flen), -EBADMSG);
    CHECK_EQ(fresh, 0);
    /* altered: one bit of the ciphertext, then one of the tag */
    for (size_t pos = 4; pos < at[1]; pos += at[1] - 5) {
        memcpy(stream, copy, len);
        stream[pos] ^= 0x10;
        fresh = 0;
        CHECK_EQ(peermsg_record_take(stream, len, key, &fresh, &f, &flen), -EBADMSG);
        CHECK_EQ(fresh, 0);
    }
    /* another key */
    uint8_t other[PEERMSG_KEY_LEN];
    memcpy(other, key, sizeof other);
    other[31] ^= 1;
    memcpy(stream, copy, len);
    fresh = 0;
    CHECK_EQ(peermsg_record_take(stream, len, other, &fresh, &f, &flen), -EBADMSG);
    /* lengths out of bounds, decided from the prefix alone */
    uint8_t p[4];
    frame_put_prefix(p, PEERMSG_SEALED_MIN - 1);
    CHECK_EQ(peermsg_record_take(p, 4, key, &fresh, &f, &flen), -EMSGSIZE);
    frame_put_prefix(p, PEERMSG_SEALED_MAX + 1);
    CHECK_EQ(peermsg_record_take(p, 4, key, &fresh, &f, &flen), -EMSGSIZE);
    frame_put_prefix(p, PEERMSG_SEALED_MAX);
    CHECK_EQ(peermsg_record_take(p, 4, key, &fresh, &f, &flen), 0);
    CHECK_EQ(peermsg_record_take(p, 3, key, &fresh, &f, &flen), 0);

    /* an authentic record holding a malformed frame (empty DATA) */
    uint8_t bad[64];
    size_t n = frame_put_header(bad + 4, FRAME_DATA, 1);
    uint64_t s = 0;
    n = peermsg_seal(bad + 4, n, key, &s);
    frame_put_prefix(bad, n);
    fresh = 0;
    CHECK_EQ(peermsg_record_take(bad, 4 + n, key, &fresh, &f, &flen), -EINVAL);
}

/* Records are RFC 8439 ChaCha20-Poly1305 as libsodium's IETF construction
 * makes them, whichever library seals: an edge of an earlier version (which
 * sealed with libsodium) and this one open each other's records. */
static void test_sealed_interop(void)
{
    static uint8_t rec[FRAME_MAX_LEN + 64], ref[FRAME_MAX_LEN + 64], out[FRAME_MAX_LEN + 64];
    uint8_t k[PEERMSG_KEY_LEN], nonce[12] = {0};
    randombytes_buf(k, sizeof k);
    const size_t sizes[] = {FRAME_HDR_LEN, 100, 4096, FRAME_MAX_LEN};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint64_t seq = 0x0102030405060708ull + i, s2 = seq;
        randombytes_buf(rec, n);
        memcpy(ref, rec, n);
        /* ours -> libsodium */
        size_t c = peermsg_seal(rec, n, k, &seq);
        CHECK_EQ(c, n + PEERMSG_SEAL_TAG);
        for (int b = 0; b < 8; b++)
            nonce[4 + b] = (uint8_t)(s2 >> (56 - 8 * b));
        unsigned long long m = 0;
        CHECK_EQ(
            crypto_aead_chacha20poly1305_ietf_decrypt(out, &m, NULL, rec, c, NULL, 0, nonce, k), 0);
        CHECK_EQ(m, n);
        CHECK(memcmp(out, ref, n) == 0);
        /* libsodium -> ours: same bytes, and the record opens */
        unsigned long long c2 = 0;
        crypto_aead_chacha20poly1305_ietf_encrypt(out, &c2, ref, n, NULL, 0, NULL, nonce, k);
        CHECK_EQ(c2, c);
        CHECK(memcmp(out, rec, c) == 0);
    }
    /* and a sealed frame from libsodium is taken by the record layer */
    size_t n = frame_encode_ctl(ref + 4, FRAME_MAX_LEN, "{\"x\":1}", 7);
    memset(nonce, 0, sizeof nonce);
    unsigned long long c = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(ref + 4, &c, ref + 4, n, NULL, 0, NULL, nonce, k);
    frame_put_prefix(ref, (size_t)c);
    uint64_t rx = 0;
    struct frame f;
    size_t flen = 0;
    CHECK_EQ(peermsg_record_take(ref, 4 + (size_t)c, k, &rx, &f, &flen), (long)(4 + c));
    CHECK_EQ(rx, 1);
    CHECK_EQ(f.type, FRAME_CTL);
    CHECK_EQ(f.len, 7);
    /* one flipped bit in text or tag: refused, counter unchanged */
    for (size_t bit = 0; bit < 8 * (size_t)c; bit += 61) {
        n = frame_encode_ctl(ref + 4, FRAME_MAX_LEN, "{\"x\":1}", 7);
        crypto_aead_chacha20poly1305_ietf_encrypt(ref + 4, &c, ref + 4, n, NULL, 0, NULL, nonce, k);
        ref[4 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        rx = 0;
        CHECK_EQ(peermsg_record_take(ref, 4 + (size_t)c, k, &rx, &f, &flen), -EBADMSG);
        CHECK_EQ(rx, 0);
    }
}

static void test_link_keys(void)
{
    uint8_t nd[16], na[16], k1[32], k2[32];
    char h[65];
    for (int i = 0; i < 16; i++) {
        nd[i] = (uint8_t)(0xd0 + i);
        na[i] = (uint8_t)(0xa0 + i);
    }
    peermsg_link_key(key, "d2a", nd, na, k1);
    peermsg_link_key(key, "a2d", nd, na, k2);
    hex(k1, 32, h);
    CHECK_STR(h, "11675bd2f6c17fed68ce29187a937b409205ce444e51d63222f549dbb28bc3b5");
    hex(k2, 32, h);
    CHECK_STR(h, "2814d1c4a7c83f1ce246ca4281977832236f432304371078ae749ef1d7fb29e2");
}

/* ---- messages ------------------------------------------------------------ */

static void round_trip(const struct peermsg *in)
{
    struct peermsg out;
    char *j = peermsg_encode(in);
    CHECK(j != NULL);
    if (!j)
        return;
    CHECK(strlen(j) <= FRAME_CTL_MAX);
    memset(&out, 0x55, sizeof out);
    CHECK_EQ(parse(j, &out), 0);
    CHECK_EQ(out.type, in->type);
    CHECK_STR(out.nonce_text, in->nonce_text);
    CHECK(memcmp(out.nonce, in->nonce, sizeof out.nonce) == 0);
    CHECK_STR(out.instance, in->instance);
    CHECK_EQ(out.ts, in->ts);
    CHECK(memcmp(out.mac, in->mac, sizeof out.mac) == 0);
    CHECK_EQ(out.id, in->id);
    CHECK_STR(out.name, in->name);
    CHECK(out.owner == in->owner && out.have == in->have && out.reserved == in->reserved &&
          out.ok == in->ok);
    free(j);
}

static void test_round_trips(void)
{
    struct peermsg m;
    memset(&m, 0, sizeof m);
    m.type = PEERMSG_CHALLENGE;
    peermsg_nonce_new(m.nonce, m.nonce_text);
    CHECK_EQ(strlen(m.nonce_text), 22);
    round_trip(&m);

    enum peermsg_type auth[] = {PEERMSG_HELLO, PEERMSG_WELCOME};
    for (int i = 0; i < 2; i++) {
        memset(&m, 0, sizeof m);
        m.type = auth[i];
        snprintf(m.instance, sizeof m.instance, "%s", "edge-7.fra");
        m.ts = 1700000000123ull;
        peermsg_nonce_new(m.nonce, m.nonce_text);
        peermsg_auth_sign(&m, "oKGio6SlpqeoqaqrrK2urw", key);
        round_trip(&m);
    }

    memset(&m, 0, sizeof m);
    m.type = PEERMSG_LOOKUP;
    m.id = 4294967295ll;
    snprintf(m.name, sizeof m.name, "myapp");
    round_trip(&m);
    m.type = PEERMSG_CLAIM;
    m.owner = true;
    m.ts = 1700000000456ull;
    snprintf(m.instance, sizeof m.instance, "%.63s",
             "0123456789012345678901234567890123456789012345678901234567890123");
    CHECK_EQ(strlen(m.instance), 63);
    round_trip(&m);
    memset(&m, 0, sizeof m);
    m.type = PEERMSG_LOOKUP_REPLY;
    m.id = -1;
    m.reserved = true;
    round_trip(&m);
    memset(&m, 0, sizeof m);
    m.type = PEERMSG_CLAIM_REPLY;
    m.id = 7;
    m.ok = true;
    round_trip(&m);
    m.type = PEERMSG_UNKNOWN;
    CHECK(peermsg_encode(&m) == NULL);
}

static void test_parse_fields(void)
{
    struct peermsg m;
    CHECK_EQ(parse("{\"type\":\"lookup\",\"id\":3,\"name\":\"demo\"}", &m), 0);
    CHECK_EQ(m.type, PEERMSG_LOOKUP);
    CHECK_EQ(m.id, 3);
    CHECK_STR(m.name, "demo");
    CHECK_STR(m.type_text, "lookup");
    /* reserved names are still names (the answer is "no") */
    CHECK_EQ(parse("{\"type\":\"lookup\",\"id\":3,\"name\":\"www\"}", &m), 0);
    CHECK_EQ(parse("{\"type\":\"claim\",\"id\":1,\"name\":\"a\",\"ts\":5,\"instance\":\"\"}", &m),
             0);
    CHECK(!m.owner);
    CHECK_EQ(parse("{\"type\":\"claim\",\"id\":1,\"name\":\"a\",\"ts\":5,\"instance\":\"e\","
                   "\"owner\":1}",
                   &m),
             0);
    CHECK(!m.owner); /* only true is true */
    CHECK_EQ(parse("{\"type\":\"lookup_reply\",\"id\":9,\"have\":true}", &m), 0);
    CHECK(m.have && !m.reserved);
    CHECK_EQ(parse("{\"type\":\"claim_reply\",\"id\":9}", &m), 0);
    CHECK(!m.ok);
    /* unknown types parse, for logs only, printable and bounded */
    CHECK_EQ(parse("{\"type\":\"gossip\\u0007 x\"}", &m), 0);
    CHECK_EQ(m.type, PEERMSG_UNKNOWN);
    CHECK_STR(m.type_text, "gossip??x");
    char longtype[200];
    snprintf(longtype, sizeof longtype, "{\"type\":\"%0100d\"}", 0);
    CHECK_EQ(parse(longtype, &m), 0);
    CHECK_EQ(strlen(m.type_text), PEERMSG_TYPE_TEXT - 1);
    /* a well-formed hello */
    CHECK_EQ(parse("{\"type\":\"peer_hello\",\"v\":1,\"instance\":\"e1\",\"ts\":1,"
                   "\"nonce\":\"0NHS09TV1tfY2drb3N3e3w\","
                   "\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                   &m),
             0);
    CHECK_EQ(m.nonce[0], 0xd0);
    CHECK_EQ(m.nonce[15], 0xdf);
}

static void test_refused(void)
{
    static const struct {
        const char *json;
        int want;
    } cases[] = {
        {"", -EINVAL},
        {"not json", -EINVAL},
        {"[1,2]", -EINVAL},
        {"\"lookup\"", -EINVAL},
        {"{\"type\":\"lookup\",\"type\":\"claim\"}", -EINVAL}, /* duplicate key */
        {"{\"type\":\"lookup\",\"id\":1,\"name\":\"a\\u0000b\"}", -EINVAL},
        {"{}", -EBADMSG},
        {"{\"type\":7}", -EBADMSG},
        {"{\"type\":null}", -EBADMSG},
        {"{\"type\":\"lookup\",\"name\":\"demo\"}", -EBADMSG},
        {"{\"type\":\"lookup\",\"id\":\"1\",\"name\":\"demo\"}", -EBADMSG},
        {"{\"type\":\"lookup\",\"id\":1.0,\"name\":\"demo\"}", -EBADMSG},
        {"{\"type\":\"lookup\",\"id\":1,\"name\":\"My_App\"}", -EBADMSG},
        {"{\"type\":\"lookup\",\"id\":1,\"name\":\"\"}", -EBADMSG},
        {"{\"type\":\"lookup\",\"id\":1,\"name\":\"-x\"}", -EBADMSG},
        {"{\"type\":\"lookup\",\"id\":1}", -EBADMSG},
        {"{\"type\":\"claim\",\"id\":1,\"name\":\"a\",\"ts\":5}", -EBADMSG},
        {"{\"type\":\"claim\",\"id\":1,\"name\":\"a\",\"instance\":\"e\"}", -EBADMSG},
        {"{\"type\":\"claim\",\"id\":1,\"name\":\"a\",\"ts\":5,\"instance\":"
         "\"0123456789012345678901234567890123456789012345678901234567890123\"}",
         -EBADMSG},
        {"{\"type\":\"lookup_reply\",\"have\":true}", -EBADMSG},
        {"{\"type\":\"claim_reply\",\"id\":false}", -EBADMSG},
        {"{\"type\":\"peer_challenge\"}", -EBADMSG},
        {"{\"type\":\"peer_challenge\",\"nonce\":\"0NHS09TV1tfY2drb3N3e3\"}", -EBADMSG},
        {"{\"type\":\"peer_challenge\",\"nonce\":\"0NHS09TV1tfY2drb3N3e3wA\"}", -EBADMSG},
        {"{\"type\":\"peer_challenge\",\"nonce\":\"0NHS09TV1tfY2drb3N3e3x\"}", -EBADMSG},
        {"{\"type\":\"peer_challenge\",\"nonce\":\"0NHS09TV1tfY2drb3N3e3w==\"}", -EBADMSG},
        {"{\"type\":\"peer_challenge\",\"nonce\":\"0NHS09TV1tfY2drb3N3e3+\"}", -EBADMSG},
        {"{\"type\":\"peer_hello\",\"instance\":\"\",\"ts\":1,\"nonce\":\"0NHS09TV1tfY2drb3N3e3w\","
         "\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         -EBADMSG},
        {"{\"type\":\"peer_hello\",\"instance\":\"e\",\"ts\":\"1\",\"nonce\":"
         "\"0NHS09TV1tfY2drb3N3e3w\",\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         -EBADMSG},
        {"{\"type\":\"peer_welcome\",\"instance\":\"e\",\"ts\":1,\"nonce\":"
         "\"0NHS09TV1tfY2drb3N3e3w\",\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
         -EBADMSG},
        {"{\"type\":\"peer_welcome\",\"instance\":\"e\",\"ts\":1,\"nonce\":"
         "\"0NHS09TV1tfY2drb3N3e3w\"}",
         -EBADMSG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct peermsg m, untouched;
        memset(&m, 0xa5, sizeof m);
        untouched = m;
        int r = parse(cases[i].json, &m);
        if (r != cases[i].want)
            fprintf(stderr, "  case %zu: %s -> %d\n", i, cases[i].json, r);
        CHECK_EQ(r, cases[i].want);
        CHECK(memcmp(&m, &untouched, sizeof m) == 0);
    }
    /* longer than a CTL frame can carry */
    static char big[FRAME_CTL_MAX + 64];
    int n = snprintf(big, sizeof big, "{\"type\":\"lookup\",\"id\":1,\"name\":\"a\",\"pad\":\"");
    memset(big + n, 'x', FRAME_CTL_MAX);
    memcpy(big + n + FRAME_CTL_MAX - 20, "\"}", 3);
    struct peermsg m;
    CHECK_EQ(parse(big, &m), -EINVAL);
}

static void test_auth(void)
{
    struct peermsg m;
    memset(&m, 0, sizeof m);
    m.type = PEERMSG_HELLO;
    snprintf(m.instance, sizeof m.instance, "edge7");
    m.ts = 1700000000123ull;
    for (int i = 0; i < 16; i++)
        m.nonce[i] = (uint8_t)(0xd0 + i);
    snprintf(m.nonce_text, sizeof m.nonce_text, "0NHS09TV1tfY2drb3N3e3w");
    const char *peer = "oKGio6SlpqeoqaqrrK2urw";
    peermsg_auth_sign(&m, peer, key);
    char h[65];
    hex(m.mac, 32, h);
    CHECK_STR(h, "d47056aa37478f411e3515cfeb85925c4df9750ea749b54d76b3aaa641bb5e97");
    CHECK_EQ(peermsg_auth_verify(&m, peer, key), 0);
    CHECK_EQ(peermsg_auth_verify(&m, "oKGio6SlpqeoqaqrrK2ura", key), -EACCES);
    CHECK_EQ(peermsg_auth_verify(&m, NULL, key), -EACCES);
    struct peermsg t = m;
    t.ts++;
    CHECK_EQ(peermsg_auth_verify(&t, peer, key), -EACCES);
    t = m;
    t.instance[0] = 'E';
    CHECK_EQ(peermsg_auth_verify(&t, peer, key), -EACCES);
    t = m;
    t.type = PEERMSG_WELCOME; /* a hello's MAC does not make a welcome */
    CHECK_EQ(peermsg_auth_verify(&t, peer, key), -EACCES);
    t = m;
    t.type = PEERMSG_CHALLENGE;
    CHECK_EQ(peermsg_auth_verify(&t, peer, key), -EACCES);
    uint8_t other[32];
    memcpy(other, key, 32);
    other[0] ^= 0x80;
    CHECK_EQ(peermsg_auth_verify(&m, peer, other), -EACCES);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_plain_records();
    test_sealed_records();
    test_sealed_interop();
    test_link_keys();
    test_round_trips();
    test_parse_fields();
    test_refused();
    test_auth();
    return check_done();
}
