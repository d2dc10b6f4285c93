/*
 * keys: the tunnel auth keys file (`tunneld --keys FILE`).
 *
 * A key looks like `wk_<id>_<secret>`: <id> is 8 lowercase hex characters
 * (public, used to find the line), <secret> is 32 random bytes in base64url
 * without padding (43 characters). The file holds one line per key:
 *   <id> <hex BLAKE2b-256 of the whole key text> [label...]
 * plus blank lines and '#' comments. Only hashes are stored. Keys are 256-bit
 * random, so a fast keyed-free hash is enough (no password stretching needed,
 * and a slow hash per handshake would be a denial-of-service lever).
 */
#ifndef WARREN_KEYS_H
#define WARREN_KEYS_H

#include <stddef.h>

#define KEY_TEXT_LEN 55 /* "wk_" + 8 + "_" + 43 */

typedef struct keyset keyset;

/* Parse a keys file's contents p[0..len). Returns a keyset or NULL; on NULL,
 * *err_line gets the 1-based line number of the first bad line (0 for out of
 * memory). Duplicate ids are an error. */
keyset *keyset_parse(const char *p, size_t len, unsigned *err_line);
/* Load and parse a file. NULL on error with errno set (EINVAL: *err_line says where). */
keyset *keyset_load(const char *path, unsigned *err_line);
void keyset_free(keyset *k);
size_t keyset_count(const keyset *k);

/* 0 when key[0..len) is in the set; -EACCES otherwise (also for malformed
 * keys). Constant time in the secret. */
int keyset_check(const keyset *k, const char *key, size_t len);

/* Make a new random key (out: cap >= KEY_TEXT_LEN + 1) and the file line for it
 * (line: cap >= 128, ends with '\n', label appended if not NULL). Returns 0. */
int keys_generate(char *out, size_t cap, char *line, size_t line_cap, const char *label);

#endif
