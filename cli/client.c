/*
 * client: the CLI side of the control WebSocket.
 *
 * Connect to each resolved address of the server in turn; on the first
 * ESTABLISHED send HELLO (with the name and reconnect token once we have
 * them); WELCOME brings the session online, ERROR ends the process with the
 * documented exit code (or retries, for transient refusals). When the
 * connection drops, every stream is reset (the edge does the same on its
 * side) and we reconnect after 0.5 s doubling to 30 s, with jitter.
 * Invariants as on the edge: writes only from WRITEABLE, one per callback;
 * messages reassembled with a bound.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "addr.h"
#include "cli.h"
#include "ctl.h"
#include "frame.h"
#include "log.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

static void ops_want_write(void *ud)
{
    struct cli *c = ud;
    if (c->ws)
        lws_callback_on_writable(c->ws);
}

static int ops_on_open(void *ud, mux_stream *st, const struct frame_open *o)
{
    return local_on_open(ud, st, o);
}

static void ops_readable(void *ud, mux_stream *st)
{
    local_stream_readable(ud);
}

static void ops_writable(void *ud, mux_stream *st)
{
    local_stream_writable(ud);
}

static void ops_closed(void *ud, mux_stream *st, uint16_t code)
{
    local_stream_closed(ud, code);
}

static const struct mux_ops cli_mux_ops = {ops_want_write, ops_on_open, ops_readable, ops_writable,
                                           ops_closed};

static int resolve_server(struct cli *c)
{
    const struct cli_config *cfg = c->cfg;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->server_port);
    int r = getaddrinfo(cfg->server_host, port, &hints, &res);
    if (r != 0) {
        log_warnx("server %s: %s", cfg->server_host, gai_strerror(r));
        return -1;
    }
    c->server_addrs.n = 0;
    for (struct addrinfo *ai = res; ai && c->server_addrs.n < CLI_MAX_ADDRS; ai = ai->ai_next) {
        memcpy(&c->server_addrs.a[c->server_addrs.n], ai->ai_addr, ai->ai_addrlen);
        c->server_addrs.len[c->server_addrs.n++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    c->server_idx = 0;
    return c->server_addrs.n ? 0 : -1;
}

static void retry_cb(lws_sorted_usec_list_t *sul)
{
    struct cli *c = lws_container_of(sul, struct cli, retry_sul);
    if (!c->stop)
        client_connect(c);
}

/* 0.5 s doubling to 30 s; the delay is drawn between half and all of that. */
static void schedule_retry(struct cli *c, const char *why)
{
    uint64_t cap = BACKOFF_MIN_MS;
    for (unsigned i = 0; i < c->attempt && cap < BACKOFF_MAX_MS; i++)
        cap *= 2;
    if (cap > BACKOFF_MAX_MS)
        cap = BACKOFF_MAX_MS;
    uint64_t delay = cap / 2 + randombytes_uniform((uint32_t)(cap / 2 + 1));
    c->attempt++;
    c->state = C_WAIT;
    out_reconnecting(c, c->attempt, delay, why);
    lws_sul_schedule(c->ctx, 0, &c->retry_sul, retry_cb, (lws_usec_t)delay * 1000);
}

static void connect_one(struct cli *c)
{
    const struct cli_config *cfg = c->cfg;
    char ip[ADDR_TEXT_MAX], host[300];
    struct sockaddr *sa = (struct sockaddr *)&c->server_addrs.a[c->server_idx];
    addr_format_ip(sa, ip, sizeof ip);
    bool default_port = cfg->server_port == (cfg->tls ? 443u : 80u);
    bool v6 = strchr(cfg->server_host, ':') != NULL; /* an IPv6 literal: [..] in Host */
    if (default_port)
        snprintf(host, sizeof host, v6 ? "[%s]" : "%s", cfg->server_host);
    else
        snprintf(host, sizeof host, v6 ? "[%s]:%u" : "%s:%u", cfg->server_host, cfg->server_port);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->ctx;
    ci.vhost = c->vh;
    ci.address = ip;
    ci.port = (int)cfg->server_port;
    ci.path = cfg->server_path;
    ci.host = host;
    ci.origin = host;
    ci.protocol = WARREN_CLI_WS_PROTOCOL;
    ci.local_protocol_name = WARREN_CLI_WS_PROTOCOL;
    ci.ssl_connection = cfg->tls ? LCCSCF_USE_SSL : 0;
    ci.retry_and_idle_policy = &c->retry;
    ci.pwsi = &c->ws;
    c->state = C_CONNECTING;
    c->hello_sent = false;
    log_debug("connecting to %s (%s)", cfg->server_url, ip);
    if (!lws_client_connect_via_info(&ci)) {
        c->ws = NULL;
        /* the connection error callback may or may not have run: try the next address */
        if (c->state == C_CONNECTING) {
            if (++c->server_idx < c->server_addrs.n)
                connect_one(c);
            else
                schedule_retry(c, "could not connect to the server");
        }
    }
}

