/*
 * session: the edge side of a tunnel's control WebSocket.
 *
 * The public listener recognises the upgrade to /_tunnel (visitor.c) and
 * hands the socket here; from then on the WebSocket is ours: the 101 goes
 * out first, received frames are parsed in bulk and unmasked in place
 * (wsparse_feed_inplace), and several mux frames leave in one write
 * (wsframe_batch). libwebsockets only carries the socket as a raw file: its
 * own server path unmasked four bytes at a time and copied every message
 * (docs/benchmarks.md).
 *
 * States: HELLO (waiting for the handshake, deadline hello-timeout), ACTIVE
 * (name held, mux running), CLOSING (a close code is set; pending control
 * text is written first, then the close frame, then the connection is
 * closed). Liveness: a ping after ping_interval without anything received,
 * the connection is dropped after three intervals of silence; pings are
 * answered. Invariants: only WRITEABLE writes, one write per callback; a
 * partial write keeps its rest (pend) and nothing new is produced until it
 * is out; messages are bounded by FRAME_MAX_LEN / CTL_MAX_LEN; the session
 * is freed only when lws closes its raw file (RAW_CLOSE_FILE).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "ctl.h"
#include "edge.h"
#include "evset.h"
#include "fleet.h"
#include "ipkey.h"
#include "log.h"
#include "lwsraw.h"
#include "lwswake.h"
#include "wsframe.h"
#include "names.h"
#include "quota.h"
#include "registry.h"
#include "session.h"
#include "token.h"
#include "visitor.h"

#define CTL_QUEUE_MAX 8
#define TOKEN_LIFETIME_S (24 * 3600)
#define TOKEN_REFRESH_S 3600

enum session_state { S_HELLO, S_CLAIMING, S_ACTIVE, S_CLOSING };

struct session {
    struct raw_obj obj; /* RAW_SESSION; first: edge.c dispatches on it */
    struct edge *e;
    struct lws *wsi;
    int fd;
    wsparse *wp;
    struct lwswake wake;
    uint64_t last_rx_ms, last_ping_ms;
    uint64_t hello_deadline_ms, token_due_ms; /* checked by session_tick */
    uint8_t *pend; /* unsent bytes: the 101, or the rest of a partial write */
    size_t pend_off, pend_len;
    bool pong_pending, ping_due, close_sent, kill;
    uint8_t pong[125];
    size_t pong_len;
    struct session *prev, *next;
    enum session_state state;
    char name[NAME_MAX_LEN + 1];
    char peer[64];
    mux *mux;
    char *ctl[CTL_QUEUE_MAX]; /* control texts waiting to be written */
    unsigned nctl;
    int close_code;
    char close_reason[96];
    struct fleet_wait *claim; /* the fleet is being asked for the name */
    bool welcomed;            /* WELCOME went out: the name is really ours */
    char client[64];
    struct ipkey key; /* the client address --max-tunnels-per-ip counts */
    bool counted;     /* this session holds one of its address's tunnels */
    bool kicked;      /* on e->kicks */
    struct session *kick_next;
};

static void want_write(struct session *s)
{
    lwswake_request(&s->wake, s->wsi);
}

/* The mux has frames to send. Asked during the visitors' turn (a visitor's
 * request), they are written at its end (session_kick_all); else on the next
 * WRITEABLE. */
static void ops_want_write(void *ud)
{
    struct session *s = ud;
    if (evset_in_turn(s->e->evset) && s->wsi && !s->kill) {
        if (!s->kicked) {
            s->kicked = true;
            s->kick_next = s->e->kicks;
            s->e->kicks = s;
        }
        return;
    }
    want_write(s);
}

/* A session's streams belong to a visitor of this edge, or to a bridge that
 * carries a visitor forwarded by a peer (fleet.c); both start with a raw_obj. */
static bool is_visitor(void *ud)
{
    return ((struct raw_obj *)ud)->kind == RAW_VISITOR;
}

static void ops_readable(void *ud, mux_stream *st)
{
    if (is_visitor(ud))
        visitor_stream_readable(ud);
    else
        fleet_bridge_readable(ud);
}

