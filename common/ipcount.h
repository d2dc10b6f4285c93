/*
 * ipcount: how many of something each client address holds (tunnels per
 * address), in a hash table bounded by a number of distinct addresses. An
 * address is forgotten when its count returns to 0.
 */
#ifndef WARREN_IPCOUNT_H
#define WARREN_IPCOUNT_H

#include <stddef.h>

#include "ipkey.h"

typedef struct ipcount ipcount;

/* A table for at most max_keys distinct addresses (1 .. 2^24). NULL on bad
 * arguments (errno EINVAL) or ENOMEM. The hash is keyed with a random key
 * (libsodium must be initialised). */
ipcount *ipcount_new(size_t max_keys);
void ipcount_free(ipcount *c);

/* Count one more for k. Returns the new count (>= 1), -ENOSPC when k is new
 * and max_keys addresses are already counted, or -ENOMEM. */
int ipcount_add(ipcount *c, const struct ipkey *k);
/* Count one less for k; at 0 the address is forgotten. A key that is not
 * counted is ignored. */
void ipcount_remove(ipcount *c, const struct ipkey *k);
/* The count of k (0 if not counted). */
unsigned ipcount_get(const ipcount *c, const struct ipkey *k);
/* Addresses with a count above 0. */
size_t ipcount_keys(const ipcount *c);

#endif
