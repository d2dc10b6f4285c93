/*
 * registry: chained hash table of names (BLAKE2b-free: a simple FNV-1a hash is
 * enough here because names are validated labels and the table grows with the
 * load; an attacker choosing names only lengthens its own chains moderately).
 * Invariant: an entry has session != NULL (live) or hold_until > 0 (reserved).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "registry.h"

struct entry {
    struct entry *next;
    struct session *session;
    uint64_t hold_until;
    char name[NAME_MAX_LEN + 1];
};

struct registry {
    struct entry **b;
    size_t nb, n;
    unsigned live;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

struct registry *registry_new(void)
{
    struct registry *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->nb = 64;
    r->b = calloc(r->nb, sizeof *r->b);
    if (!r->b) {
        free(r);
        return NULL;
    }
    return r;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nb; i++) {
        struct entry *e = r->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(r->b);
    free(r);
}

static struct entry **slot(struct registry *r, const char *name)
{
    struct entry **pp = &r->b[hash(name) & (r->nb - 1)];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void grow(struct registry *r)
{
    size_t nb = r->nb * 2;
    struct entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < r->nb; i++) {
        struct entry *e = r->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            struct entry **head = &b[hash(e->name) & (nb - 1)];
            e->next = *head;
            *head = e;
        }
    }
    free(r->b);
    r->b = b;
    r->nb = nb;
}

struct session *registry_find(struct registry *r, const char *name)
{
    struct entry *e = *slot(r, name);
    return e ? e->session : NULL;
}

bool registry_taken(struct registry *r, const char *name, uint64_t now_ms)
{
    struct entry *e = *slot(r, name);
    return e && (e->session || e->hold_until > now_ms);
}

int registry_claim(struct registry *r, const char *name, struct session *s, bool owner,
                   uint64_t now_ms, struct session **displaced)
{
    *displaced = NULL;
    if (strlen(name) > NAME_MAX_LEN)
        return -EINVAL;
    struct entry **pp = slot(r, name);
    struct entry *e = *pp;
    if (e) {
        bool held = e->session || e->hold_until > now_ms;
        if (held && !owner)
            return -EADDRINUSE;
        if (e->session)
            *displaced = e->session;
        else
            r->live++;
        e->session = s;
        e->hold_until = 0;
        return 0;
    }
    e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    memcpy(e->name, name, strlen(name) + 1);
    e->session = s;
    *pp = e;
    r->n++;
    r->live++;
    if (r->n > r->nb)
        grow(r);
    return 0;
}

void registry_release(struct registry *r, const char *name, struct session *s, uint64_t until_ms)
{
    struct entry **pp = slot(r, name);
    struct entry *e = *pp;
    if (!e || e->session != s)
        return;
    if (e->session)
        r->live--;
    e->session = NULL;
    e->hold_until = until_ms;
}

void registry_sweep(struct registry *r, uint64_t now_ms)
{
    for (size_t i = 0; i < r->nb; i++) {
        struct entry **pp = &r->b[i];
        while (*pp) {
            struct entry *e = *pp;
            if (!e->session && e->hold_until <= now_ms) {
                *pp = e->next;
                free(e);
                r->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

unsigned registry_live(const struct registry *r)
{
    return r->live;
}

unsigned registry_reserved(const struct registry *r)
{
    return (unsigned)(r->n - r->live);
}
