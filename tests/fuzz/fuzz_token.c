/*
 * fuzz_token: token_verify on untrusted text with a fixed key.
 *
 * Invariants checked with abort(): only the documented errors come back; a
 * success yields a valid name; and since the fuzzer cannot forge a MAC, any
 * accepted input must be a token issued with this key (the corpus holds a few
 * such tokens, so the accepting path is covered too).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "names.h"
#include "token.h"

/* Fixed test key: bytes 0, 1, 2, ... 31. */
static const uint8_t fuzz_key[TOKEN_KEY_LEN] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    char name[64];
    /* Two clocks: before and after the corpus tokens' expiry (2000000000). */
    const uint64_t clocks[] = {1700000000u, 2100000000u};
    for (size_t i = 0; i < 2; i++) {
        memset(name, 0x55, sizeof name);
        int rc = token_verify(fuzz_key, (const char *)data, size, clocks[i], name, sizeof name);
        if (rc == 0) {
            size_t n = strnlen(name, sizeof name);
            if (n == sizeof name || name_validate(name, n) == -EINVAL)
                abort();
        } else if (rc != -EINVAL && rc != -EBADMSG && rc != -ETIMEDOUT) {
            abort();
        }
    }
    /* A too-small output buffer is refused, never overrun. */
    char tiny[2];
    int rc = token_verify(fuzz_key, (const char *)data, size, 0, tiny, sizeof tiny);
    if (rc == 0 && strnlen(tiny, sizeof tiny) >= sizeof tiny)
        abort();
    return 0;
}
