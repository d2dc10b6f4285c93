/*
 * fuzz_peer_record: the record layer of peer links (peermsg_record_take,
 * peermsg_seal) on untrusted bytes, the way peerlink.c reads them.
 *
 * The first byte picks a mode, the rest is the input:
 *  0  plain stream (the handshake): records are taken one after another
 *     until one is incomplete or refused;
 *  1  sealed stream with a fixed key: the same walk with the counter; the
 *     corpus holds records sealed with that key so the accepting path runs;
 *  2  round trip: the input is cut into pieces (u16 length each); every piece
 *     that decodes as a frame is sealed with the fixed key into a stream,
 *     then the stream is read back, then read again with one bit flipped.
 * Invariants checked with abort(): only the documented results come back; a
 * taken record lies inside the buffer, holds a frame that decodes again the
 * same, and was undecided one byte earlier; the counter advances exactly
 * with each authenticated record; an accepted sealed record is exactly what
 * sealing its plaintext with the same key and counter gives (acceptance
 * implies authenticity); the round trip returns every frame in order; any
 * flipped bit makes the stream fail at or before the record it hit.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peermsg.h"

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* Fixed test key: bytes 0, 1, 2, ... 31 (the corpus records use it). */
static const uint8_t fuzz_key[PEERMSG_KEY_LEN] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

static bool result_ok(long r)
{
    return r >= 0 || r == -EMSGSIZE || r == -EBADMSG || r == -EINVAL;
}

/* The frame decoded from a taken record must be where the record says. */
static void check_frame(const uint8_t *rec, long r, const struct frame *f, size_t flen, bool sealed)
{
    REQUIRE(r >= FRAME_LEN_PREFIX + FRAME_HDR_LEN);
    REQUIRE(flen >= FRAME_HDR_LEN && flen <= FRAME_MAX_LEN);
    REQUIRE((size_t)r == FRAME_LEN_PREFIX + flen + (sealed ? PEERMSG_SEAL_TAG : 0));
    const uint8_t *frame = rec + FRAME_LEN_PREFIX;
    REQUIRE(f->payload == frame + FRAME_HDR_LEN && f->len == flen - FRAME_HDR_LEN);
    struct frame g;
    REQUIRE(frame_decode(frame, flen, &g) == 0);
    REQUIRE(g.type == f->type && g.stream == f->stream && g.len == f->len);
}

static void walk(const uint8_t *data, size_t size, bool sealed)
{
    uint8_t *buf = malloc(size ? size : 1), *orig = malloc(size ? size : 1);
    REQUIRE(buf && orig);
    memcpy(buf, data, size);
    memcpy(orig, data, size);
    uint64_t seq = 0;
    size_t off = 0;
    for (;;) {
        struct frame f;
        size_t flen = 0;
        uint64_t before = seq;
        long r =
            peermsg_record_take(buf + off, size - off, sealed ? fuzz_key : NULL, &seq, &f, &flen);
        REQUIRE(result_ok(r));
        REQUIRE(seq == before + (sealed && (r > 0 || r == -EINVAL) ? 1 : 0));
        if (r <= 0)
            break;
        REQUIRE((size_t)r <= size - off);
        check_frame(buf + off, r, &f, flen, sealed);
        /* one byte less: not decided yet (the plain walk only; the sealed one
         * opened the record in place) */
        if (!sealed) {
            uint64_t s2 = 0;
            struct frame g;
            size_t glen;
            REQUIRE(peermsg_record_take(buf + off, (size_t)r - 1, NULL, &s2, &g, &glen) == 0);
        } else {
            /* acceptance implies authenticity: sealing the plaintext again with
             * the same counter reproduces the bytes that were accepted */
            uint8_t *again = malloc(flen + PEERMSG_SEAL_TAG);
            REQUIRE(again);
            memcpy(again, buf + off + FRAME_LEN_PREFIX, flen);
            uint64_t s2 = before;
            size_t clen = peermsg_seal(again, flen, fuzz_key, &s2);
            REQUIRE(clen == flen + PEERMSG_SEAL_TAG && s2 == before + 1);
            REQUIRE(memcmp(again, orig + off + FRAME_LEN_PREFIX, clen) == 0);
            free(again);
        }
        off += (size_t)r;
    }
    free(buf);
    free(orig);
}