void client_connect(struct cli *c)
{
    if (resolve_server(c) < 0) {
        schedule_retry(c, "could not resolve the server name");
        return;
    }
    connect_one(c);
}

static int send_hello(struct cli *c)
{
    struct ctl_hello h;
    memset(&h, 0, sizeof h);
    h.version = CTL_VERSION;
    snprintf(h.kind, sizeof h.kind, "http");
    snprintf(h.name, sizeof h.name, "%s", c->name[0] ? c->name : c->cfg->subdomain);
    snprintf(h.key, sizeof h.key, "%s", c->cfg->key);
    snprintf(h.reconnect_token, sizeof h.reconnect_token, "%s", c->token);
    snprintf(h.client, sizeof h.client, "tunnel/" WARREN_VERSION);
    free(c->ctl_out);
    c->ctl_out = ctl_hello_encode(&h);
    sodium_memzero(&h, sizeof h);
    if (!c->ctl_out)
        return -1;
    c->state = C_HELLO;
    lws_callback_on_writable(c->ws);
    return 0;
}

static int exit_code_for(const char *code)
{
    if (strcmp(code, "name_in_use") == 0)
        return EXIT_NAME_IN_USE;
    if (strcmp(code, "invalid_name") == 0)
        return EXIT_INVALID_NAME;
    if (strcmp(code, "auth_failed") == 0)
        return EXIT_AUTH_FAILED;
    if (strcmp(code, "version_unsupported") == 0)
        return EXIT_VERSION;
    if (strcmp(code, "too_many_tunnels") == 0)
        return EXIT_TOO_MANY_TUNNELS;
    if (strcmp(code, "internal") == 0 || strcmp(code, "timeout") == 0 ||
        strcmp(code, "unavailable") == 0)
        return -1; /* transient: retry */
    return EXIT_REFUSED;
}

static void finish(struct cli *c, int code)
{
    c->exit_code = code;
    c->stop = true;
    c->done = true;
    lws_cancel_service(c->ctx);
}

static void handle_control(struct cli *c, const char *p, size_t len)
{
    struct ctl_server m;
    char err[200];
    if (ctl_server_parse(p, len, &m, err, sizeof err) < 0) {
        log_warnx("server sent a bad control message: %s", err);
        return;
    }
    if (m.type == CTL_TOKEN) {
        snprintf(c->token, sizeof c->token, "%s", m.reconnect_token);
        return;
    }
    if (m.type == CTL_ERROR) {
        int code = exit_code_for(m.code);
        out_error(c, m.code, m.message);
        if (code >= 0)
            finish(c, code);
        return; /* transient: the server closes; we retry */
    }
    if (c->state != C_HELLO)
        return;
    snprintf(c->name, sizeof c->name, "%s", m.name);
    snprintf(c->token, sizeof c->token, "%s", m.reconnect_token);
    snprintf(c->url, sizeof c->url, "%s", m.url);
    struct mux_config mc = {.window = m.window ? m.window : 256 * 1024,
                            .tx_buf = 64 * 1024,
                            .max_streams = m.max_streams ? m.max_streams : 256,
                            .odd_ids = false};
    mux_free(c->mux);
    c->mux = mux_new(&mc, &cli_mux_ops, c);
    if (!c->mux) {
        finish(c, EXIT_FATAL);
        return;
    }
    c->state = C_ONLINE;
    c->attempt = 0;
    c->ever_online = true;
    log_info("tunnel=%s online", c->name);
    out_online(c);
}

