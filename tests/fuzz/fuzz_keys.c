/*
 * fuzz_keys: keyset_parse on untrusted file contents, then keyset_check on
 * a few keys (well-formed and not). Invariants checked with abort(): a parse
 * failure names a line inside the input, a keyset never accepts a key whose
 * hash it does not hold (the fuzzer cannot produce BLAKE2b preimages), and
 * all memory is freed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "keys.h"

/* Keys whose lines appear in the corpus (id 0000000a and 0123abcd), so the
 * accepting path is reached, plus malformed ones. */
static const char *const probes[] = {
    "wk_0000000a_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "wk_0123abcd_R2FyZGVuIG9mIGZvcmtpbmcgcGF0aHMgYW5kIGtleXM",
    "wk_0000000a_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
    "wk_0000000b_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "wk_0000000a",
    "",
};

static unsigned count_lines(const uint8_t *p, size_t len)
{
    unsigned n = len ? 1 : 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '\n' && i + 1 < len)
            n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        ready = 1;
    }
    unsigned err_line = 0;
    keyset *k = keyset_parse((const char *)data, size, &err_line);
    if (!k) {
        if (err_line == 0 || err_line > count_lines(data, size))
            abort(); /* out of memory is not expected at these sizes */
        return 0;
    }
    if (keyset_count(k) > count_lines(data, size))
        abort();
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        int rc = keyset_check(k, probes[i], strlen(probes[i]));
        if (rc != 0 && rc != -EACCES)
            abort();
        if (rc == 0 && strlen(probes[i]) != KEY_TEXT_LEN)
            abort();
    }
    /* The raw input as a key: accepted only if it hashes to a listed line,
     * which the fuzzer cannot arrange unless it is one of the probes. */
    if (keyset_check(k, (const char *)data, size) == 0) {
        int known = 0;
        for (size_t i = 0; i < 2; i++)
            if (size == KEY_TEXT_LEN && memcmp(data, probes[i], size) == 0)
                known = 1;
        if (!known)
            abort();
    }
    keyset_free(k);
    return 0;
}