static void ops_writable(void *ud, mux_stream *st)
{
    if (is_visitor(ud))
        visitor_stream_writable(ud);
    else
        fleet_bridge_writable(ud);
}

static void ops_closed(void *ud, mux_stream *st, uint16_t code)
{
    if (is_visitor(ud))
        visitor_stream_closed(ud, code);
    else
        fleet_bridge_closed(ud, code);
}

static const struct mux_ops session_mux_ops = {
    .want_write = ops_want_write,
    .on_open = NULL, /* only the edge opens streams */
    .on_readable = ops_readable,
    .on_writable = ops_writable,
    .on_closed = ops_closed,
};

const char *session_name(const struct session *s)
{
    return s->name;
}

static int queue_ctl(struct session *s, char *text)
{
    if (!text || s->nctl == CTL_QUEUE_MAX) {
        free(text);
        return -ENOMEM;
    }
    s->ctl[s->nctl++] = text;
    want_write(s);
    return 0;
}

void session_close(struct session *s, int code, const char *reason)
{
    if (s->state == S_CLOSING)
        return;
    s->state = S_CLOSING;
    s->close_code = code;
    snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
    want_write(s);
}

/* Refuse the handshake: an ERROR message, then close. */
static void refuse(struct session *s, const char *code, const char *message, int close_code)
{
    log_info("tunnel refused peer=%s code=%s: %s", s->peer, code, message);
    queue_ctl(s, ctl_error_encode(code, message));
    session_close(s, close_code, code);
}

static uint64_t unix_now(void)
{
    return (uint64_t)time(NULL);
}

static int issue_token(struct session *s, char *out, size_t cap)
{
    return token_issue(s->e->cfg->secret, s->name, unix_now() + TOKEN_LIFETIME_S, out, cap);
}

static void token_refresh(struct session *s)
{
    char tok[TOKEN_MAX_LEN];
    if (issue_token(s, tok, sizeof tok) == 0)
        queue_ctl(s, ctl_token_encode(tok));
}

/* Pick the name: asked for, reclaimed with a token, or random. 0 or refused.
 * *owner_out: the client proved with its token that the name is its own. */
