/*
 * client: the CLI side of the control WebSocket.
 *
 * Connect to each resolved address of the server in turn (TLS when the URL
 * is wss://); libwebsockets carries the connection as a raw socket and we
 * speak WebSocket on it ourselves (common/wsframe.h: the library's client
 * parses received bytes one at a time, which bounded uploads): send the
 * upgrade request, check the 101, then send HELLO (with the name and
 * reconnect token once we have them); WELCOME brings the session online,
 * ERROR ends the process with the documented exit code (or retries, for
 * transient refusals). When the connection drops, every stream is reset (the
 * edge does the same on its side) and we reconnect after 0.5 s doubling to
 * 30 s, with jitter. Liveness: a ping after 15 s without anything received,
 * the connection is given up after 45 s of silence; the edge's pings are
 * answered. Invariants: writes only from WRITEABLE, one write per callback
 * (all pending frames batched into it); messages reassembled with a bound.
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
#include "wsframe.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define PING_IDLE_MS 15000
#define DEAD_IDLE_MS 45000

static void want_write(struct cli *c)
{
    conn_want_write(c);
}

static void ops_want_write(void *ud)
{
    want_write(ud);
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
    c->state = C_CONNECTING;
    c->hello_sent = false;
    snprintf(c->host_hdr, sizeof c->host_hdr, "%s", host);
    log_debug("connecting to %s (%s)", cfg->server_url, ip);
    int r = conn_open(c, sa, c->server_addrs.len[c->server_idx]);
    if (r < 0) {
        /* not even started: try the next address, or wait and retry */
        if (++c->server_idx < c->server_addrs.n)
            connect_one(c);
        else
            schedule_retry(c, "could not connect to the server");
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
    want_write(c);
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
                            .tx_buf = 256 * 1024,
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

/* Give up on this connection: lws closes it and on_closed follows. */
static void drop(struct cli *c, const char *why)
{
    if (why && !c->conn.why[0])
        snprintf(c->conn.why, sizeof c->conn.why, "%s", why);
    conn_close(c);
}

/* Queue a close frame (code, reason); written before anything else. */
static void send_close(struct cli *c, uint16_t code, const char *reason)
{
    if (c->close_queued)
        return;
    size_t rl = strlen(reason);
    if (rl > 120)
        rl = 120;
    c->close_payload[0] = (uint8_t)(code >> 8);
    c->close_payload[1] = (uint8_t)code;
    memcpy(c->close_payload + 2, reason, rl);
    c->close_len = 2 + rl;
    c->close_queued = true;
    want_write(c);
}

static void protocol_error(struct cli *c, const char *why)
{
    log_warnx("protocol error from the server (%s): reconnecting", why);
    send_close(c, WS_CLOSE_PROTOCOL, "protocol error");
}

static int on_message(void *ud, uint8_t opcode, const uint8_t *p, size_t len)
{
    struct cli *c = ud;
    switch (opcode) {
    case WS_PING:
        memcpy(c->pong_payload, p, len);
        c->pong_len = len;
        c->pong_pending = true;
        want_write(c);
        return 0;
    case WS_PONG:
        return 0;
    case WS_CLOSE: {
        unsigned code = len >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005;
        log_debug("server closed the tunnel with code %u", code);
        c->peer_closed = true;
        if (c->close_sent)
            drop(c, NULL); /* it answered ours: done */
        else
            send_close(c, len >= 2 ? (uint16_t)code : WS_CLOSE_NORMAL, "");
        return 0;
    }
    case WS_TEXT:
        if (!c->stop && !c->peer_closed)
            handle_control(c, (const char *)p, len);
        return 0;
    default: /* WS_BINARY */
        if (c->stop || c->peer_closed || c->close_queued)
            return 0; /* stopping: streams are already reset, only the close is left */
        if (c->state != C_ONLINE || !c->mux || mux_input(c->mux, p, len) < 0)
            protocol_error(c, "bad frame");
        return 0;
    }
}

/* WebSocket bytes from the edge: messages to on_message, a violation closes. */
static void feed_ws(struct cli *c, const uint8_t *in, size_t len)
{
    int r = wsparse_feed(c->wp, in, len, on_message, c);
    if (r == -WS_CLOSE_TOO_BIG) {
        log_warnx("server sent an oversized message: reconnecting");
        send_close(c, WS_CLOSE_TOO_BIG, "message too large");
    } else if (r < 0) {
        protocol_error(c, "bad WebSocket framing");
    }
}

/* Bytes of the upgrade response; the rest after the head is WebSocket. */
static void on_handshake_rx(struct cli *c, const uint8_t *in, size_t len)
{
    size_t before = c->hslen, room = WSHS_HEAD_MAX - c->hslen;
    size_t take = len < room ? len : room;
    memcpy(c->hsbuf + c->hslen, in, take);
    c->hslen += take;
    long end = wshs_head_end(c->hsbuf, c->hslen);
    if (end == 0)
        return;
    char err[160];
    int status = 0;
    if (end < 0 || wshs_check_response(c->hsbuf, (size_t)end, c->hs_key, WARREN_CLI_WS_PROTOCOL,
                                       &status, err, sizeof err) < 0) {
        if (end < 0)
            snprintf(err, sizeof err, "the server's handshake answer is too long");
        log_warnx("%s", err);
        drop(c, err);
        return;
    }
    /* Whatever followed the head in this read is already WebSocket. */
    size_t used = (size_t)end - before; /* bytes of this read that were head */
    c->state = C_UPGRADED;
    c->hslen = 0;
    conn_handshake_done(c);
    if (send_hello(c) < 0) {
        drop(c, "out of memory");
        return;
    }
    if (len > used)
        feed_ws(c, in + used, len - used);
}

