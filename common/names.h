/*
 * names: tunnel names (docs/protocol.md, "Names").
 *
 * A name is one DNS label: lowercase [a-z0-9-], 1..63 characters, neither
 * starting nor ending with '-'. Some names are reserved (www, api, admin, ...).
 * Random names are pronounceable ("bexomu-tadira") plus entropy enough that a
 * collision is rare; the caller still checks and retries.
 */
#ifndef WARREN_NAMES_H
#define WARREN_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_MAX_LEN 63

/* 0 when p[0..len) is a valid name, -EINVAL when its syntax is wrong (upper
 * case is wrong too: the caller lowercases user input first if it wants),
 * -EPERM when it is reserved. */
int name_validate(const char *p, size_t len);

/* True if the (valid) name is on the reserved list. */
bool name_is_reserved(const char *p, size_t len);

/* A human-readable reason for a name_validate() failure on p[0..len), e.g.
 * "name \"My_App\" may only contain a-z, 0-9 and '-'". Writes a NUL-terminated
 * message into out (truncated to cap). */
void name_explain(const char *p, size_t len, char *out, size_t cap);

/* Write a random pronounceable valid non-reserved name (NUL-terminated, at
 * most 20 characters) into out; cap must be >= 21. Uses randombytes_buf. */
void name_random(char *out, size_t cap);

#endif
