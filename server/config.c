/*
 * config: the option table of tunneld and the checks between options. Every
 * value is range-checked by opts; here come the domain syntax, the listen
 * address list, and the secret (env or file, never argv).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "addr.h"
#include "config.h"
#include "log.h"
#include "opts.h"

#define TOKEN_LABEL "warren reconnect token key v1"

static const struct opt options[] = {
    {"domain", OPT_STRING, 0, 0, NULL, "DOMAIN", "tunnels are NAME.DOMAIN (required)"},
    {"listen", OPT_LIST, 0, 0, "0.0.0.0:8080", "ADDR:PORT",
     "public HTTP + control WebSocket listener; repeat for more ([::1]:8080 for IPv6)"},
    {"secret-file", OPT_STRING, 0, 0, NULL, "FILE",
     "file with the secret that signs reconnect tokens (>= 32 bytes)"},
    {"secret", OPT_STRING, 0, 0, NULL, "SECRET", "the secret itself (environment only)", false,
     true},
    {"keys", OPT_STRING, 0, 0, NULL, "FILE",
     "require tunnel keys; FILE holds their hashes (see `tunneld keys add`)"},
    {"grace-period", OPT_INT, 0, 86400, "30", "SECS",
     "how long a name stays reserved for its owner after a disconnect"},
    {"drain-timeout", OPT_INT, 0, 3600, "30", "SECS", "SIGTERM: longest wait for in-flight work"},
    {"head-timeout", OPT_INT, 1, 3600, "10", "SECS", "a request head must arrive within (408)"},
    {"idle-timeout", OPT_INT, 1, 86400, "75", "SECS", "idle keep-alive connections are closed"},
    {"response-timeout", OPT_INT, 1, 86400, "60", "SECS",
     "the local service must start answering within (504)"},
    {"hello-timeout", OPT_INT, 1, 600, "10", "SECS", "a new tunnel must say hello within"},
    {"max-streams", OPT_INT, 1, 65536, "256", "N", "concurrent streams per tunnel (then 503)"},
    {"window", OPT_INT, 65536, 16777216, "262144", "BYTES", "per-stream flow-control window"},
    {"body-timeout", OPT_INT, 1, 86400, "30", "SECS",
     "a request body must bring --min-rate bytes/s over each period this long (else 408)"},
    {"send-timeout", OPT_INT, 1, 86400, "30", "SECS",
     "a visitor must take --min-rate bytes/s of a waiting response over each period this long "
     "(else the connection is reset)"},
    {"min-rate", OPT_INT, 0, 1000000000, "500", "BYTES",
     "slowest transfer rate per visitor for --body-timeout and --send-timeout (0: one byte per "
     "period)"},
    {"max-connections", OPT_INT, 0, 10000000, "0", "N",
     "public connections at once, tunnels included; more are answered 503 and closed (0: the "
     "open-files limit minus 256)"},
    {"max-tunnels-per-ip", OPT_INT, 1, 1000000, "32", "N",
     "tunnels one client address (IPv6: its /64) may hold (then too_many_tunnels)"},
    {"handshake-rate", OPT_INT, 0, 1000000, "5", "N",
     "tunnel WebSocket handshakes per second per client address, beyond the burst (then 429; 0: "
     "no limit)"},
    {"handshake-burst", OPT_INT, 1, 1000000, "20", "N",
     "handshakes one client address may make at once before --handshake-rate applies"},
    {"max-tunnels", OPT_INT, 1, 1000000, "100000", "N",
     "tunnels on this edge (then limit_reached)"},
    {"ping-interval", OPT_INT, 1, 3600, "15", "SECS",
     "WebSocket ping interval; a tunnel silent for 3 intervals is dead"},
    {"public-scheme", OPT_STRING, 0, 0, "http", "http|https", "scheme of the public URLs shown"},
    {"public-port", OPT_INT, 0, 65535, "0", "PORT",
     "port of the public URLs shown (0: the first --listen port)"},
    {"peers-dns", OPT_STRING, 0, 0, NULL, "NAME",
     "DNS name whose A/AAAA records are the fleet's edges (e.g. APP.internal)"},
    {"peer-listen", OPT_STRING, 0, 0, NULL, "ADDR:PORT",
     "listener for other edges, on a private address (needed with --peers-dns)"},
    {"fleet-secret-file", OPT_STRING, 0, 0, NULL, "FILE",
     "file with the secret shared by the fleet's edges (>= 32 bytes)"},
    {"fleet-secret", OPT_STRING, 0, 0, NULL, "SECRET", "the fleet secret itself (environment only)",
     false, true},
    {"dns-server", OPT_STRING, 0, 0, NULL, "IP:PORT",
     "DNS server for --peers-dns instead of /etc/resolv.conf"},
    {"instance-id", OPT_STRING, 0, 0, NULL, "ID",
     "this edge's name in the fleet (default: $FLY_ALLOC_ID, else the host name)"},
    {"admin-listen", OPT_STRING, 0, 0, "127.0.0.1:9090", "ADDR:PORT",
     "/healthz, /readyz and /metrics (\"off\" to disable)"},
    {"proxy-client-ip-header", OPT_STRING, 0, 0, NULL, "HEADER",
     "only a proxy reaches the public port and puts the visitor's address in HEADER (e.g. "
     "Fly-Client-IP): trust it, and let one connection carry several tunnels' requests"},
    {"log-level", OPT_STRING, 0, 0, "info", "LEVEL", "error, warn, info or debug"},
    {"check-config", OPT_BOOL, 0, 0, NULL, NULL, "validate the configuration and exit", true},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static const char usage[] = "usage: tunneld --domain DOMAIN [--listen ADDR:PORT ...] [options]\n"
                            "       tunneld keys add FILE [--label TEXT]";

static int fail(const char *msg)
{
    fprintf(stderr, "tunneld: %s\n", msg);
    return -EINVAL;
}

static bool domain_ok(const char *d)
{
    size_t n = strlen(d), label = 0;
    if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = d[i];
        if (ch == '.') {
            if (label == 0 || d[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '-'))
            return false;
        if (label == 0 && ch == '-')
            return false;
        if (++label > 63)
            return false;
    }
    return d[n - 1] != '-';
}

/* A key for one purpose: BLAKE2b of the secret keyed with a purpose label, so
 * one secret can key several MACs without any two being interchangeable. */
