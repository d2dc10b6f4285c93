/*
 * fuzz_config: tunneld's configuration (server/config.c over common/opts.c)
 * with untrusted bytes as its command line and environment.
 *
 * The input is cut at NUL bytes into at most 64 pieces. A piece starting with
 * 0x01 is an environment entry (NAME=VALUE after that byte); every other
 * piece is the next argv element after "tunneld". The environment is cleared
 * before each run. Files: the process works in a scratch directory made at
 * start (removed at exit) holding `secret` (40 bytes), `fleet` (48 bytes),
 * `short` (16 bytes) and `empty`, and inputs with a '/' anywhere are skipped,
 * so every path a flag names resolves inside it.
 *
 * Invariants checked with abort(): config_load returns 0, 1 (help) or
 * -EINVAL and never exits; what it prints goes nowhere (stdout and stderr are
 * swapped for /dev/null during the call); an accepted configuration keeps
 * every documented bound (domain syntax, 1..8 listeners, numeric ranges,
 * a private peer address, a printable instance id, a header name) and is a
 * function of its input: a second run gives the same result and the same
 * values (the reconnect-token secret aside when none was given: it is
 * random then).
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)
#define MAX_PIECES 64

static char scratch[64];
static FILE *devnull;

static void put_file(const char *name, size_t n, char fill)
{
    FILE *f = fopen(name, "w");
    REQUIRE(f);
    for (size_t i = 0; i < n; i++)
        fputc(fill, f);
    fclose(f);
}

static void cleanup(void)
{
    static const char *const files[] = {"secret", "fleet", "short", "empty"};
    if (!scratch[0] || chdir(scratch) != 0)
        return;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    if (chdir("/") == 0)
        rmdir(scratch);
}

static void setup(void)
{
    REQUIRE(sodium_init() >= 0);
    snprintf(scratch, sizeof scratch, "/tmp/warren-fuzz-config-XXXXXX");
    REQUIRE(mkdtemp(scratch) && chdir(scratch) == 0);
    put_file("secret", 40, 's');
    put_file("fleet", 48, 'f');
    put_file("short", 16, 'x');
    put_file("empty", 0, 0);
    devnull = fopen("/dev/null", "w");
    REQUIRE(devnull);
    atexit(cleanup);
}

static bool domain_syntax(const char *d)
{
    size_t n = strlen(d);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)d[i]) || isdigit((unsigned char)d[i]) || d[i] == '-' ||
              d[i] == '.'))
            return false;
    return d[0] != '.' && d[0] != '-' && d[n - 1] != '.' && d[n - 1] != '-';
}

static bool private_v4(const uint8_t *a)
{
    return a[0] == 127 || a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
           (a[0] == 192 && a[1] == 168) || (a[0] == 100 && (a[1] & 0xc0) == 64) ||
           (a[0] == 169 && a[1] == 254);
}

static void check_config(const struct config *c)
{
    REQUIRE(domain_syntax(c->domain));
    REQUIRE(c->nlisten >= 1 && c->nlisten <= CONFIG_MAX_LISTEN);
    for (unsigned i = 0; i < c->nlisten; i++) {
        int fam = c->listen[i].ss.ss_family;
        REQUIRE(fam == AF_INET || fam == AF_INET6);
        REQUIRE(c->listen[i].text[0] && strnlen(c->listen[i].text, 64) < 64);
    }
    REQUIRE(c->grace_period <= 86400 && c->drain_timeout <= 3600);
    REQUIRE(c->head_timeout >= 1 && c->head_timeout <= 3600);
    REQUIRE(c->idle_timeout >= 1 && c->response_timeout >= 1);
    REQUIRE(c->hello_timeout >= 1 && c->hello_timeout <= 600);
    REQUIRE(c->max_streams >= 1 && c->max_streams <= 65536);
    REQUIRE(c->window >= 65536 && c->window <= 16777216);
    REQUIRE(c->max_tunnels >= 1 && c->max_tunnels <= 1000000);
    REQUIRE(c->ping_interval >= 1 && c->ping_interval <= 3600);
    REQUIRE(c->public_port >= 1 && c->public_port <= 65535);
    REQUIRE(strcmp(c->public_scheme, "http") == 0 || strcmp(c->public_scheme, "https") == 0);
    REQUIRE(c->log_level >= 0 && c->log_level <= 3);
    REQUIRE(strnlen(c->keys_file, sizeof c->keys_file) < sizeof c->keys_file);
    size_t n = strnlen(c->instance_id, sizeof c->instance_id);
    REQUIRE(n >= 1 && n < sizeof c->instance_id);
    for (size_t i = 0; i < n; i++)
        REQUIRE(c->instance_id[i] > 0x20 && c->instance_id[i] < 0x7f);
    for (const char *p = c->proxy_header; *p; p++)
        REQUIRE(isalnum((unsigned char)*p) || *p == '-' || *p == '_');
    if (c->fleet) {
        REQUIRE(c->peers_dns[0]);
        const struct sockaddr_storage *ss = &c->peer_listen.ss;
        if (ss->ss_family == AF_INET) {
            REQUIRE(private_v4((const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr));
        } else {
            REQUIRE(ss->ss_family == AF_INET6);
            const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
            REQUIRE(IN6_IS_ADDR_LOOPBACK(a) || (a->s6_addr[0] & 0xfe) == 0xfc ||
                    IN6_IS_ADDR_LINKLOCAL(a));
        }
        static const uint8_t zero[TOKEN_KEY_LEN];
        REQUIRE(memcmp(c->fleet_key, zero, sizeof zero) != 0);
    }
}

static int load(struct config *c, int argc, char **argv)
{
    FILE *out = stdout, *err = stderr;
    stdout = devnull;
    stderr = devnull;
    int r = config_load(c, argc, argv);
    stdout = out;
    stderr = err;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (memchr(data, '/', size))
        return 0; /* every path stays inside the scratch directory */
    char *text = malloc(size + 1);
    REQUIRE(text);
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[MAX_PIECES + 2];
    int argc = 0;
    argv[argc++] = "tunneld";
    clearenv();
    size_t npieces = 0;
    for (char *p = text; p <= text + size && npieces < MAX_PIECES; p += strlen(p) + 1, npieces++) {
        if (p[0] == 1) {
            char *eq = strchr(p + 1, '=');
            if (eq && eq > p + 1)
                putenv(p + 1); /* not copied: cleared again before text is freed */
        } else if (p < text + size || p[0]) {
            argv[argc++] = p;
        }
    }
    argv[argc] = NULL;

    static struct config c1, c2;
    int r = load(&c1, argc, argv);
    REQUIRE(r == 0 || r == 1 || r == -EINVAL);
    if (r == 0)
        check_config(&c1);
    int r2 = load(&c2, argc, argv);
    REQUIRE(r2 == r);
    if (r == 0) {
        if (!c1.secret_given) {
            REQUIRE(!c2.secret_given);
            memset(c1.secret, 0, sizeof c1.secret);
            memset(c2.secret, 0, sizeof c2.secret);
        }
        REQUIRE(memcmp(&c1, &c2, sizeof c1) == 0);
    }
    clearenv();
    free(text);
    return 0;
}
