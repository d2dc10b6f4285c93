/*
 * ratelimit: a token bucket per client address in a table of fixed size, for
 * "at most R per second, bursts of B" limits (WebSocket handshakes per
 * address). Memory is the table, whatever the number of addresses seen.
 */
#ifndef WARREN_RATELIMIT_H
#define WARREN_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "ipkey.h"

#define RATELIMIT_MAX 1000000u /* largest rate and burst */
#define RATELIMIT_PROBE 8      /* slots looked at per key */

typedef struct ratelimit ratelimit;

/* A table of `slots` buckets (rounded up to a power of two, 8 .. 2^20), each
 * refilled at `rate` tokens per second up to `burst` (both 1 ..
 * RATELIMIT_MAX). NULL on bad arguments (errno EINVAL) or ENOMEM. The hash is
 * keyed with a random key per table (libsodium must be initialised), so which
 * addresses share a probe window cannot be predicted from outside. */
ratelimit *ratelimit_new(uint32_t rate, uint32_t burst, size_t slots);
void ratelimit_free(ratelimit *rl);

/* Take one token from k's bucket at now_ms (a monotonic clock that never goes
 * back). Returns 0 when a token was there (the caller may proceed), else the
 * milliseconds until the next token (>= 1); nothing is taken then.
 *
 * A key not in the table gets a full bucket in a slot of its probe window:
 * a free one, else one whose bucket has refilled (forgetting it changes
 * nothing), else the one used longest ago, which is then forgotten. So when
 * more addresses than slots are being limited at once, the least recently
 * seen ones start again with a full bucket: the table never grows. */
uint32_t ratelimit_take(ratelimit *rl, const struct ipkey *k, uint64_t now_ms);

/* Buckets not full at now_ms: the addresses currently being held back or
 * recently active. For tests and metrics. */
size_t ratelimit_active(const ratelimit *rl, uint64_t now_ms);

#endif
