/*
 * ipcount: counts per address (see ipcount.h) in a chained hash table.
 *
 * Invariants: every entry in the table has count >= 1 (an entry that drops
 * to 0 is unlinked and freed at once); a key appears at most once; nkeys is
 * the number of entries and never exceeds max_keys. The bucket array is
 * sized once, from max_keys, so a table never rehashes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ipcount.h"

struct entry {
    struct entry *next;
    struct ipkey k;
    unsigned count;
};

struct ipcount {
    size_t max_keys, nkeys, mask;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    struct entry **bucket; /* mask + 1 chains */
};

ipcount *ipcount_new(size_t max_keys)
{
    if (max_keys < 1 || max_keys > (1u << 24)) {
        errno = EINVAL;
        return NULL;
    }
    size_t n = 64; /* about one entry per chain when full, at most 2^16 chains */
    while (n < max_keys && n < (1u << 16))
        n <<= 1;
    ipcount *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->bucket = calloc(n, sizeof *c->bucket);
    if (!c->bucket) {
        free(c);
        return NULL;
    }
    c->max_keys = max_keys;
    c->mask = n - 1;
    randombytes_buf(c->hash_key, sizeof c->hash_key);
    return c;
}

void ipcount_free(ipcount *c)
{
    if (!c)
        return;
    for (size_t i = 0; i <= c->mask; i++) {
        struct entry *e = c->bucket[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(c->bucket);
    free(c);
}

static struct entry **chain(const ipcount *c, const struct ipkey *k)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, k->b, IPKEY_LEN, c->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return &c->bucket[(size_t)v & c->mask];
}

int ipcount_add(ipcount *c, const struct ipkey *k)
{
    struct entry **head = chain(c, k);
    for (struct entry *e = *head; e; e = e->next) {
        if (ipkey_equal(&e->k, k)) {
            if (e->count == INT32_MAX)
                return -ENOSPC;
            return (int)++e->count;
        }
    }
    if (c->nkeys >= c->max_keys)
        return -ENOSPC;
    struct entry *e = malloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    e->k = *k;
    e->count = 1;
    e->next = *head;
    *head = e;
    c->nkeys++;
    return 1;
}

void ipcount_remove(ipcount *c, const struct ipkey *k)
{
    for (struct entry **pp = chain(c, k); *pp; pp = &(*pp)->next) {
        struct entry *e = *pp;
        if (!ipkey_equal(&e->k, k))
            continue;
        if (--e->count == 0) {
            *pp = e->next;
            free(e);
            c->nkeys--;
        }
        return;
    }
}

unsigned ipcount_get(const ipcount *c, const struct ipkey *k)
{
    for (const struct entry *e = *chain(c, k); e; e = e->next)
        if (ipkey_equal(&e->k, k))
            return e->count;
    return 0;
}

size_t ipcount_keys(const ipcount *c)
{
    return c->nkeys;
}