static void derive_key(const uint8_t *secret, size_t len, const char *label,
                       uint8_t out[TOKEN_KEY_LEN])
{
    crypto_generichash(out, TOKEN_KEY_LEN, secret, len, (const uint8_t *)label, strlen(label));
}

static int read_secret(const char *path, const char *flag, const char *label,
                       uint8_t out[TOKEN_KEY_LEN], char *err, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, cap, "%s %.200s: %s", flag, path, strerror(errno));
        return -EINVAL;
    }
    char data[4096];
    ssize_t n = read(fd, data, sizeof data);
    close(fd);
    if (n < 0) {
        snprintf(err, cap, "%s %.200s: %s", flag, path, strerror(errno));
        return -EINVAL;
    }
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        n--;
    if (n < 32) {
        snprintf(err, cap, "%s %.200s: the secret must be at least 32 bytes (has %zd)", flag, path,
                 n);
        return -EINVAL;
    }
    derive_key((const uint8_t *)data, (size_t)n, label, out);
    sodium_memzero(data, sizeof data);
    return 0;
}

/* A peer listener must not face the internet: loopback, RFC 1918, CGNAT
 * (100.64/10), link-local, or IPv6 unique-local / link-local only. */
static bool private_addr(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
        return a[0] == 127 || a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
               (a[0] == 192 && a[1] == 168) || (a[0] == 100 && (a[1] & 0xc0) == 64) ||
               (a[0] == 169 && a[1] == 254);
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (a->s6_addr[0] & 0xfe) == 0xfc ||
               IN6_IS_ADDR_LINKLOCAL(a);
    }
    return false;
}

