/*
 * session: the edge side of a tunnel's control WebSocket.
 *
 * States: HELLO (waiting for the handshake, deadline hello-timeout), ACTIVE
 * (name held, mux running), CLOSING (a close code is set; pending control
 * text is written first, then the close frame). Invariants: only WRITEABLE
 * writes, one lws_write per callback; a message is reassembled when lws hands
 * it over in pieces, bounded by FRAME_MAX_LEN / CTL_MAX_LEN; the session is
 * freed only in LWS_CALLBACK_CLOSED.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "ctl.h"
#include "edge.h"
#include "fleet.h"
#include "ipkey.h"
#include "log.h"
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
    struct edge *e;
    struct lws *wsi;
    struct session *prev, *next;
    enum session_state state;
    char name[NAME_MAX_LEN + 1];
    char peer[64];
    mux *mux;
    uint8_t *rxmsg; /* reassembly of a fragmented message */
    size_t rxlen;
    char *ctl[CTL_QUEUE_MAX]; /* control texts waiting to be written */
    unsigned nctl;
    int close_code;
    char close_reason[96];
    lws_sorted_usec_list_t hello_sul, token_sul;
    struct fleet_wait *claim; /* the fleet is being asked for the name */
    bool welcomed;            /* WELCOME went out: the name is really ours */
    char client[64];
    struct ipkey key; /* the client address --max-tunnels-per-ip counts */
    bool counted;     /* this session holds one of its address's tunnels */
};

static void ops_want_write(void *ud)
{
    struct session *s = ud;
    lws_callback_on_writable(s->wsi);
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
    lws_callback_on_writable(s->wsi);
    return 0;
}

void session_close(struct session *s, int code, const char *reason)
{
    if (s->state == S_CLOSING)
        return;
    s->state = S_CLOSING;
    s->close_code = code;
    snprintf(s->close_reason, sizeof s->close_reason, "%s", reason);
    lws_callback_on_writable(s->wsi);
}

/* Refuse the handshake: an ERROR message, then close. */
static void refuse(struct session *s, const char *code, const char *message, int close_code)
{
    log_info("tunnel refused peer=%s code=%s: %s", s->peer, code, message);
    queue_ctl(s, ctl_error_encode(code, message));
    session_close(s, close_code, code);
}

static void hello_timeout(lws_sorted_usec_list_t *sul)
{
    struct session *s = lws_container_of(sul, struct session, hello_sul);
    if (s->state == S_HELLO)
        refuse(s, "timeout", "no hello within the deadline", LWS_CLOSE_STATUS_POLICY_VIOLATION);
}

static uint64_t unix_now(void)
{
    return (uint64_t)time(NULL);
}

static int issue_token(struct session *s, char *out, size_t cap)
{
    return token_issue(s->e->cfg->secret, s->name, unix_now() + TOKEN_LIFETIME_S, out, cap);
}

