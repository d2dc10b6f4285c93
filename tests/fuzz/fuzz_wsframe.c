/*
 * fuzz_wsframe: the CLI's WebSocket parser and handshake check on untrusted
 * bytes (what a server, or anything pretending to be one, sends).
 *
 * The first byte chooses the direction (masked or not) and a split point.
 * Invariants checked with abort(): only 0, -1002 or -1009 come back; every
 * message is within the configured maximum and has a valid opcode; feeding
 * the input whole or in two pieces at the split gives the same messages
 * (same opcodes, lengths and bytes, compared by hash) and the same result,
 * also when masked frames are unmasked in place;
 * the handshake check always terminates its error text and never accepts a
 * status other than 101.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wsframe.h"

#define MAXMSG 4096

struct trace {
    unsigned n;
    uint64_t h; /* FNV-1a over opcode, length and bytes of every message */
};

static int record(void *ud, uint8_t opcode, const uint8_t *p, size_t len)
{
    struct trace *t = ud;
    if (len > MAXMSG)
        abort();
    if (opcode != WS_TEXT && opcode != WS_BINARY && opcode != WS_CLOSE && opcode != WS_PING &&
        opcode != WS_PONG)
        abort();
    if ((opcode & 8) && len > 125)
        abort();
    uint64_t h = t->h ^ opcode;
    h *= 1099511628211ull;
    h ^= len;
    h *= 1099511628211ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    t->h = h;
    t->n++;
    return 0;
}

static int run(bool masked, const uint8_t *p, size_t n, size_t cut, bool inplace, struct trace *t)
{
    wsparse *w = wsparse_new(masked, MAXMSG);
    if (!w)
        abort();
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, p, n);
    int r = inplace ? wsparse_feed_inplace(w, copy, cut, record, t)
                    : wsparse_feed(w, p, cut, record, t);
    if (r == 0)
        r = inplace ? wsparse_feed_inplace(w, copy + cut, n - cut, record, t)
                    : wsparse_feed(w, p + cut, n - cut, record, t);
    free(copy);
    wsparse_free(w);
    if (r != 0 && r != -WS_CLOSE_PROTOCOL && r != -WS_CLOSE_TOO_BIG)
        abort();
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool masked = data[0] & 1;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    size_t cut = n ? (size_t)(data[0] >> 1) % (n + 1) : 0;
    struct trace whole = {0, 1469598103934665603ull}, split = whole;
    struct trace inplace = whole;
    int r1 = run(masked, p, n, n, false, &whole);
    int r2 = run(masked, p, n, cut, false, &split);
    int r3 = run(masked, p, n, cut, true, &inplace);
    /* an error stops the parse where it is found, wherever the input was cut,
     * and unmasking in place delivers the same bytes as unmasking a copy */
    if (r1 != r2 || whole.n != split.n || whole.h != split.h)
        abort();
    if (r1 != r3 || whole.n != inplace.n || whole.h != inplace.h)
        abort();

    long end = wshs_head_end(p, n);
    if (end > (long)n || (end < 0 && end != -EMSGSIZE))
        abort();
    if (end > 0) {
        char err[160];
        int status = -1;
        err[0] = 0;
        int r = wshs_check_response(p, (size_t)end, "dGhlIHNhbXBsZSBub25jZQ==", "warren-tunnel",
                                    &status, err, sizeof err);
        if (r == 0 && status != 101)
            abort();
        if (r < 0 && (strnlen(err, sizeof err) == sizeof err || err[0] == 0))
            abort();
        if (r != 0 && r != -EPROTO)
            abort();
    }
    return 0;
}
