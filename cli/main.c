/*
 * tunnel: the Warren CLI. Parse flags (TUNNEL_* environment twins), resolve
 * the local service, create the lws context, connect, run until Ctrl-C or a
 * final refusal, exit with the documented code.
 */
#include <errno.h>
#include <malloc.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "lwsraw.h"
#include "cli.h"
#include "evset.h"
#include "fdlimit.h"
#include "frame.h"
#include "log.h"
#include "opts.h"

static const struct opt options[] = {
    {"port", OPT_INT, 1, 65535, NULL, "PORT", "local port to expose (required)"},
    {"subdomain", OPT_STRING, 0, 0, NULL, "NAME", "tunnel name (default: a random one)"},
    {"server", OPT_STRING, 0, 0, "ws://localhost:8080", "URL",
     "edge to connect to (ws:// or wss://; every address of the name is tried)"},
    {"local-host", OPT_STRING, 0, 0, "localhost", "HOST", "host of the local service"},
    {"key", OPT_STRING, 0, 0, NULL, "KEY", "auth key, if the edge requires one"},
    {"json", OPT_BOOL, 0, 0, NULL, NULL, "print one JSON object per event"},
    {"log-level", OPT_STRING, 0, 0, "warn", "LEVEL", "error, warn, info or debug (stderr)"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static const char usage[] = "usage: tunnel --port PORT [--subdomain NAME] [--server URL] "
                            "[--local-host HOST] [--key KEY] [--json]";

static int signal_pipe_w = -1;

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(signal_pipe_w, &b, 1);
    (void)w;
    errno = saved;
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "tunnel: %s\n", msg);
    return EXIT_USAGE;
}

/* ws[s]://host[:port][/path] (http/https accepted as aliases). */
static int parse_server(struct cli_config *cfg, const char *url, char *err, size_t cap)
{
    const char *p = url;
    if (strncasecmp(p, "ws://", 5) == 0 || strncasecmp(p, "http://", 7) == 0) {
        cfg->tls = false;
        p += p[0] == 'w' || p[0] == 'W' ? 5 : 7;
    } else if (strncasecmp(p, "wss://", 6) == 0 || strncasecmp(p, "https://", 8) == 0) {
        cfg->tls = true;
        p += p[0] == 'w' || p[0] == 'W' ? 6 : 8;
    } else {
        snprintf(err, cap,
                 "--server: \"%.100s\" must start with ws://, wss://, http:// or https://", url);
        return -1;
    }
    const char *slash = strchr(p, '/');
    size_t hp = slash ? (size_t)(slash - p) : strlen(p);
    const char *host = p, *colon = NULL;
    size_t hl = hp;
    if (hp && p[0] == '[') {
        const char *close = memchr(p, ']', hp);
        if (!close) {
            snprintf(err, cap, "--server: unbalanced [ in \"%.100s\"", url);
            return -1;
        }
        host = p + 1;
        hl = (size_t)(close - p - 1);
        if (close + 1 < p + hp && close[1] == ':')
            colon = close + 1;
    } else {
        colon = memchr(p, ':', hp);
        if (colon)
            hl = (size_t)(colon - p);
    }
    if (hl == 0 || hl >= sizeof cfg->server_host) {
        snprintf(err, cap, "--server: no host in \"%.100s\"", url);
        return -1;
    }
    memcpy(cfg->server_host, host, hl);
    cfg->server_host[hl] = 0;
    cfg->server_port = cfg->tls ? 443 : 80;
    if (colon) {
        long v = 0;
        const char *q = colon + 1, *end = p + hp;
        if (q == end)
            v = -1;
        for (; q < end; q++) {
            if (*q < '0' || *q > '9' || v > 65535) {
                v = -1;
                break;
            }
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535) {
            snprintf(err, cap, "--server: bad port in \"%.100s\"", url);
            return -1;
        }
        cfg->server_port = (unsigned)v;
    }
    if (slash && strcmp(slash, "/") != 0)
        snprintf(cfg->server_path, sizeof cfg->server_path, "%s", slash);
    else
        snprintf(cfg->server_path, sizeof cfg->server_path, "/_tunnel");
    snprintf(cfg->server_url, sizeof cfg->server_url, "%s", url);
    return 0;
}