static void round_trip(const uint8_t *data, size_t size)
{
    /* every piece costs 2 input bytes and grows by a prefix and a tag */
    size_t cap = size + (size / 2 + 1) * (FRAME_LEN_PREFIX + PEERMSG_SEAL_TAG);
    uint8_t *stream = malloc(cap), *copy = malloc(cap);
    size_t *starts = malloc(sizeof *starts * 4096);
    const uint8_t **frames = malloc(sizeof *frames * 4096);
    size_t *lens = malloc(sizeof *lens * 4096);
    REQUIRE(stream && copy && starts && frames && lens);
    size_t len = 0, n = 0, off = 0;
    while (off + 2 <= size && n < 4096) {
        size_t want = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (want > size - off)
            want = size - off;
        const uint8_t *piece = data + off;
        off += want;
        struct frame f;
        if (frame_decode(piece, want, &f) < 0 ||
            len + FRAME_LEN_PREFIX + want + PEERMSG_SEAL_TAG > cap)
            continue;
        starts[n] = len;
        frames[n] = piece;
        lens[n] = want;
        memcpy(stream + len + FRAME_LEN_PREFIX, piece, want);
        uint64_t seq = n;
        size_t clen = peermsg_seal(stream + len + FRAME_LEN_PREFIX, want, fuzz_key, &seq);
        REQUIRE(clen == want + PEERMSG_SEAL_TAG && seq == n + 1);
        frame_put_prefix(stream + len, clen);
        len += FRAME_LEN_PREFIX + clen;
        n++;
    }
    memcpy(copy, stream, len);

    uint64_t seq = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        struct frame f;
        size_t flen = 0;
        long r = peermsg_record_take(stream + at, len - at, fuzz_key, &seq, &f, &flen);
        REQUIRE(r > 0 && (size_t)r == FRAME_LEN_PREFIX + lens[i] + PEERMSG_SEAL_TAG);
        REQUIRE(flen == lens[i] && memcmp(stream + at + FRAME_LEN_PREFIX, frames[i], flen) == 0);
        REQUIRE(seq == i + 1);
        at += (size_t)r;
    }
    REQUIRE(at == len);
    uint64_t s = seq;
    struct frame f;
    size_t flen;
    REQUIRE(peermsg_record_take(stream + at, 0, fuzz_key, &s, &f, &flen) == 0);

    if (len > 0 && size > 0) {
        /* flip one bit, chosen by the input, and read again */
        size_t pos = (size_t)(data[size - 1] * 2654435761u + size) % len;
        memcpy(stream, copy, len);
        stream[pos] ^= (uint8_t)(1u << (data[0] & 7));
        size_t hit = 0;
        while (hit + 1 < n && starts[hit + 1] <= pos)
            hit++;
        seq = 0;
        at = 0;
        long r = 1;
        for (size_t i = 0; i < n && r > 0; i++) {
            r = peermsg_record_take(stream + at, len - at, fuzz_key, &seq, &f, &flen);
            REQUIRE(result_ok(r));
            if (r > 0) {
                REQUIRE(i < hit); /* no record at or after the damage is accepted */
                at += (size_t)r;
            }
        }
        REQUIRE(r <= 0);
    }
    free(stream);
    free(copy);
    free(starts);
    free(frames);
    free(lens);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        walk(data + 1, size - 1, false);
        break;
    case 1:
        walk(data + 1, size - 1, true);
        break;
    default:
        round_trip(data + 1, size - 1);
        break;
    }
    return 0;
}