static int load_fleet(struct config *c, const struct opts *o)
{
    char err[320];
    const struct opt_value *v = opts_get(o, "admin-listen");
    if (strcmp(v->str, "off") != 0 && *v->str) {
        if (addr_parse(v->str, strlen(v->str), &c->admin.ss, &c->admin.len, 1) < 0) {
            snprintf(err, sizeof err, "--admin-listen: \"%.100s\" is not IP:PORT or off", v->str);
            return fail(err);
        }
        addr_format((struct sockaddr *)&c->admin.ss, c->admin.text, sizeof c->admin.text);
        c->admin_enabled = true;
    }
    v = opts_get(o, "instance-id");
    const char *id = v->str ? v->str : getenv("FLY_ALLOC_ID");
    char host[256] = "";
    if (!id || !*id) {
        gethostname(host, sizeof host - 1);
        id = host[0] ? host : "edge";
    }
    if (strlen(id) >= sizeof c->instance_id) {
        return fail("--instance-id: at most 63 bytes");
    }
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return fail("--instance-id: printable characters without spaces only");
    snprintf(c->instance_id, sizeof c->instance_id, "%s", id);

    v = opts_get(o, "dns-server");
    if (v->str) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (addr_parse(v->str, strlen(v->str), &ss, &len, 0) < 0) {
            snprintf(err, sizeof err, "--dns-server: \"%.100s\" is not IP:PORT", v->str);
            return fail(err);
        }
        addr_format((struct sockaddr *)&ss, c->dns_server, sizeof c->dns_server);
    }
    v = opts_get(o, "peers-dns");
    if (!v->str)
        return 0; /* a lone edge */
    if (!*v->str || strlen(v->str) >= sizeof c->peers_dns) {
        return fail("--peers-dns: bad name");
    }
    snprintf(c->peers_dns, sizeof c->peers_dns, "%s", v->str);
    v = opts_get(o, "peer-listen");
    if (!v->str)
        return fail("--peer-listen is required with --peers-dns (a private ADDR:PORT, e.g. "
                    "[fdaa::3]:7000 or 10.0.0.5:7000)");
    if (addr_parse(v->str, strlen(v->str), &c->peer_listen.ss, &c->peer_listen.len, 0) < 0) {
        snprintf(err, sizeof err, "--peer-listen: \"%.100s\" is not IP:PORT", v->str);
        return fail(err);
    }
    if (!private_addr(&c->peer_listen.ss)) {
        snprintf(err, sizeof err,
                 "--peer-listen: %.100s is not a private address (loopback, 10/8, 172.16/12, "
                 "192.168/16, 100.64/10, fc00::/7); the peer port must not face the internet",
                 v->str);
        return fail(err);
    }
    addr_format((struct sockaddr *)&c->peer_listen.ss, c->peer_listen.text,
                sizeof c->peer_listen.text);
    const struct opt_value *ff = opts_get(o, "fleet-secret-file"),
                           *fv = opts_get(o, "fleet-secret");
    if (ff->str && fv->str)
        return fail("give either --fleet-secret-file or TUNNELD_FLEET_SECRET, not both");
    if (ff->str) {
        if (read_secret(ff->str, "--fleet-secret-file", "warren peer link key v1", c->fleet_key,
                        err, sizeof err) < 0)
            return fail(err);
    } else if (fv->str) {
        if (strlen(fv->str) < 32)
            return fail("TUNNELD_FLEET_SECRET: the secret must be at least 32 bytes");
        derive_key((const uint8_t *)fv->str, strlen(fv->str), "warren peer link key v1",
                   c->fleet_key);
    } else {
        return fail("--peers-dns needs the fleet secret: TUNNELD_FLEET_SECRET or "
                    "--fleet-secret-file FILE (the same on every edge)");
    }
    c->fleet = true;
    return 0;
}