static size_t next_frame(void *ud, uint8_t *out, size_t cap)
{
    return mux_next_frame(ud, out, cap);
}

/* The next bytes to send: the handshake request, or every pending frame in
 * order (control frames, the close, HELLO, then as many mux frames as fit). */
size_t client_conn_fill(struct cli *c, uint8_t *out, size_t cap, bool *more)
{
    size_t pos = 0;
    *more = false;
    if (c->state == C_UPGRADING) {
        if (c->hs_sent)
            return 0;
        c->hs_sent = true;
        pos = wshs_request((char *)out, cap, c->cfg->server_path, c->host_hdr, c->hs_key,
                           WARREN_CLI_WS_PROTOCOL);
        if (!pos)
            drop(c, "the server URL is too long");
        return pos;
    }
    if (c->state < C_UPGRADED)
        return 0;
    if (c->pong_pending) {
        pos +=
            wsframe_build(out + pos, cap - pos, WS_PONG, c->pong_payload, c->pong_len, &c->masks);
        c->pong_pending = false;
    }
    if (c->ping_due) {
        pos += wsframe_build(out + pos, cap - pos, WS_PING, NULL, 0, &c->masks);
        c->ping_due = false;
    }
    if (c->close_queued) {
        if (!c->close_sent) {
            pos += wsframe_build(out + pos, cap - pos, WS_CLOSE, c->close_payload, c->close_len,
                                 &c->masks);
            c->close_sent = true;
        } else if (c->peer_closed) {
            drop(c, NULL); /* both closes exchanged */
        }
        /* after our close is out: wait for the server's (or the stop deadline) */
        *more = c->peer_closed;
        return pos;
    }
    if (c->ctl_out) {
        size_t n = strlen(c->ctl_out);
        pos +=
            wsframe_build(out + pos, cap - pos, WS_TEXT, (const uint8_t *)c->ctl_out, n, &c->masks);
        sodium_memzero(c->ctl_out, n);
        free(c->ctl_out);
        c->ctl_out = NULL;
    }
    if (c->mux && c->state == C_ONLINE && !c->stop) {
        pos += wsframe_batch(out + pos, cap - pos, FRAME_MAX_LEN, &c->masks, next_frame, c->mux);
        *more = mux_wants_write(c->mux);
    }
    return pos;
}

/* Every 5 s: ping after 15 s of silence, give up after 45 s. */
static void liveness_cb(lws_sorted_usec_list_t *sul)
{
    struct cli *c = lws_container_of(sul, struct cli, ping_sul);
    if (c->conn.st != CONN_OPEN || c->state < C_UPGRADED)
        return;
    uint64_t idle = cli_now_ms() - c->last_rx_ms;
    if (idle >= DEAD_IDLE_MS) {
        char why[80];
        snprintf(why, sizeof why, "no answer from the server for %u s", DEAD_IDLE_MS / 1000);
        drop(c, why);
        return;
    }
    if (idle >= PING_IDLE_MS) {
        c->ping_due = true;
        want_write(c);
    }
    lws_sul_schedule(c->ctx, 0, &c->ping_sul, liveness_cb, 5 * LWS_US_PER_SEC);
}

/* The connection is gone: reset streams, then reconnect or stop. */
static void on_closed(struct cli *c, const char *why)
{
    lws_sul_cancel(&c->ping_sul);
    mux_free(c->mux); /* local connections learn RST_SESSION_GONE */
    c->mux = NULL;
    wsparse_free(c->wp);
    c->wp = NULL;
    if (c->stop) {
        finish(c, c->exit_code);
        return;
    }
    if (c->state == C_ONLINE)
        log_info("tunnel=%s connection lost: %s", c->name, why);
    schedule_retry(c, why);
}

void client_conn_up(struct cli *c)
{
    if (c->stop) {
        drop(c, NULL);
        return;
    }
    c->state = C_UPGRADING;
    c->hs_sent = false;
    c->hslen = 0;
    c->pong_pending = c->ping_due = false;
    c->close_queued = c->close_sent = c->peer_closed = false;
    c->last_rx_ms = cli_now_ms();
    wshs_new_key(c->hs_key);
    wsparse_free(c->wp);
    c->wp = wsparse_new(false, FRAME_MAX_LEN);
    if (!c->wp) {
        drop(c, "out of memory");
        return;
    }
    wsparse_keep_buffer(c->wp, true); /* one connection, often busy */
    lws_sul_schedule(c->ctx, 0, &c->ping_sul, liveness_cb, 5 * LWS_US_PER_SEC);
    want_write(c);
}

void client_conn_rx(struct cli *c, const uint8_t *p, size_t n)
{
    c->last_rx_ms = cli_now_ms();
    if (c->state == C_UPGRADING)
        on_handshake_rx(c, p, n);
    else
        feed_ws(c, p, n);
}

void client_conn_down(struct cli *c, bool was_open, const char *why)
{
    if (c->stop) {
        on_closed(c, why);
        return;
    }
    /* never connected: the next address of the server, if there is one */
    if (!was_open && c->state == C_CONNECTING && ++c->server_idx < c->server_addrs.n) {
        connect_one(c);
        return;
    }
    on_closed(c, why);
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
    if (c->conn.st == CONN_OPEN && c->state >= C_UPGRADED) {
        send_close(c, WS_CLOSE_NORMAL, "bye");
        lws_sul_schedule(c->ctx, 0, &c->stop_sul, stop_deadline, 2 * LWS_US_PER_SEC);
    } else {
        conn_close(c);
        finish(c, EXIT_OK);
    }
}
