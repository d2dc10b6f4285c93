/*
 * quota: the edge's limits against flooding clients (see quota.h).
 *
 * Why a module: the numbers (total connections, handshakes per second per
 * address, tunnels per address) are checked in three places (listener,
 * visitor, session) and reported in one (admin); keeping their state here
 * keeps those modules to one call each.
 *
 * Invariants: tables are sized once, at start: the handshake buckets to
 * HS_SLOTS addresses (least recently seen forgotten first, see ratelimit.h)
 * and the tunnel counts to as many addresses as the edge may have tunnels; a
 * tunnel count is taken at most once per session and given back when it ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipcount.h"
#include "quota.h"
#include "ratelimit.h"

#define HS_SLOTS 16384     /* addresses whose handshake buckets are remembered */
#define NOFILE_RESERVE 256 /* fds kept for listeners, peers, DNS, admin, local files */

struct quota {
    const struct config *cfg;
    unsigned max_connections;
    ratelimit *hs; /* NULL: --handshake-rate 0 */
    ipcount *tunnels;
    uint64_t warned_at[QUOTA_WARN_N];
    struct quota_stats stats;
};

struct quota *quota_new(const struct config *c, unsigned long nofile)
{
    struct quota *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->cfg = c;
    if (c->max_connections) {
        l->max_connections = c->max_connections;
    } else {
        unsigned long n = nofile > 2 * NOFILE_RESERVE ? nofile - NOFILE_RESERVE : nofile / 2;
        l->max_connections = n > 10000000 ? 10000000 : n < 1 ? 1 : (unsigned)n;
    }
    if (c->handshake_rate) {
        l->hs = ratelimit_new(c->handshake_rate, c->handshake_burst, HS_SLOTS);
        if (!l->hs)
            goto fail;
    }
    l->tunnels = ipcount_new(c->max_tunnels);
    if (!l->tunnels)
        goto fail;
    return l;
fail:
    quota_free(l);
    return NULL;
}

void quota_free(struct quota *l)
{
    if (!l)
        return;
    ratelimit_free(l->hs);
    ipcount_free(l->tunnels);
    free(l);
}

struct quota_stats *quota_stats(struct quota *l)
{
    return &l->stats;
}

unsigned quota_max_connections(const struct quota *l)
{
    return l->max_connections;
}

unsigned quota_handshake(struct quota *l, const struct ipkey *k, uint64_t now_ms)
{
    if (!l->hs)
        return 0;
    uint32_t wait_ms = ratelimit_take(l->hs, k, now_ms);
    if (!wait_ms)
        return 0;
    l->stats.handshakes_limited++;
    return (wait_ms + 999) / 1000;
}

int quota_tunnel_add(struct quota *l, const struct ipkey *k, bool replacing)
{
    unsigned have = ipcount_get(l->tunnels, k);
    if (have >= l->cfg->max_tunnels_per_ip + (replacing ? 1u : 0u)) {
        l->stats.tunnels_refused++;
        return -EDQUOT;
    }
    int r = ipcount_add(l->tunnels, k);
    return r < 0 ? r : 0;
}

void quota_tunnel_remove(struct quota *l, const struct ipkey *k)
{
    ipcount_remove(l->tunnels, k);
}

unsigned quota_tunnels_of(const struct quota *l, const struct ipkey *k)
{
    return ipcount_get(l->tunnels, k);
}

bool quota_warn_due(struct quota *l, enum quota_warn what, uint64_t now_ms, uint64_t every_ms)
{
    if (l->warned_at[what] && now_ms - l->warned_at[what] < every_ms)
        return false;
    l->warned_at[what] = now_ms;
    return true;
}