static void handle_message(struct cli *c, const uint8_t *p, size_t len, bool binary)
{
    if (c->stop)
        return; /* stopping: streams are already reset, only the close is left */
    if (!binary) {
        handle_control(c, (const char *)p, len);
        return;
    }
    if (c->state != C_ONLINE || !c->mux || mux_input(c->mux, p, len) < 0) {
        log_warnx("protocol error from the server: reconnecting");
        lws_close_reason(c->ws, LWS_CLOSE_STATUS_PROTOCOL_ERR, NULL, 0);
        lws_set_timeout(c->ws, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

static void on_receive(struct cli *c, struct lws *wsi, const uint8_t *in, size_t len)
{
    bool first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
    bool binary = lws_frame_is_binary(wsi);
    if (first && final && !c->rxmsg) {
        handle_message(c, in, len, binary);
        return;
    }
    if (first)
        c->rxlen = 0;
    if (!c->rxmsg && !(c->rxmsg = malloc(FRAME_MAX_LEN)))
        return;
    if (c->rxlen + len > (binary ? FRAME_MAX_LEN : CTL_MAX_LEN)) {
        log_warnx("server sent an oversized message: reconnecting");
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    memcpy(c->rxmsg + c->rxlen, in, len);
    c->rxlen += len;
    if (final) {
        handle_message(c, c->rxmsg, c->rxlen, binary);
        c->rxlen = 0;
    }
}

/*
 * Frame one binary WebSocket message ourselves: header (2-14 bytes) written
 * just before `payload`, payload masked in place with a fresh random key.
 * lws's client masks byte by byte and sends 4 KiB at a time; doing it here
 * and writing with LWS_WRITE_RAW costs about a tenth of that
 * (docs/benchmarks.md). Returns the start of the frame and its length.
 */
#define WS_HDR_MAX 14

static uint8_t *ws_client_frame(uint8_t *payload, size_t len, size_t *total)
{
    uint8_t key[4];
    randombytes_buf(key, sizeof key);
    size_t hl = 2 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + 4;
    uint8_t *h = payload - hl;
    h[0] = 0x82; /* FIN, binary */
    if (len < 126) {
        h[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        h[1] = 0x80 | 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(h + hl - 4, key, 4);
    uint64_t k8;
    uint8_t k8b[8];
    for (int i = 0; i < 8; i++)
        k8b[i] = key[i & 3];
    memcpy(&k8, k8b, 8);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, payload + i, 8);
        w ^= k8;
        memcpy(payload + i, &w, 8);
    }
    for (; i < len; i++)
        payload[i] ^= key[i & 3];
    *total = hl + len;
    return h;
}

static int on_writeable(struct cli *c, struct lws *wsi)
{
    if (c->ctl_out) {
        size_t n = strlen(c->ctl_out);
        memcpy(c->txbuf + LWS_PRE, c->ctl_out, n);
        sodium_memzero(c->ctl_out, n);
        free(c->ctl_out);
        c->ctl_out = NULL;
        if (lws_write(wsi, c->txbuf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->stop) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
        return -1;
    }
    if (!c->mux || c->state != C_ONLINE)
        return 0;
    uint8_t *payload = c->txbuf + LWS_PRE + WS_HDR_MAX;
    size_t n = mux_next_frame(c->mux, payload, FRAME_MAX_LEN);
    if (n == 0)
        return 0;
    size_t total;
    uint8_t *frame = ws_client_frame(payload, n, &total);
    if (lws_write(wsi, frame, total, LWS_WRITE_RAW) < (int)total)
        return -1;
    if (mux_wants_write(c->mux))
        lws_callback_on_writable(wsi);
    return 0;
}

/* The connection is gone: reset streams, then reconnect or stop. */
static void on_closed(struct cli *c, const char *why)
{
    c->ws = NULL;
    mux_free(c->mux); /* local connections learn RST_SESSION_GONE */
    c->mux = NULL;
    free(c->rxmsg);
    c->rxmsg = NULL;
    c->rxlen = 0;
    if (c->stop) {
        finish(c, c->exit_code);
        return;
    }
    if (c->state == C_ONLINE)
        log_info("tunnel=%s connection lost: %s", c->name, why);
    schedule_retry(c, why);
}

int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct cli *c = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char why[200];
        snprintf(why, sizeof why, "could not connect to %.80s: %.60s", c->cfg->server_url,
                 in ? (const char *)in : "error");
        c->ws = NULL;
        if (c->stop) {
            finish(c, c->exit_code);
            return 0;
        }
        if (c->state == C_CONNECTING && ++c->server_idx < c->server_addrs.n) {
            connect_one(c);
            return 0;
        }
        on_closed(c, why);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->ws = wsi;
        if (c->stop)
            return -1;
        return send_hello(c);
    case LWS_CALLBACK_CLIENT_RECEIVE:
        on_receive(c, wsi, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const uint8_t *b = in;
            log_debug("server closed the tunnel with code %u", (unsigned)(b[0] << 8 | b[1]));
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        on_closed(c, "the server closed the connection");
        return 0;
    default:
        return 0;
    }
}

static void stop_deadline(lws_sorted_usec_list_t *sul)
{
    struct cli *c = lws_container_of(sul, struct cli, stop_sul);
    finish(c, c->exit_code);
}

void client_stop(struct cli *c)
{
    if (c->stop)
        return;
    c->stop = true;
    c->exit_code = EXIT_OK;
    lws_sul_cancel(&c->retry_sul);
    mux_free(c->mux); /* resets every stream; the close tells the edge the rest */
    c->mux = NULL;
    if (c->ws) {
        lws_callback_on_writable(c->ws);
        lws_sul_schedule(c->ctx, 0, &c->stop_sul, stop_deadline, 2 * LWS_US_PER_SEC);
    } else {
        finish(c, EXIT_OK);
    }
}
