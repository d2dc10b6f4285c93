/*
 * peermsg: what the edges of a fleet say to each other on a peer link
 * (docs/fleet.md), without the sockets, so that every byte a peer sends is
 * parsed here and can be fuzzed on its own.
 *
 * Two layers:
 *
 *  - records: `u32 length | frame` (common/frame.h). Before the handshake
 *    ends a record is a plain frame; after it every record is sealed with
 *    ChaCha20-Poly1305 (IETF), one key per direction, the record counter as
 *    the nonce, so `length` covers the frame plus the 16-byte tag.
 *  - control messages: the JSON payload of a CTL frame. The handshake
 *    (peer_challenge, peer_hello, peer_welcome) and the fleet's requests and
 *    replies (lookup, lookup_reply, claim, claim_reply) are parsed into one
 *    fixed-size struct, every string bounded, and encoded back.
 *
 * Nothing here logs, allocates beyond jansson's parse, or keeps state.
 */
#ifndef WARREN_PEERMSG_H
#define WARREN_PEERMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "names.h"

#define PEERMSG_KEY_LEN 32
#define PEERMSG_NONCE_LEN 16
#define PEERMSG_NONCE_TEXT 23 /* base64url (no padding) of 16 bytes is 22 characters, + NUL */
#define PEERMSG_MAC_LEN 32    /* crypto_auth (HMAC-SHA512-256) */
#define PEERMSG_INSTANCE_MAX 63
#define PEERMSG_TYPE_TEXT 33 /* an unknown type is kept (32 bytes at most) for logs */
#define PEERMSG_SEAL_TAG 16  /* crypto_aead_chacha20poly1305_ietf_ABYTES */
/* Bounds of a record's length prefix. */
#define PEERMSG_PLAIN_MAX FRAME_MAX_LEN
#define PEERMSG_SEALED_MIN (FRAME_HDR_LEN + PEERMSG_SEAL_TAG)
#define PEERMSG_SEALED_MAX (FRAME_MAX_LEN + PEERMSG_SEAL_TAG)

/* --- records --- */

/* Take the next record from p[0..len), a link's read buffer. key NULL: a
 * plain record; otherwise the record is sealed: it is opened in place with
 * nonce *seq, and *seq is incremented when it authenticates. Returns the
 * bytes the record occupies (prefix included) and fills *f (its payload
 * points into p, the frame itself starts at p + FRAME_LEN_PREFIX and is
 * *frame_len bytes long); 0 when more bytes are needed; -EMSGSIZE as soon as
 * the length prefix is out of bounds; -EBADMSG when a sealed record fails
 * authentication (forged, replayed, reordered or altered); -EINVAL when the
 * frame inside is malformed. Outputs are written only on success. */
long peermsg_record_take(uint8_t *p, size_t len, const uint8_t *key, uint64_t *seq, struct frame *f,
                         size_t *frame_len);

/* Seal the n-byte frame at p in place with nonce *seq (then incremented); p
 * must have room for n + PEERMSG_SEAL_TAG bytes. Returns the sealed length,
 * the value of the record's length prefix, or 0 when out of memory. */
size_t peermsg_seal(uint8_t *p, size_t n, const uint8_t key[PEERMSG_KEY_LEN], uint64_t *seq);

/* The key of one direction of a link: BLAKE2b keyed with the fleet key over
 * "warren-link-v1 " DIR | dialer's nonce | acceptor's nonce, DIR "d2a" or
 * "a2d". */
void peermsg_link_key(const uint8_t fleet_key[PEERMSG_KEY_LEN], const char *dir,
                      const uint8_t nd[PEERMSG_NONCE_LEN], const uint8_t na[PEERMSG_NONCE_LEN],
                      uint8_t out[PEERMSG_KEY_LEN]);

/* --- control messages --- */

enum peermsg_type {
    PEERMSG_UNKNOWN = 1, /* a "type" this version does not know: ignored (type_text) */
    PEERMSG_CHALLENGE,   /* acceptor -> dialer, first: nonce */
    PEERMSG_HELLO,       /* dialer -> acceptor: instance, ts, nonce, mac */
    PEERMSG_WELCOME,     /* acceptor -> dialer: instance, ts, nonce, mac */
    PEERMSG_LOOKUP,      /* id, name */
    PEERMSG_LOOKUP_REPLY,
    PEERMSG_CLAIM,
    PEERMSG_CLAIM_REPLY,
};

/* One control message. Fields that a type does not carry are zero. */
struct peermsg {
    enum peermsg_type type;
    char type_text[PEERMSG_TYPE_TEXT]; /* the type as sent; printable ASCII, truncated */
    /* challenge, hello, welcome: a fresh nonce, as sent and decoded (the MAC covers the text) */
    char nonce_text[PEERMSG_NONCE_TEXT];
    uint8_t nonce[PEERMSG_NONCE_LEN];
    /* hello, welcome, claim: the sender's instance id (hello/welcome: 1..63 bytes;
     * claim: 0..63) and its clock in unix milliseconds */
    char instance[PEERMSG_INSTANCE_MAX + 1];
    uint64_t ts;
    uint8_t mac[PEERMSG_MAC_LEN]; /* hello, welcome */
    /* lookup, claim and their replies */
    int64_t id;
    char name[NAME_MAX_LEN + 1]; /* lookup, claim: a name with valid syntax (may be reserved) */
    bool owner;                  /* claim: the client proved the name is its own */
    bool have, reserved;         /* lookup_reply */
    bool ok;                     /* claim_reply */
};

/* Parse the JSON payload of a CTL frame, p[0..len) with len <= FRAME_CTL_MAX.
 * Returns 0 and fills *out; -EINVAL when it is not a JSON object (or too
 * long); -EBADMSG when it is an object without a string "type", or whose
 * fields break the rules of its type (missing, wrong JSON type, too long,
 * a nonce or MAC that is not base64url of the right length, an invalid name).
 * Unknown types parse (PEERMSG_UNKNOWN): newer peers may send them. */
int peermsg_parse(const uint8_t *p, size_t len, struct peermsg *out);

/* The message as compact JSON: malloc'd, NUL-terminated, at most
 * FRAME_CTL_MAX bytes for any message peermsg_parse accepted. NULL for
 * PEERMSG_UNKNOWN or out of memory. */
char *peermsg_encode(const struct peermsg *m);

/* A fresh random nonce and its text. */
void peermsg_nonce_new(uint8_t nonce[PEERMSG_NONCE_LEN], char text[PEERMSG_NONCE_TEXT]);

/* Handshake MACs (hello and welcome only): crypto_auth with the fleet key over
 * "warren-peer-v1|peer_hello|INSTANCE|TS|NONCE|PEER_NONCE" (peer_welcome for a
 * welcome), where PEER_NONCE is the text of the other side's nonce: the
 * challenge's for a hello, the hello's for a welcome. sign writes m->mac;
 * verify returns 0 or -EACCES (constant time). */
void peermsg_auth_sign(struct peermsg *m, const char *peer_nonce_text,
                       const uint8_t key[PEERMSG_KEY_LEN]);
int peermsg_auth_verify(const struct peermsg *m, const char *peer_nonce_text,
                        const uint8_t key[PEERMSG_KEY_LEN]);

#endif
