/*
 * auth: the open policy, the keys-file policy (common/keys), and the small
 * vtable that lets other stores plug in.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "keys.h"
#include "log.h"

struct auth {
    const struct auth_ops *ops;
    void *impl;
};

struct keys_impl {
    char *path;
    keyset *set;
};

static int keys_check(void *impl, const char *key, size_t len)
{
    struct keys_impl *k = impl;
    return keyset_check(k->set, key, len);
}

static int keys_reload(void *impl)
{
    struct keys_impl *k = impl;
    unsigned line = 0;
    keyset *n = keyset_load(k->path, &line);
    if (!n) {
        int err = errno;
        if (line)
            log_warnx("keys file %s: line %u is not \"<id> <hash> [label]\"; keeping the old keys",
                      k->path, line);
        else
            log_warnx("keys file %s: %s; keeping the old keys", k->path, strerror(err));
        return -err;
    }
    keyset_free(k->set);
    k->set = n;
    log_info("keys file %s: %zu keys", k->path, keyset_count(n));
    return 0;
}

static void keys_free(void *impl)
{
    struct keys_impl *k = impl;
    keyset_free(k->set);
    free(k->path);
    free(k);
}

static const struct auth_ops keys_ops = {"keys-file", keys_check, keys_reload, keys_free};
static const struct auth_ops open_ops = {"open", NULL, NULL, NULL};

struct auth *auth_new(const struct auth_ops *ops, void *impl)
{
    struct auth *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->ops = ops;
    a->impl = impl;
    return a;
}

struct auth *auth_new_open(void)
{
    return auth_new(&open_ops, NULL);
}

struct auth *auth_new_keys_file(const char *path)
{
    unsigned line = 0;
    keyset *set = keyset_load(path, &line);
    if (!set) {
        if (line)
            fprintf(stderr,
                    "tunneld: --keys %s: line %u is not \"<id> <hash> [label]\" (make keys with "
                    "`tunneld keys add %s`)\n",
                    path, line, path);
        else
            fprintf(stderr, "tunneld: --keys %s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct keys_impl *k = calloc(1, sizeof *k);
    if (k)
        k->path = strdup(path);
    struct auth *a = k && k->path ? auth_new(&keys_ops, k) : NULL;
    if (!a) {
        keyset_free(set);
        if (k)
            free(k->path);
        free(k);
        return NULL;
    }
    k->set = set;
    return a;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    if (a->ops->free)
        a->ops->free(a->impl);
    free(a);
}

bool auth_required(const struct auth *a)
{
    return a->ops->check != NULL;
}

int auth_check(struct auth *a, const char *key, size_t len)
{
    if (!a->ops->check)
        return 0;
    return a->ops->check(a->impl, key, len);
}

int auth_reload(struct auth *a)
{
    return a->ops->reload ? a->ops->reload(a->impl) : 0;
}

const char *auth_name(const struct auth *a)
{
    return a->ops->name;
}
