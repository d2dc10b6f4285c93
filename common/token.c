/*
 * token: issue and verify reconnect tokens.
 *
 * Why: after a disconnect the CLI must get its name back during the grace
 * period, from any edge of the fleet (or a restarted one), without shared
 * state: the token carries the name and expiry, authenticated with the
 * fleet's token key.
 *
 * Invariants: the MAC is checked (in constant time) before anything inside
 * the token is trusted apart from its length and version; the expiry is only
 * looked at once the MAC is good, so "expired" is never said about a forgery;
 * a token is valid while now < expiry; outputs are written only on success;
 * no token text is ever logged here.
 * The binary token is at most 1+8+1+63+16+32 = 121 bytes (162 characters).
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "names.h"
#include "token.h"

#define TOKEN_VERSION 1
#define TOKEN_NONCE_LEN 16
#define TOKEN_FIXED_LEN (1 + 8 + 1 + TOKEN_NONCE_LEN + crypto_auth_BYTES)
#define TOKEN_BIN_MAX (TOKEN_FIXED_LEN + NAME_MAX_LEN)

static int name_syntax_ok(const char *p, size_t n)
{
    /* Reserved names may be held (assigned by an operator): syntax only. */
    return name_validate(p, n) != -EINVAL;
}

int token_issue(const uint8_t key[TOKEN_KEY_LEN], const char *name, uint64_t expiry, char *out,
                size_t cap)
{
    size_t n = strnlen(name, NAME_MAX_LEN + 1);
    if (!name_syntax_ok(name, n))
        return -EINVAL;

    uint8_t bin[TOKEN_BIN_MAX];
    size_t o = 0;
    bin[o++] = TOKEN_VERSION;
    for (int i = 7; i >= 0; i--)
        bin[o++] = (uint8_t)(expiry >> (8 * i));
    bin[o++] = (uint8_t)n;
    memcpy(bin + o, name, n);
    o += n;
    randombytes_buf(bin + o, TOKEN_NONCE_LEN);
    o += TOKEN_NONCE_LEN;
    crypto_auth(bin + o, bin, o, key);
    o += crypto_auth_BYTES;

    size_t need = sodium_base64_ENCODED_LEN(o, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (cap < need) {
        sodium_memzero(bin, sizeof bin);
        return -ENOSPC;
    }
    sodium_bin2base64(out, cap, bin, o, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(bin, sizeof bin);
    return 0;
}

int token_verify(const uint8_t key[TOKEN_KEY_LEN], const char *tok, size_t len, uint64_t now,
                 char *name_out, size_t cap)
{
    uint8_t bin[TOKEN_BIN_MAX];
    size_t bin_len = 0;

    if (len == 0 || len >= TOKEN_MAX_LEN)
        return -EINVAL;
    if (sodium_base642bin(bin, sizeof bin, tok, len, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -EINVAL;
    if (bin_len < TOKEN_FIXED_LEN + 1 || bin[0] != TOKEN_VERSION)
        return -EINVAL;
    size_t n = bin[9];
    if (n == 0 || n > NAME_MAX_LEN || bin_len != TOKEN_FIXED_LEN + n)
        return -EINVAL;

    size_t signed_len = bin_len - crypto_auth_BYTES;
    if (crypto_auth_verify(bin + signed_len, bin, signed_len, key) != 0)
        return -EBADMSG;

    uint64_t expiry = 0;
    for (int i = 1; i <= 8; i++)
        expiry = expiry << 8 | bin[i];
    if (now >= expiry)
        return -ETIMEDOUT;

    const char *name = (const char *)bin + 10;
    if (!name_syntax_ok(name, n))
        return -EINVAL;
    if (cap <= n)
        return -ENOSPC;
    memcpy(name_out, name, n);
    name_out[n] = '\0';
    return 0;
}
