/*
 * ratelimit: token buckets per address in an open-addressed table (see
 * ratelimit.h).
 *
 * Invariants: the table never grows after ratelimit_new; a key lives in one
 * of the RATELIMIT_PROBE slots after its hash, at most once; a bucket holds
 * tokens in thousandths, 0 .. burst * 1000, and is brought up to date (refill
 * for the time since `last_ms`) before it is read. A slot whose bucket is full
 * carries no information and may be given to another key.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ratelimit.h"

struct slot {
    struct ipkey k;
    uint64_t last_ms; /* when `milli` was last brought up to date */
    uint32_t milli;   /* tokens * 1000 */
    bool used;
};

struct ratelimit {
    uint32_t rate; /* tokens per second == thousandths per millisecond */
    uint32_t cap;  /* burst * 1000 */
    size_t mask;   /* slots - 1 */
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    struct slot *slot; /* mask + 1 entries */
};

ratelimit *ratelimit_new(uint32_t rate, uint32_t burst, size_t slots)
{
    if (rate < 1 || rate > RATELIMIT_MAX || burst < 1 || burst > RATELIMIT_MAX || slots < 1 ||
        slots > (1u << 20)) {
        errno = EINVAL;
        return NULL;
    }
    size_t n = 8;
    while (n < slots)
        n <<= 1;
    ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return NULL;
    rl->slot = calloc(n, sizeof *rl->slot);
    if (!rl->slot) {
        free(rl);
        return NULL;
    }
    rl->rate = rate;
    rl->cap = burst * 1000u;
    rl->mask = n - 1;
    randombytes_buf(rl->hash_key, sizeof rl->hash_key);
    return rl;
}

void ratelimit_free(ratelimit *rl)
{
    if (!rl)
        return;
    free(rl->slot);
    free(rl);
}

/* The bucket's tokens (thousandths) at now_ms, without changing it. */
static uint32_t level(const ratelimit *rl, const struct slot *s, uint64_t now_ms)
{
    if (now_ms <= s->last_ms)
        return s->milli;
    uint64_t dt = now_ms - s->last_ms;
    if (dt >= rl->cap) /* rate >= 1: a full refill at most, no overflow below */
        return rl->cap;
    uint64_t v = s->milli + dt * rl->rate;
    return v >= rl->cap ? rl->cap : (uint32_t)v;
}

static size_t home(const ratelimit *rl, const struct ipkey *k)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, k->b, IPKEY_LEN, rl->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return (size_t)v & rl->mask;
}

/* k's slot, or a slot given to k with a full bucket. */
static struct slot *find(ratelimit *rl, const struct ipkey *k, uint64_t now_ms)
{
    size_t h = home(rl, k);
    struct slot *victim = NULL;
    int victim_rank = 0; /* 3 free, 2 full bucket, 1 oldest */
    for (size_t i = 0; i < RATELIMIT_PROBE; i++) {
        struct slot *s = &rl->slot[(h + i) & rl->mask];
        if (s->used && ipkey_equal(&s->k, k))
            return s;
        int rank = !s->used ? 3 : level(rl, s, now_ms) >= rl->cap ? 2 : 1;
        if (rank > victim_rank || (rank == 1 && victim_rank == 1 && s->last_ms < victim->last_ms)) {
            victim = s;
            victim_rank = rank;
        }
    }
    victim->k = *k;
    victim->used = true;
    victim->milli = rl->cap;
    victim->last_ms = now_ms;
    return victim;
}

uint32_t ratelimit_take(ratelimit *rl, const struct ipkey *k, uint64_t now_ms)
{
    struct slot *s = find(rl, k, now_ms);
    s->milli = level(rl, s, now_ms);
    if (now_ms > s->last_ms)
        s->last_ms = now_ms;
    if (s->milli >= 1000) {
        s->milli -= 1000;
        return 0;
    }
    uint32_t need = 1000 - s->milli;
    return (need + rl->rate - 1) / rl->rate;
}

size_t ratelimit_active(const ratelimit *rl, uint64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; i <= rl->mask; i++)
        if (rl->slot[i].used && level(rl, &rl->slot[i], now_ms) < rl->cap)
            n++;
    return n;
}
