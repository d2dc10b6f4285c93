/*
 * fuzz_ctl: ctl_hello_parse and ctl_server_parse on untrusted bytes.
 *
 * Invariants checked with abort(): only the documented errors come back,
 * always with a terminated, non-empty error text; a refused message leaves
 * the output untouched (except out->version for -EPROTONOSUPPORT, which
 * fills the whole hello); every string field of an accepted message is
 * terminated within its array; and whatever parsed, encoded again, fits
 * CTL_MAX_LEN and parses back to the same fields.
 *
 * What each side then does with the fields is fed too: the edge checks a
 * hello's name (name_validate, and name_explain into the 256-byte message of
 * its refusal) and its reconnect token (token_verify with a fixed key); the
 * CLI builds its mux from a welcome's limits (mux_new refuses out-of-range
 * values with EINVAL, never more).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "mux.h"
#include "names.h"
#include "token.h"

#define FIELD_OK(s) (strnlen((s), sizeof(s)) < sizeof(s))
#define SAME(a, b, f) (strcmp((a)->f, (b)->f) == 0)

static void check_err(const char *err, size_t cap)
{
    if (strnlen(err, cap) == cap || err[0] == 0)
        abort();
}

static void check_hello_fields(const struct ctl_hello *h)
{
    if (!FIELD_OK(h->kind) || !FIELD_OK(h->name) || !FIELD_OK(h->key) ||
        !FIELD_OK(h->reconnect_token) || !FIELD_OK(h->client))
        abort();
    if (strcmp(h->kind, "http") != 0 && strcmp(h->kind, "tcp") != 0)
        abort();
}

/* The edge's handling of a parsed hello's name and token (server/session.c). */
static void edge_side(const struct ctl_hello *h)
{
    static const uint8_t key[TOKEN_KEY_LEN] = {1, 2, 3};
    char msg[256], tok_name[64];
    size_t n = strlen(h->name);
    int r = name_validate(h->name, n);
    if (r != 0 && r != -EINVAL && r != -EPERM)
        abort();
    if (r != 0) {
        memset(msg, 0x5a, sizeof msg);
        name_explain(h->name, n, msg, sizeof msg);
        if (strnlen(msg, sizeof msg) == sizeof msg || msg[0] == 0)
            abort();
    }
    if (h->reconnect_token[0]) {
        r = token_verify(key, h->reconnect_token, strlen(h->reconnect_token), 1700000000u, tok_name,
                         sizeof tok_name);
        if (r == 0 ? name_validate(tok_name, strlen(tok_name)) == -EINVAL
                   : r != -EINVAL && r != -EBADMSG && r != -ETIMEDOUT)
            abort();
    }
}

static void want_write(void *ud)
{
    (void)ud;
}

/* The CLI's use of a welcome's limits (cli/client.c). */
static void cli_side(const struct ctl_server *s)
{
    static const struct mux_ops ops = {want_write, NULL, NULL, NULL, NULL};
    struct mux_config mc = {.window = s->window ? s->window : 256 * 1024,
                            .tx_buf = 64 * 1024,
                            .max_streams = s->max_streams ? s->max_streams : 256,
                            .odd_ids = false};
    errno = 0;
    mux *m = mux_new(&mc, &ops, NULL);
    if (!m) {
        if (errno != EINVAL || (mc.window <= (1u << 30) && mc.max_streams <= (1u << 24)))
            abort();
        return;
    }
    mux_free(m);
}

static void fuzz_hello(const uint8_t *data, size_t size)
{
    struct ctl_hello h, untouched, back;
    char err[160];
    memset(&h, 0xa5, sizeof h);
    untouched = h;
    memset(err, 0x5a, sizeof err);
    int r = ctl_hello_parse((const char *)data, size, &h, err, sizeof err);
    if (r == -EINVAL) {
        check_err(err, sizeof err);
        if (memcmp(&h, &untouched, sizeof h) != 0)
            abort();
        return;
    }
    if (r == -EPROTONOSUPPORT) {
        check_err(err, sizeof err);
        if (h.version == CTL_VERSION)
            abort();
    } else if (r != 0 || h.version != CTL_VERSION) {
        abort();
    }
    check_hello_fields(&h);
    edge_side(&h);

    char *j = ctl_hello_encode(&h);
    if (!j)
        abort();
    size_t len = strlen(j);
    if (len > CTL_MAX_LEN)
        abort();
    memset(&back, 0, sizeof back);
    int r2 = ctl_hello_parse(j, len, &back, err, sizeof err);
    if (r2 != r || back.version != h.version || !SAME(&back, &h, kind) || !SAME(&back, &h, name) ||
        !SAME(&back, &h, key) || !SAME(&back, &h, reconnect_token) || !SAME(&back, &h, client))
        abort();
    free(j);
}

static void fuzz_server(const uint8_t *data, size_t size)
{
    struct ctl_server s, untouched, back;
    char err[160];
    memset(&s, 0xa5, sizeof s);
    untouched = s;
    memset(err, 0x5a, sizeof err);
    int r = ctl_server_parse((const char *)data, size, &s, err, sizeof err);
    if (r == -EINVAL) {
        check_err(err, sizeof err);
        if (memcmp(&s, &untouched, sizeof s) != 0)
            abort();
        return;
    }
    if (r != 0)
        abort();
    if (!FIELD_OK(s.name) || !FIELD_OK(s.url) || !FIELD_OK(s.reconnect_token) ||
        !FIELD_OK(s.code) || !FIELD_OK(s.message))
        abort();

    char *j = NULL;
    switch (s.type) {
    case CTL_WELCOME:
        if (!s.name[0])
            abort();
        cli_side(&s);
        j = ctl_welcome_encode(&s);
        break;
    case CTL_ERROR:
        if (!s.code[0])
            abort();
        j = ctl_error_encode(s.code, s.message);
        break;
    case CTL_TOKEN:
        j = ctl_token_encode(s.reconnect_token);
        break;
    default:
        abort();
    }
    if (!j)
        abort();
    size_t len = strlen(j);
    if (len > CTL_MAX_LEN)
        abort();
    memset(&back, 0, sizeof back);
    if (ctl_server_parse(j, len, &back, err, sizeof err) != 0 || back.type != s.type)
        abort();
    free(j);
    switch (s.type) {
    case CTL_WELCOME:
        /* the encoder always speaks CTL_VERSION */
        if (back.version != CTL_VERSION || !SAME(&back, &s, name) || !SAME(&back, &s, url) ||
            !SAME(&back, &s, reconnect_token) || back.max_streams != s.max_streams ||
            back.window != s.window || back.max_frame != s.max_frame ||
            back.ping_interval != s.ping_interval || back.grace_period != s.grace_period)
            abort();
        break;
    case CTL_ERROR:
        if (!SAME(&back, &s, code) || !SAME(&back, &s, message))
            abort();
        break;
    case CTL_TOKEN:
        if (!SAME(&back, &s, reconnect_token))
            abort();
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_hello(data, size);
    fuzz_server(data, size);
    return 0;
}