static void token_refresh(lws_sorted_usec_list_t *sul)
{
    struct session *s = lws_container_of(sul, struct session, token_sul);
    char tok[TOKEN_MAX_LEN];
    if (s->state != S_ACTIVE)
        return;
    if (issue_token(s, tok, sizeof tok) == 0)
        queue_ctl(s, ctl_token_encode(tok));
    lws_sul_schedule(s->e->ctx, 0, &s->token_sul, token_refresh,
                     (lws_usec_t)TOKEN_REFRESH_S * LWS_US_PER_SEC);
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
    lws_sul_cancel(&s->hello_sul);
    lws_sul_schedule(e->ctx, 0, &s->token_sul, token_refresh,
                     (lws_usec_t)TOKEN_REFRESH_S * LWS_US_PER_SEC);
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

static void on_receive(struct session *s, struct lws *wsi, const uint8_t *in, size_t len)
{
    bool first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
    bool binary = lws_frame_is_binary(wsi);
    size_t max = binary ? FRAME_MAX_LEN : CTL_MAX_LEN;
    if (first && final && !s->rxmsg) {
        handle_message(s, in, len, binary);
        return;
    }
    if (first)
        s->rxlen = 0;
    if (!s->rxmsg) {
        s->rxmsg = malloc(FRAME_MAX_LEN);
        if (!s->rxmsg) {
            session_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
            return;
        }
    }
    if (s->rxlen + len > max) {
        session_close(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return;
    }
    memcpy(s->rxmsg + s->rxlen, in, len);
    s->rxlen += len;
    if (final) {
        handle_message(s, s->rxmsg, s->rxlen, binary);
        free(s->rxmsg); /* idle sessions keep no reassembly buffer */
        s->rxmsg = NULL;
        s->rxlen = 0;
    }
}

static int on_writeable(struct session *s, struct lws *wsi)
{
    struct edge *e = s->e;
    if (s->nctl) {
        char *t = s->ctl[0];
        size_t n = strlen(t);
        memmove(s->ctl, s->ctl + 1, --s->nctl * sizeof s->ctl[0]);
        memcpy(e->txbuf + LWS_PRE, t, n);
        free(t);
        if (lws_write(wsi, e->txbuf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->state == S_CLOSING) {
        lws_close_reason(wsi, (enum lws_close_status)s->close_code,
                         (unsigned char *)s->close_reason, strlen(s->close_reason));
        return -1;
    }
    if (!s->mux)
        return 0;
    size_t n = mux_next_frame(s->mux, e->txbuf + LWS_PRE, FRAME_MAX_LEN);
    if (n == 0)
        return 0;
    if (lws_write(wsi, e->txbuf + LWS_PRE, n, LWS_WRITE_BINARY) < (int)n)
        return -1;
    if (mux_wants_write(s->mux))
        lws_callback_on_writable(wsi);
    return 0;
}

static struct session *session_new(struct edge *e, struct lws *wsi)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->e = e;
    s->wsi = wsi;
    s->state = S_HELLO;
    char ip[64] = "?";
    lws_get_peer_simple(wsi, ip, sizeof ip);
    snprintf(s->peer, sizeof s->peer, "%s", ip);
    if (!quota_handoff_take(e->quota, &s->key)) {
        /* not handed over by a visitor (never expected): the socket's address */
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = lws_get_socket_fd(wsi);
        if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 ||
            ipkey_from_sockaddr((struct sockaddr *)&ss, &s->key) < 0)
            memset(&s->key, 0, sizeof s->key);
    }
    s->next = e->sessions;
    if (e->sessions)
        e->sessions->prev = s;
    e->sessions = s;
    e->nsessions++;
    lws_sul_schedule(e->ctx, 0, &s->hello_sul, hello_timeout,
                     (lws_usec_t)e->cfg->hello_timeout * LWS_US_PER_SEC);
    return s;
}

static void session_free(struct session *s)
{
    struct edge *e = s->e;
    lws_sul_cancel(&s->hello_sul);
    lws_sul_cancel(&s->token_sul);
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
    free(s->rxmsg);
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

int session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    struct session **pss = user;
    struct lws_vhost *vh = lws_get_vhost(wsi);
    struct edge *e = vh ? lws_get_vhost_user(vh) : NULL;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        if (!e || e->draining)
            return -1;
        *pss = session_new(e, wsi);
        return *pss ? 0 : -1;
    case LWS_CALLBACK_RECEIVE:
        if (*pss)
            on_receive(*pss, wsi, in, len);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return *pss ? on_writeable(*pss, wsi) : -1;
    case LWS_CALLBACK_CLOSED:
        if (*pss) {
            session_free(*pss);
            *pss = NULL;
        }
        return 0;
    case LWS_CALLBACK_HTTP:
        /* only upgrades are handed to lws; anything else is refused */
        return -1;
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
    /* lws_context_destroy closes the wsis and calls LWS_CALLBACK_CLOSED */
    (void)e;
}
