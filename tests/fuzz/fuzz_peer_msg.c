/*
 * fuzz_peer_msg: the JSON control messages of peer links (peermsg_parse,
 * peermsg_encode, the handshake MACs) on untrusted bytes, as a CTL frame's
 * payload reaches peerlink.c.
 *
 * Invariants checked with abort(): only the documented errors come back and
 * a refused message leaves the output untouched; -EINVAL exactly when the
 * bytes are not one JSON object; every string of an accepted message is
 * terminated within its array and within its bound, a nonce's text decodes
 * to its bytes, names have valid syntax, unknown types are printable; an
 * accepted message encodes within FRAME_CTL_MAX and parses back to the same
 * struct; a hello or welcome signed with a test key verifies after the round
 * trip, and not with another peer nonce, key or field; a MAC that verifies
 * as received is the one signing gives (the fuzzer cannot forge MACs; the
 * corpus holds messages signed with the test key for the accepting path).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "peermsg.h"

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)
#define TERMINATED(s) (strnlen((s), sizeof(s)) < sizeof(s))

static const uint8_t fuzz_key[PEERMSG_KEY_LEN] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};
/* The peer nonce the corpus's signed hellos and welcomes cover. */
static const char corpus_peer_nonce[] = "oKGio6SlpqeoqaqrrK2urw";

static bool is_object(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    bool r = o && json_is_object(o);
    json_decref(o);
    return r;
}

static bool same(const struct peermsg *a, const struct peermsg *b)
{
    return a->type == b->type && strcmp(a->type_text, b->type_text) == 0 &&
           strcmp(a->nonce_text, b->nonce_text) == 0 &&
           memcmp(a->nonce, b->nonce, sizeof a->nonce) == 0 &&
           strcmp(a->instance, b->instance) == 0 && a->ts == b->ts &&
           memcmp(a->mac, b->mac, sizeof a->mac) == 0 && a->id == b->id &&
           strcmp(a->name, b->name) == 0 && a->owner == b->owner && a->have == b->have &&
           a->reserved == b->reserved && a->ok == b->ok;
}

static void check_fields(const struct peermsg *m)
{
    REQUIRE(m->type >= PEERMSG_UNKNOWN && m->type <= PEERMSG_CLAIM_REPLY);
    REQUIRE(TERMINATED(m->type_text) && TERMINATED(m->nonce_text) && TERMINATED(m->instance) &&
            TERMINATED(m->name));
    for (const char *p = m->type_text; *p; p++)
        REQUIRE(*p > 0x20 && *p < 0x7f);
    switch (m->type) {
    case PEERMSG_CHALLENGE:
    case PEERMSG_HELLO:
    case PEERMSG_WELCOME: {
        uint8_t bin[PEERMSG_NONCE_LEN];
        size_t n = 0;
        REQUIRE(strlen(m->nonce_text) == 22);
        REQUIRE(sodium_base642bin(bin, sizeof bin, m->nonce_text, strlen(m->nonce_text), NULL, &n,
                                  NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
                n == sizeof bin && memcmp(bin, m->nonce, n) == 0);
        if (m->type != PEERMSG_CHALLENGE)
            REQUIRE(m->instance[0] != 0);
        break;
    }
    case PEERMSG_LOOKUP:
    case PEERMSG_CLAIM:
        REQUIRE(name_validate(m->name, strlen(m->name)) != -EINVAL);
        break;
    default:
        break;
    }
}

static void check_auth(const struct peermsg *m)
{
    if (m->type != PEERMSG_HELLO && m->type != PEERMSG_WELCOME) {
        REQUIRE(peermsg_auth_verify(m, corpus_peer_nonce, fuzz_key) == -EACCES);
        return;
    }
    /* as received: accepted only if it is what signing gives */
    if (peermsg_auth_verify(m, corpus_peer_nonce, fuzz_key) == 0) {
        struct peermsg s = *m;
        peermsg_auth_sign(&s, corpus_peer_nonce, fuzz_key);
        REQUIRE(memcmp(s.mac, m->mac, sizeof s.mac) == 0);
    }
    /* signed here, through the wire format and back */
    struct peermsg s = *m, back;
    peermsg_auth_sign(&s, m->nonce_text, fuzz_key);
    char *j = peermsg_encode(&s);
    REQUIRE(j);
    REQUIRE(peermsg_parse((const uint8_t *)j, strlen(j), &back) == 0);
    free(j);
    REQUIRE(peermsg_auth_verify(&back, m->nonce_text, fuzz_key) == 0);
    REQUIRE(peermsg_auth_verify(&back, corpus_peer_nonce, fuzz_key) == -EACCES ||
            strcmp(m->nonce_text, corpus_peer_nonce) == 0);
    uint8_t other[PEERMSG_KEY_LEN];
    memcpy(other, fuzz_key, sizeof other);
    other[5] ^= 0x20;
    REQUIRE(peermsg_auth_verify(&back, m->nonce_text, other) == -EACCES);
    back.ts ^= 1;
    REQUIRE(peermsg_auth_verify(&back, m->nonce_text, fuzz_key) == -EACCES);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    struct peermsg m, untouched, back;
    memset(&m, 0xa5, sizeof m);
    untouched = m;
    int r = peermsg_parse(data, size, &m);
    REQUIRE(r == 0 || r == -EINVAL || r == -EBADMSG);
    REQUIRE((r == -EINVAL) == (size > FRAME_CTL_MAX || !is_object(data, size)));
    if (r < 0) {
        REQUIRE(memcmp(&m, &untouched, sizeof m) == 0);
        return 0;
    }
    check_fields(&m);
    char *j = peermsg_encode(&m);
    if (m.type == PEERMSG_UNKNOWN) {
        REQUIRE(j == NULL);
        return 0;
    }
    REQUIRE(j && strlen(j) <= FRAME_CTL_MAX);
    memset(&back, 0x5a, sizeof back);
    REQUIRE(peermsg_parse((const uint8_t *)j, strlen(j), &back) == 0);
    free(j);
    REQUIRE(same(&back, &m));
    check_auth(&m);
    return 0;
}