static int load_config(struct cli_config *cfg, int argc, char **argv)
{
    struct opts o;
    char err[256];
    int r = opts_parse(&o, options, NOPTIONS, "TUNNEL", argc, argv, err, sizeof err);
    if (r == 1) {
        opts_help(&o, stdout, usage);
        opts_free(&o);
        return 1;
    }
    if (r < 0) {
        opts_free(&o);
        return usage_error(err);
    }
    r = EXIT_USAGE;
    const struct opt_value *v = opts_get(&o, "port");
    if (!v->str) {
        usage_error("--port is required (the local port to expose, e.g. --port 8000)");
        goto out;
    }
    cfg->port = (unsigned)v->num;
    v = opts_get(&o, "subdomain");
    if (v->str) {
        size_t n = strlen(v->str);
        if (n >= sizeof cfg->subdomain) {
            usage_error("--subdomain: too long (a name has at most 63 characters)");
            goto out;
        }
        for (size_t i = 0; i <= n; i++) /* names are case-insensitive, like DNS */
            cfg->subdomain[i] =
                (char)(v->str[i] >= 'A' && v->str[i] <= 'Z' ? v->str[i] + 32 : v->str[i]);
        if (name_validate(cfg->subdomain, n) < 0) {
            char msg[256];
            name_explain(cfg->subdomain, n, msg, sizeof msg);
            fprintf(stderr, "tunnel: --subdomain: %s\n", msg);
            r = EXIT_INVALID_NAME;
            goto out;
        }
    }
    if (parse_server(cfg, opts_get(&o, "server")->str, err, sizeof err) < 0) {
        usage_error(err);
        goto out;
    }
    v = opts_get(&o, "local-host");
    if (!*v->str || strlen(v->str) >= sizeof cfg->local_host) {
        usage_error("--local-host: bad host");
        goto out;
    }
    snprintf(cfg->local_host, sizeof cfg->local_host, "%s", v->str);
    v = opts_get(&o, "key");
    if (v->str) {
        if (strlen(v->str) >= sizeof cfg->key) {
            usage_error("--key: too long");
            goto out;
        }
        snprintf(cfg->key, sizeof cfg->key, "%s", v->str);
    }
    cfg->json = opts_get(&o, "json")->num != 0;
    cfg->log_level = log_level_parse(opts_get(&o, "log-level")->str);
    if (cfg->log_level < 0) {
        usage_error("--log-level: expected error, warn, info or debug");
        goto out;
    }
    r = 0;
out:
    opts_free(&o);
    return r;
}

/* The local connections' turn is over: what it gave the edge goes out now. */
static void turn_end(void *ud)
{
    conn_kick(ud);
}