int config_load(struct config *c, int argc, char **argv)
{
    struct opts o;
    char err[256];
    memset(c, 0, sizeof *c);
    int r = opts_parse(&o, options, NOPTIONS, "TUNNELD", argc, argv, err, sizeof err);
    if (r == 1) {
        opts_help(&o, stdout, usage);
        opts_free(&o);
        return 1;
    }
    if (r < 0) {
        opts_free(&o);
        return fail(err);
    }
    r = -EINVAL;
    const struct opt_value *v = opts_get(&o, "domain");
    if (!v->str || !*v->str) {
        fail("--domain is required (e.g. --domain localhost or TUNNELD_DOMAIN=tunnel.example.com)");
        goto out;
    }
    if (strlen(v->str) >= sizeof c->domain || !domain_ok(v->str)) {
        snprintf(err, sizeof err, "--domain: \"%.100s\" is not a lowercase DNS name", v->str);
        fail(err);
        goto out;
    }
    snprintf(c->domain, sizeof c->domain, "%s", v->str);

    v = opts_get(&o, "listen");
    if (v->nlist == 0 || v->nlist > CONFIG_MAX_LISTEN) {
        fail("--listen: give 1 to 8 addresses");
        goto out;
    }
    for (size_t i = 0; i < v->nlist; i++) {
        struct listen_addr *la = &c->listen[c->nlisten++];
        if (addr_parse(v->list[i], strlen(v->list[i]), &la->ss, &la->len, 0) < 0) {
            snprintf(err, sizeof err,
                     "--listen: \"%.100s\" is not IP:PORT (examples: 127.0.0.1:8080, [::1]:8080, "
                     "*:8080)",
                     v->list[i]);
            fail(err);
            goto out;
        }
        addr_format((struct sockaddr *)&la->ss, la->text, sizeof la->text);
    }

    const struct opt_value *sf = opts_get(&o, "secret-file"), *sv = opts_get(&o, "secret");
    if (sf->str && sv->str) {
        fail("give either --secret-file or TUNNELD_SECRET, not both");
        goto out;
    }
    if (sf->str) {
        if (read_secret(sf->str, "--secret-file", TOKEN_LABEL, c->secret, err, sizeof err) < 0) {
            fail(err);
            goto out;
        }
        c->secret_given = true;
    } else if (sv->str) {
        if (strlen(sv->str) < 32) {
            fail("TUNNELD_SECRET: the secret must be at least 32 bytes");
            goto out;
        }
        derive_key((const uint8_t *)sv->str, strlen(sv->str), TOKEN_LABEL, c->secret);
        c->secret_given = true;
    } else {
        randombytes_buf(c->secret, sizeof c->secret);
    }

    v = opts_get(&o, "keys");
    if (v->str) {
        if (strlen(v->str) >= sizeof c->keys_file || !*v->str) {
            fail("--keys: bad file name");
            goto out;
        }
        snprintf(c->keys_file, sizeof c->keys_file, "%s", v->str);
    }
    c->grace_period = (unsigned)opts_get(&o, "grace-period")->num;
    c->drain_timeout = (unsigned)opts_get(&o, "drain-timeout")->num;
    c->head_timeout = (unsigned)opts_get(&o, "head-timeout")->num;
    c->idle_timeout = (unsigned)opts_get(&o, "idle-timeout")->num;
    c->response_timeout = (unsigned)opts_get(&o, "response-timeout")->num;
    c->hello_timeout = (unsigned)opts_get(&o, "hello-timeout")->num;
    c->max_streams = (unsigned)opts_get(&o, "max-streams")->num;
    c->window = (unsigned)opts_get(&o, "window")->num;
    c->max_tunnels = (unsigned)opts_get(&o, "max-tunnels")->num;
    c->body_timeout = (unsigned)opts_get(&o, "body-timeout")->num;
    c->send_timeout = (unsigned)opts_get(&o, "send-timeout")->num;
    c->min_rate = (unsigned)opts_get(&o, "min-rate")->num;
    c->max_connections = (unsigned)opts_get(&o, "max-connections")->num;
    c->max_tunnels_per_ip = (unsigned)opts_get(&o, "max-tunnels-per-ip")->num;
    c->handshake_rate = (unsigned)opts_get(&o, "handshake-rate")->num;
    c->handshake_burst = (unsigned)opts_get(&o, "handshake-burst")->num;
    c->ping_interval = (unsigned)opts_get(&o, "ping-interval")->num;
    c->public_port = (unsigned)opts_get(&o, "public-port")->num;
    c->check_only = opts_get(&o, "check-config")->num != 0;
    v = opts_get(&o, "public-scheme");
    if (strcmp(v->str, "http") != 0 && strcmp(v->str, "https") != 0) {
        snprintf(err, sizeof err, "--public-scheme: expected http or https, got \"%.32s\"", v->str);
        fail(err);
        goto out;
    }
    snprintf(c->public_scheme, sizeof c->public_scheme, "%s", v->str);
    v = opts_get(&o, "log-level");
    c->log_level = log_level_parse(v->str);
    if (c->log_level < 0) {
        snprintf(err, sizeof err, "--log-level: expected error, warn, info or debug, got \"%.32s\"",
                 v->str);
        fail(err);
        goto out;
    }
    if (c->public_port == 0)
        c->public_port = (unsigned)addr_port((struct sockaddr *)&c->listen[0].ss);
    if (load_fleet(c, &o) < 0)
        goto out;
    v = opts_get(&o, "proxy-client-ip-header");
    if (v->str) {
        size_t n = strlen(v->str);
        bool ok = n > 0 && n < sizeof c->proxy_header;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)v->str[i]) || v->str[i] == '-' || v->str[i] == '_';
        if (!ok) {
            snprintf(err, sizeof err, "--proxy-client-ip-header: \"%.64s\" is not a header name",
                     v->str);
            fail(err);
            goto out;
        }
        snprintf(c->proxy_header, sizeof c->proxy_header, "%s", v->str);
    }
    r = 0;
out:
    opts_free(&o);
    return r;
}

void config_public_url(const struct config *c, const char *name, char *out, size_t cap)
{
    bool default_port = (strcmp(c->public_scheme, "http") == 0 && c->public_port == 80) ||
                        (strcmp(c->public_scheme, "https") == 0 && c->public_port == 443);
    if (default_port)
        snprintf(out, cap, "%s://%s.%s", c->public_scheme, name, c->domain);
    else
        snprintf(out, cap, "%s://%s.%s:%u", c->public_scheme, name, c->domain, c->public_port);
}
