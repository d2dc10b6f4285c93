/*
 * token: signed, expiring reconnect tokens (docs/protocol.md, "Reconnect").
 *
 * A reconnect token proves that its holder owned a name: the edge issues one
 * in WELCOME and the CLI presents it in HELLO after a disconnect to get the
 * same name back during the grace period, also from an edge restarted with the
 * same secret. Format: base64url (no padding) of
 *   u8 version (1) | u64 expiry (unix seconds, BE) | u8 n | n bytes name |
 *   16 bytes random nonce | 32 bytes crypto_auth (HMAC-SHA512-256) over all before it.
 * Tokens never appear in logs.
 */
#ifndef WARREN_TOKEN_H
#define WARREN_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_KEY_LEN 32
#define TOKEN_MAX_LEN 200 /* text length bound, including NUL */

/* Issue a token for `name` valid until `expiry` (unix seconds). Writes the
 * NUL-terminated text into out. Returns 0, -EINVAL (bad name), -ENOSPC (cap). */
int token_issue(const uint8_t key[TOKEN_KEY_LEN], const char *name, uint64_t expiry, char *out,
                size_t cap);

/* Verify token text tok[0..len) at time `now`. On success writes the name
 * (NUL-terminated) into name_out (cap >= 64) and returns 0. Errors: -EINVAL
 * (not a token: bad base64, wrong length or version), -EBADMSG (MAC mismatch:
 * another secret or tampered), -ETIMEDOUT (expired). Constant-time MAC check. */
int token_verify(const uint8_t key[TOKEN_KEY_LEN], const char *tok, size_t len, uint64_t now,
                 char *name_out, size_t cap);

#endif
