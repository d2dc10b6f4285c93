/*
 * auth: who may open a tunnel. One small interface so that the keys file of
 * today and the master role's token store of later plug in the same way:
 * the session asks auth_check() with the key from HELLO and gets yes or no.
 */
#ifndef WARREN_SERVER_AUTH_H
#define WARREN_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct auth_ops {
    const char *name;                                      /* "keys-file", "open" */
    int (*check)(void *impl, const char *key, size_t len); /* 0 or -EACCES */
    int (*reload)(void *impl);                             /* 0 or -errno; may be NULL */
    void (*free)(void *impl);
};

struct auth;

/* Anonymous: every HELLO is accepted. */
struct auth *auth_new_open(void);
/* Keys file: HELLO must carry a key whose hash is in the file. NULL after
 * printing why (file missing, line N malformed). */
struct auth *auth_new_keys_file(const char *path);
/* A custom implementation (the master role). */
struct auth *auth_new(const struct auth_ops *ops, void *impl);
void auth_free(struct auth *a);

bool auth_required(const struct auth *a);
int auth_check(struct auth *a, const char *key, size_t len);
int auth_reload(struct auth *a);
const char *auth_name(const struct auth *a);

#endif