static int raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    struct raw_obj_cli *o = lws_get_opaque_user_data(wsi);
    struct cli *c = lws_context_user(lws_get_context(wsi));
    /* lws calls this protocol for other reasons too, among them
     * WSI_DESTROY after RAW_CLOSE_FILE, when o has been freed: only the raw
     * file events may look at it, and after the close nothing does. */
    if (!o || (reason != LWS_CALLBACK_RAW_RX_FILE && reason != LWS_CALLBACK_RAW_WRITEABLE_FILE &&
               reason != LWS_CALLBACK_RAW_CLOSE_FILE))
        return 0;
    if (reason == LWS_CALLBACK_RAW_CLOSE_FILE)
        lws_set_opaque_user_data(wsi, NULL);
    if (o->kind == CLI_RAW_EVSET)
        return c->evset ? evset_callback(c->evset, reason) : 0;
    if (o->kind == CLI_RAW_SERVER) {
        int r = conn_callback(wsi, reason, c);
        /* what the edge delivered goes out to the local service in this turn */
        if (reason == LWS_CALLBACK_RAW_RX_FILE && r == 0)
            evset_flush(c->evset);
        return r;
    }
    if (reason == LWS_CALLBACK_RAW_RX_FILE) {
        unsigned char sigs[16];
        ssize_t n = read(c->sigpipe[0], sigs, sizeof sigs);
        if (n > 0) {
            log_info("signal %u: stopping", sigs[0]);
            client_stop(c);
        }
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {WARREN_CLI_RAW_PROTOCOL, raw_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int setup_signals(struct cli *c)
{
    if (pipe2(c->sigpipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    signal_pipe_w = c->sigpipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    c->sigobj.kind = CLI_RAW_SIGNAL;
    if (!lwsraw_adopt(c->vh, c->sigpipe[0], WARREN_CLI_RAW_PROTOCOL, &c->sigobj))
        return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &set, NULL); /* pending ones arrive now, as events */
    return 0;
}

int main(int argc, char **argv)
{
    /* Stream buffers come and go with every request: keep freed heap for
     * reuse instead of returning it to the kernel each time (a brk() per
     * request otherwise); at most about 1 MiB stays unused. */
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
    mallopt(M_TOP_PAD, 256 << 10);
    static struct cli_config cfg;
    static struct cli c;
    /* Signals wait (blocked) until the loop can take them as events. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &stop_sigs, NULL);
    if (sodium_init() < 0)
        return EXIT_FATAL;
    int r = load_config(&cfg, argc, argv);
    if (r == 1)
        return EXIT_OK;
    if (r)
        return r;
    log_init("tunnel", cfg.log_level);
    /* The soft open-files limit: the hard one, at most 4096. libwebsockets
     * sizes its fd table from it and Debian's 4.1.6 scans all of that table
     * each time it closes one of its sockets (a smaller fd_limit_per_thread
     * makes it scan on every event; local connections are in our epoll set,
     * evset.h, and never pay it); 4096 covers 256 streams per tunnel many
     * times. */
    unsigned long nofile_was, nofile;
    if (fdlimit_raise(4096, &nofile_was, &nofile) < 0)
        log_warnx("open files: could not set the limit (it is %lu)", nofile_was);
    else
        log_info("open files: limit %lu (was %lu)", nofile, nofile_was);
    c.cfg = &cfg;
    c.stdout_tty = isatty(STDOUT_FILENO);
    if (local_resolve(&c) < 0)
        return EXIT_USAGE;
    lws_set_log_level(cfg.log_level >= LOG_DEBUG ? (LLL_ERR | LLL_WARN) : 0, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = &c;
    info.pt_serv_buf_size = 64 * 1024;
    info.options = 0; /* TLS is ours (conn.c): lws needs no SSL context */
    c.ctx = lws_create_context(&info);
    if (!c.ctx) {
        fprintf(stderr, "tunnel: could not create the event loop\n");
        return EXIT_FATAL;
    }
    c.vh = lws_get_vhost_by_name(c.ctx, "default");
    c.txbuf = malloc(CLI_TXBUF);
    c.rxbuf = malloc(CLI_RXBUF);
    c.evset_obj.kind = CLI_RAW_EVSET;
    if (c.vh)
        c.evset = evset_new(c.ctx, c.vh, WARREN_CLI_RAW_PROTOCOL, &c.evset_obj);
    if (c.evset)
        evset_on_turn_end(c.evset, turn_end, &c);
    if (!c.vh || !c.txbuf || !c.rxbuf || !c.evset || setup_signals(&c) < 0) {
        fprintf(stderr, "tunnel: could not set up the event loop\n");
        lws_context_destroy(c.ctx);
        evset_free(c.evset);
        return EXIT_FATAL;
    }
    if (!cfg.json)
        fprintf(stderr, "tunnel: connecting to %s\n", cfg.server_url);
    client_connect(&c);
    while (!c.done)
        if (lws_service(c.ctx, 0) < 0)
            break;
    lws_sul_cancel(&c.retry_sul);
    lws_sul_cancel(&c.stop_sul);
    lws_sul_cancel(&c.ping_sul);
    lws_sul_cancel(&c.flush_sul);
    lws_sul_cancel(&c.trim_sul);
    lws_sul_cancel(&c.conn.deadline);
    lwswake_cancel(&c.conn.wake);
    mux_free(c.mux);
    c.mux = NULL;
    lws_context_destroy(c.ctx);
    evset_free(c.evset);
    close(c.sigpipe[1]);
    conn_free(&c);
    free(c.txbuf);
    free(c.rxbuf);
    wsparse_free(c.wp);
    free(c.ctl_out);
    out_stopped(&c);
    sodium_memzero(&cfg, sizeof cfg);
    return c.exit_code;
}