static int choose_name(struct session *s, const struct ctl_hello *h, bool *owner_out)
{
    struct edge *e = s->e;
    const struct config *c = e->cfg;
    char tok_name[64] = "";
    bool owner = false;
    uint64_t now = edge_now_ms();
    char msg[256];

    if (h->reconnect_token[0]) {
        int r = token_verify(c->secret, h->reconnect_token, strlen(h->reconnect_token), unix_now(),
                             tok_name, sizeof tok_name);
        if (r == 0)
            owner = !h->name[0] || strcmp(tok_name, h->name) == 0;
        else
            log_debug("tunnel peer=%s: reconnect token not accepted (%s)", s->peer,
                      r == -ETIMEDOUT ? "expired"
                      : r == -EBADMSG ? "bad signature"
                                      : "malformed");
    }
    const char *want = h->name[0] ? h->name : (owner ? tok_name : NULL);
    if (want) {
        int r = name_validate(want, strlen(want));
        if (r < 0) {
            name_explain(want, strlen(want), msg, sizeof msg);
            refuse(s, "invalid_name", msg, LWS_CLOSE_STATUS_POLICY_VIOLATION);
            return -1;
        }
        struct session *displaced = NULL;
        r = registry_claim(e->reg, want, s, owner, now, &displaced);
        if (r == -EADDRINUSE) {
            snprintf(msg, sizeof msg,
                     "name \"%s\" is in use by another tunnel (a name stays reserved for its "
                     "owner for %u s after a disconnect)",
                     want, c->grace_period);
            refuse(s, "name_in_use", msg, LWS_CLOSE_STATUS_POLICY_VIOLATION);
            return -1;
        }
        if (r < 0) {
            refuse(s, "internal", "out of memory", LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
            return -1;
        }
        snprintf(s->name, sizeof s->name, "%s", want);
        *owner_out = owner;
        if (displaced) {
            log_info("tunnel=%s replaced by a new connection of its owner", want);
            displaced->name[0] = 0; /* the name is no longer the old session's */
            session_close(displaced, 4000, "replaced by a new connection");
        }
        return 0;
    }
    for (int i = 0; i < 32; i++) {
        char cand[32];
        name_random(cand, sizeof cand);
        if (registry_taken(e->reg, cand, now))
            continue;
        struct session *displaced = NULL;
        if (registry_claim(e->reg, cand, s, false, now, &displaced) == 0) {
            snprintf(s->name, sizeof s->name, "%s", cand);
            *owner_out = false;
            return 0;
        }
    }
    refuse(s, "internal", "could not find a free random name",
           LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
    return -1;
}

/* The name is ours: start the mux and send WELCOME. */
static void welcome(struct session *s)
{
    struct edge *e = s->e;
    const struct config *c = e->cfg;
    struct mux_config mc = {
        .window = c->window, .tx_buf = 64 * 1024, .max_streams = c->max_streams, .odd_ids = true};
    s->mux = mux_new(&mc, &session_mux_ops, s);
    struct ctl_server w;
    memset(&w, 0, sizeof w);
    snprintf(w.name, sizeof w.name, "%s", s->name);
    config_public_url(c, s->name, w.url, sizeof w.url);
    if (!s->mux || issue_token(s, w.reconnect_token, sizeof w.reconnect_token) < 0) {
        registry_release(e->reg, s->name, s, 0);
        s->name[0] = 0;
        refuse(s, "internal", "out of memory", LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
        return;
    }
    w.max_streams = c->max_streams;
    w.window = c->window;
    w.max_frame = FRAME_MAX_PAYLOAD;
    w.ping_interval = c->ping_interval;
    w.grace_period = c->grace_period;
    if (queue_ctl(s, ctl_welcome_encode(&w)) < 0) {
        session_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal");
        return;
    }
    s->state = S_ACTIVE;
    s->welcomed = true;
    s->token_due_ms = edge_now_ms() + (uint64_t)TOKEN_REFRESH_S * 1000;
    e->stats.tunnels_opened++;
    log_info("tunnel=%s online peer=%s url=%s client=\"%s\"", s->name, s->peer, w.url, s->client);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The fleet decided our claim. */
static void on_claim(void *ud, int result)
{
    struct session *s = ud;
    struct edge *e = s->e;
    char msg[256];
    s->claim = NULL;
    if (s->state != S_CLAIMING) {
        /* the session is closing: give the name back, without a reservation */
        if (s->name[0] && !s->welcomed) {
            registry_release(e->reg, s->name, s, 0);
            s->name[0] = 0;
        }
        return;
    }
    if (result == 0) {
        welcome(s);
        return;
    }
    if (result == -EADDRINUSE)
        snprintf(msg, sizeof msg, "name \"%s\" is in use by a tunnel on another edge of the fleet",
                 s->name);
    else
        snprintf(msg, sizeof msg,
                 "not every edge of the fleet answered about name \"%s\"; retry shortly", s->name);
    registry_release(e->reg, s->name, s, 0);
    s->name[0] = 0;
    refuse(s, result == -EADDRINUSE ? "name_in_use" : "unavailable", msg,
           result == -EADDRINUSE ? LWS_CLOSE_STATUS_POLICY_VIOLATION : (enum lws_close_status)1013);
}

/* The HELLO reclaims, with a valid token, a name this same address holds
 * live here: a reconnect that will replace its old session. */
static bool replaces_own(struct session *s, const struct ctl_hello *h)
{
    char name[64];
    if (!h->reconnect_token[0] ||
        token_verify(s->e->cfg->secret, h->reconnect_token, strlen(h->reconnect_token), unix_now(),
                     name, sizeof name) < 0)
        return false;
    if (h->name[0] && strcmp(h->name, name) != 0)
        return false;
    struct session *old = registry_find(s->e->reg, name);
    return old && old != s && old->counted && ipkey_equal(&old->key, &s->key);
}

/* --max-tunnels-per-ip: take one of the address's tunnels, or refuse. */
static int count_tunnel(struct session *s, const struct ctl_hello *h)
{
    struct edge *e = s->e;
    int r = quota_tunnel_add(e->quota, &s->key, replaces_own(s, h));
    if (r == 0) {
        s->counted = true;
        return 0;
    }
    char msg[256], who[IPKEY_TEXT_MAX];
    ipkey_format(&s->key, who, sizeof who);
    if (r == -EDQUOT) {
        snprintf(msg, sizeof msg,
                 "%s already has %u tunnels on this edge, the most one address may hold "
                 "(--max-tunnels-per-ip %u); close one first",
                 who, quota_tunnels_of(e->quota, &s->key), e->cfg->max_tunnels_per_ip);
        refuse(s, "too_many_tunnels", msg, LWS_CLOSE_STATUS_POLICY_VIOLATION);
    } else {
        refuse(s, "limit_reached", "this edge serves its maximum number of tunnels; try another",
               (enum lws_close_status)1013);
    }
    return -1;
}

static void handle_hello(struct session *s, const char *p, size_t len)
{
    struct edge *e = s->e;
    const struct config *c = e->cfg;
    struct ctl_hello h;
    char err[200];
    int r = ctl_hello_parse(p, len, &h, err, sizeof err);
    if (r == -EPROTONOSUPPORT) {
        refuse(s, "version_unsupported", err, LWS_CLOSE_STATUS_POLICY_VIOLATION);
        return;
    }
    if (r < 0) {
        refuse(s, "bad_hello", err, LWS_CLOSE_STATUS_PROTOCOL_ERR);
        return;
    }
    if (strcmp(h.kind, "http") != 0) {
        refuse(s, "unsupported", "only http tunnels are served by this edge",
               LWS_CLOSE_STATUS_POLICY_VIOLATION);
        return;
    }
    if (auth_required(e->auth)) {
        if (!h.key[0]) {
            refuse(s, "auth_failed", "this edge requires a key (tunnel --key KEY or TUNNEL_KEY)",
                   LWS_CLOSE_STATUS_POLICY_VIOLATION);
            return;
        }
        if (auth_check(e->auth, h.key, strlen(h.key)) != 0) {
            refuse(s, "auth_failed", "the key was not accepted", LWS_CLOSE_STATUS_POLICY_VIOLATION);
            return;
        }
    }
    if (registry_live(e->reg) >= c->max_tunnels) {
        refuse(s, "limit_reached", "this edge serves its maximum number of tunnels; try another",
               (enum lws_close_status)1013);
        return;
    }
    if (count_tunnel(s, &h) < 0)
        return;
    bool owner = false;
    if (choose_name(s, &h, &owner) < 0)
        return;
    snprintf(s->client, sizeof s->client, "%s", h.client);
    if (e->fl) {
        /* a name is unique across the fleet: ask every peer first */
        s->state = S_CLAIMING;
        s->claim = fleet_claim(e, s->name, owner, wall_ms(), on_claim, s);
        if (!s->claim) {
            registry_release(e->reg, s->name, s, 0);
            s->name[0] = 0;
            refuse(s, "internal", "out of memory", LWS_CLOSE_STATUS_UNEXPECTED_CONDITION);
        }
        return;
    }
    welcome(s);
}

static void handle_message(struct session *s, const uint8_t *p, size_t len, bool binary)
{
    if (s->state == S_CLOSING)
        return;
    if (!binary) {
        if (s->state == S_HELLO)
            handle_hello(s, (const char *)p, len);
        else
            session_close(s, LWS_CLOSE_STATUS_PROTOCOL_ERR, "unexpected control message");
        return;
    }
    if (s->state != S_ACTIVE) {
        session_close(s, LWS_CLOSE_STATUS_PROTOCOL_ERR, "frame before hello");
        return;
    }
    if (mux_input(s->mux, p, len) < 0) {
        log_warnx("tunnel=%s protocol error from the client: closing", s->name);
        session_close(s, LWS_CLOSE_STATUS_PROTOCOL_ERR, "mux protocol error");
    }
}

static int on_message(void *ud, uint8_t opcode, const uint8_t *p, size_t len)
{
    struct session *s = ud;
    switch (opcode) {
    case WS_PING:
        memcpy(s->pong, p, len);
        s->pong_len = len;
        s->pong_pending = true;
        want_write(s);
        return 0;
    case WS_PONG:
        return 0;
    case WS_CLOSE:
        if (s->close_sent) {
            s->kill = true; /* the answer to ours */
            return 1;
        }
        session_close(s, len >= 2 ? (p[0] << 8 | p[1]) : WS_CLOSE_NORMAL, "");
        return 0;
    case WS_TEXT:
        if (len > CTL_MAX_LEN) {
            session_close(s, WS_CLOSE_TOO_BIG, "message too large");
            return 1;
        }
        /* fall through */
    default:
        if (s->state != S_CLOSING)
            handle_message(s, p, len, opcode == WS_BINARY);
        return 0;
    }
}

static int on_readable(struct session *s)
{
    struct edge *e = s->e;
    for (int i = 0; i < 4; i++) {
        ssize_t n = read(s->fd, e->rxbuf, EDGE_RXBUF);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n <= 0)
            return -1; /* closed or failed: lws closes, session_free follows */
        s->last_rx_ms = edge_now_ms();
        int r = wsparse_feed_inplace(s->wp, e->rxbuf, (size_t)n, on_message, s);
        if (r < 0) {
            session_close(s, -r, r == -WS_CLOSE_TOO_BIG ? "message too large" : "bad framing");
            return 0;
        }
        if (s->kill)
            return -1;
        if (r > 0 || (size_t)n < EDGE_RXBUF)
            return 0;
    }
    return 0;
}

static size_t next_frame(void *mux_, uint8_t *out, size_t cap)
{
    return mux_next_frame(mux_, out, cap);
}

/* Write pend; 1 when all of it is out, 0 when the socket is full, -1 on error. */
static int flush_pend(struct session *s)
{
    while (s->pend_off < s->pend_len) {
        ssize_t n = write(s->fd, s->pend + s->pend_off, s->pend_len - s->pend_off);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n < 0)
            return -1;
        s->pend_off += (size_t)n;
    }
    free(s->pend);
    s->pend = NULL;
    s->pend_off = s->pend_len = 0;
    return 1;
}

/* Write out[0..n); a rest that does not fit the socket waits in pend. */
static int send_bytes(struct session *s, const uint8_t *out, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(s->fd, out + off, n - off);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    if (off < n) {
        s->pend = malloc(n - off);
        if (!s->pend)
            return -1;
        memcpy(s->pend, out + off, n - off);
        s->pend_off = 0;
        s->pend_len = n - off;
        want_write(s);
    }
    return 0;
}

static int on_writeable(struct session *s)
{
    struct edge *e = s->e;
    if (s->kill)
        return -1;
    if (s->pend) {
        int r = flush_pend(s);
        if (r <= 0) {
            if (r == 0)
                want_write(s);
            return r;
        }
        if (s->close_sent)
            return -1; /* the close frame is out: done */
    }
    uint8_t *out = e->txbuf;
    size_t pos = 0;
    if (s->pong_pending) {
        pos += wsframe_build(out + pos, EDGE_TXBUF - pos, WS_PONG, s->pong, s->pong_len, NULL);
        s->pong_pending = false;
    }
    if (s->ping_due) {
        pos += wsframe_build(out + pos, EDGE_TXBUF - pos, WS_PING, NULL, 0, NULL);
        s->ping_due = false;
    }
    while (s->nctl && EDGE_TXBUF - pos >= CTL_MAX_LEN + WS_HDR_MAX) {
        char *t = s->ctl[0];
        memmove(s->ctl, s->ctl + 1, --s->nctl * sizeof s->ctl[0]);
        pos += wsframe_build(out + pos, EDGE_TXBUF - pos, WS_TEXT, (const uint8_t *)t, strlen(t),
                             NULL);
        free(t);
    }
    if (s->state == S_CLOSING && !s->nctl) {
        uint8_t cp[2 + sizeof s->close_reason];
        size_t rl = strlen(s->close_reason);
        if (rl > 120)
            rl = 120;
        cp[0] = (uint8_t)(s->close_code >> 8);
        cp[1] = (uint8_t)s->close_code;
        memcpy(cp + 2, s->close_reason, rl);
        pos += wsframe_build(out + pos, EDGE_TXBUF - pos, WS_CLOSE, cp, 2 + rl, NULL);
        s->close_sent = true;
        if (send_bytes(s, out, pos) < 0 || !s->pend)
            return -1; /* written (or failed): close the connection */
        return 0;
    }
    if (s->mux && s->state != S_CLOSING)
        pos += wsframe_batch(out + pos, EDGE_TXBUF - pos, FRAME_MAX_LEN, NULL, next_frame, s->mux);
    if (pos && send_bytes(s, out, pos) < 0)
        return -1;
    if (!s->pend && (s->nctl || s->state == S_CLOSING || (s->mux && mux_wants_write(s->mux))))
        want_write(s);
    return 0;
}

/*
 * Deadlines of one session, checked by session_tick (one timer for all
 * sessions: libwebsockets keeps its timers in one sorted list, and a timer
 * per session made 10,000 idle tunnels cost a third of a core): the hello
 * deadline, the hourly token refresh, a ping after one silent ping interval,
 * and the drop after three.
 */
static void check_session(struct session *s, uint64_t now)
{
    const struct config *c = s->e->cfg;
    uint64_t iv = (uint64_t)c->ping_interval * 1000, idle = now - s->last_rx_ms;
    if (s->kill)
        return;
    if (s->state == S_HELLO && now >= s->hello_deadline_ms) {
        refuse(s, "timeout", "no hello within the deadline", WS_CLOSE_POLICY);
        return;
    }
    if (s->state == S_ACTIVE && now >= s->token_due_ms) {
        token_refresh(s);
        s->token_due_ms = now + (uint64_t)TOKEN_REFRESH_S * 1000;
    }
    if (idle >= 3 * iv) {
        log_info("tunnel=%s peer=%s silent for %llu s: closing", s->name[0] ? s->name : "-",
                 s->peer, (unsigned long long)(idle / 1000));
        s->kill = true;
        want_write(s);
    } else if (idle >= iv && now - s->last_ping_ms >= iv) {
        s->last_ping_ms = now;
        s->ping_due = true;
        want_write(s);
    }
}

void session_tick(struct edge *e)
{
    uint64_t now = edge_now_ms();
    for (struct session *s = e->sessions; s; s = s->next)
        check_session(s, now);
}

static void session_free(struct session *s)
{
    struct edge *e = s->e;
    if (s->kicked)
        for (struct session **pp = &e->kicks; *pp; pp = &(*pp)->kick_next)
            if (*pp == s) {
                *pp = s->kick_next;
                break;
            }
    lwswake_cancel(&s->wake);
    wsparse_free(s->wp);
    free(s->pend);
    if (s->claim)
        fleet_cancel(s->claim);
    if (s->name[0] && !s->welcomed) {
        registry_release(e->reg, s->name, s, 0); /* never had it: no reservation */
        s->name[0] = 0;
    }
    if (s->name[0]) {
        registry_release(e->reg, s->name, s, edge_now_ms() + (uint64_t)e->cfg->grace_period * 1000);
        log_info("tunnel=%s offline (name reserved for %u s)", s->name, e->cfg->grace_period);
    }
    mux_free(s->mux); /* visitors of open streams learn RST_SESSION_GONE */
    if (s->counted)
        quota_tunnel_remove(e->quota, &s->key);
    for (unsigned i = 0; i < s->nctl; i++)
        free(s->ctl[i]);
    if (s->prev)
        s->prev->next = s->next;
    else
        e->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    e->nsessions--;
    free(s);
    edge_check_drained(e);
}

int session_adopt(struct edge *e, int fd, const char *peer, const struct ipkey *key,
                  const char *accept_key, bool echo_protocol, const uint8_t *extra,
                  size_t extra_len)
{
    char resp[256];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s"
                     "\r\n",
                     accept_key,
                     echo_protocol ? "Sec-WebSocket-Protocol: " WARREN_WS_PROTOCOL "\r\n" : "");
    struct session *s = calloc(1, sizeof *s);
    if (!s || n <= 0 || (size_t)n >= sizeof resp || !(s->pend = malloc((size_t)n)) ||
        !(s->wp = wsparse_new(true, FRAME_MAX_LEN))) {
        if (s) {
            free(s->pend);
            free(s);
        }
        close(fd);
        return -ENOMEM;
    }
    memcpy(s->pend, resp, (size_t)n);
    s->pend_len = (size_t)n;
    s->obj.kind = RAW_SESSION;
    s->e = e;
    s->fd = fd;
    s->state = S_HELLO;
    s->last_rx_ms = edge_now_ms();
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    s->key = *key;
    s->wsi = lwsraw_adopt(e->vh, fd, WARREN_RAW_PROTOCOL, &s->obj);
    if (!s->wsi) { /* lws closed fd */
        wsparse_free(s->wp);
        free(s->pend);
        free(s);
        return -ENOMEM;
    }
    s->next = e->sessions;
    if (e->sessions)
        e->sessions->prev = s;
    e->sessions = s;
    e->nsessions++;
    s->hello_deadline_ms = s->last_rx_ms + (uint64_t)e->cfg->hello_timeout * 1000;
    want_write(s);
    /* bytes that came right behind the upgrade request are WebSocket already */
    if (extra_len) {
        uint8_t *copy = malloc(extra_len);
        if (copy) {
            memcpy(copy, extra, extra_len);
            int r = wsparse_feed_inplace(s->wp, copy, extra_len, on_message, s);
            free(copy);
            if (r < 0)
                session_close(s, -r, "bad framing");
        }
    }
    return 0;
}

void session_kick_all(struct edge *e)
{
    while (e->kicks) {
        struct session *s = e->kicks;
        e->kicks = s->kick_next;
        s->kick_next = NULL;
        s->kicked = false;
        if (s->kill || !s->wsi)
            continue;
        lwswake_enter(&s->wake);
        if (lwswake_leave(&s->wake, e->ctx, on_writeable(s)) < 0) {
            s->kill = true; /* as a WRITEABLE callback returning -1: close it */
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
}

int session_raw_callback(struct lws *wsi, enum lws_callback_reasons reason, struct session *s)
{
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        return s->kill ? -1 : on_readable(s);
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        lwswake_enter(&s->wake);
        return lwswake_leave(&s->wake, s->e->ctx, on_writeable(s));
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        s->wsi = NULL;
        session_free(s);
        return 0;
    default:
        return 0;
    }
}

mux_stream *session_open_stream(struct session *s, const struct frame_open *o, void *visitor)
{
    if (s->state != S_ACTIVE || !s->mux) {
        errno = ECONNRESET;
        return NULL;
    }
    return mux_open(s->mux, o, visitor);
}

bool session_is_active(const struct session *s)
{
    return s->state == S_ACTIVE;
}

void session_displace(struct session *s, const char *why)
{
    struct edge *e = s->e;
    if (!s->name[0])
        return;
    log_info("tunnel=%s closed here: %s", s->name, why);
    registry_release(e->reg, s->name, s, 0);
    s->name[0] = 0;
    session_close(s, 4000, "moved to another edge");
}

void session_close_all(struct edge *e, int code, const char *reason)
{
    for (struct session *s = e->sessions; s; s = s->next)
        session_close(s, code, reason);
}

void session_destroy_all(struct edge *e)
{
    /* lws_context_destroy closes the raw files: RAW_CLOSE_FILE frees each */
    (void)e;
}
