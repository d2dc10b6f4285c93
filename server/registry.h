/*
 * registry: which tunnel names are taken on this edge. A name is held by a
 * live session, or, for the grace period after its session ended, reserved
 * for its owner (who proves ownership with a reconnect token). Lookups are
 * O(1) average; memory is one entry per name.
 */
#ifndef WARREN_SERVER_REGISTRY_H
#define WARREN_SERVER_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

struct session;
struct registry;

struct registry *registry_new(void);
void registry_free(struct registry *r); /* accepts NULL */

/* The live session holding name, or NULL (free, or reserved in grace). */
struct session *registry_find(struct registry *r, const char *name);

/* True when name is held by a live session or reserved (not expired). */
bool registry_taken(struct registry *r, const char *name, uint64_t now_ms);

/* Claim name for s. `owner`: the claimant presented a valid reconnect token
 * for this name. Returns 0, or -EADDRINUSE when the name is live or reserved
 * and the claimant is not its owner, -ENOMEM. When an owner claims a name a
 * live session still holds (it reconnected before the old connection was
 * noticed dead), *displaced gets that session: the caller closes it; the
 * name already belongs to s. */
int registry_claim(struct registry *r, const char *name, struct session *s, bool owner,
                   uint64_t now_ms, struct session **displaced);

/* s ended: keep name reserved until until_ms (now for no grace). Does nothing
 * if name is not held by s (e.g. it was displaced). With s == NULL it shortens
 * a reservation (no live session) to until_ms. */
void registry_release(struct registry *r, const char *name, struct session *s, uint64_t until_ms);

/* Drop reservations that expired. */
void registry_sweep(struct registry *r, uint64_t now_ms);

/* Live sessions / reserved names. */
unsigned registry_live(const struct registry *r);
unsigned registry_reserved(const struct registry *r);

#endif
