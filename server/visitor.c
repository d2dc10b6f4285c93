/*
 * visitor: a public connection, from accept to close.
 *
 * Visitor sockets live in the edge's epoll set (evset.h), not in
 * libwebsockets' descriptor table: closing one costs a close(), not a scan of
 * that table, and a turn costs one epoll_wait for all of them.
 *
 * Visitor -> tunnel: bytes are read into `in` (at most max_head bytes wait
 * there); each request head is parsed and checked by hmsg, routed, rewritten
 * (X-Forwarded-*) and appended to the stream's tx buffer; body bytes follow
 * as hmsg delimits them. Reading stops while `in` is full, which happens when
 * the stream's tx buffer is full (no credit), while an upgrade waits for its
 * answer, or when too many responses are outstanding: that is the
 * back-pressure.
 *
 * Tunnel -> visitor: the stream's rx bytes are written as they are, observed
 * by hobs to learn where responses end (pipelining, HEAD, 1xx, 101).
 *
 * The edge answers by itself only while no byte of the current response has
 * been written; later failures close the connection. Closing after an answer
 * is lingering: shut the write side, discard input until EOF or a short
 * deadline, then close, so the visitor's kernel does not throw the answer away.
 *
 * A response body delimited by the end of the connection (no Content-Length,
 * not chunked; or the raw pipe after a 101) has only a TCP reset to say it was
 * cut. From its head until the tunnel's FIN the socket closes abortively
 * (SO_LINGER 0): if the stream fails, or this process dies, the visitor sees
 * a reset, never a clean end after short data. The tunnel's FIN turns that off
 * before the graceful close. Any response cut by a failed stream ends in a
 * reset too.
 *
 * Slow visitors: a request body must bring --min-rate bytes/s over each
 * --body-timeout window while the edge is waiting for it (the window's clock
 * stands still while the tunnel, not the visitor, holds the body back), else 408; a
 * response waiting for the visitor must be taken at --min-rate bytes/s over
 * each --send-timeout window, else the connection is reset. A tunnel
 * WebSocket handshake is first checked against --handshake-rate (429).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "addr.h"
#include "edge.h"
#include "evset.h"
#include "errpage.h"
#include "fleet.h"
#include "peerlink.h"
#include "hmsg.h"
#include "hobs.h"
#include "ipkey.h"
#include "log.h"
#include "names.h"
#include "pace.h"
#include "quota.h"
#include "registry.h"
#include "session.h"
#include "visitor.h"
#include "wsframe.h"

#define MAX_HEAD 16384
#define IN_CAP (MAX_HEAD + 1) /* one byte over the limit lets hmsg say 431 */
#define MAX_HEADERS 100
#define MAX_PENDING 64 /* pipelined requests awaiting a response */
#define HEAD_ROOM (MAX_HEAD + 1024)
#define LINGER_MS 3000
#define WRITE_BUDGET (1024 * 1024)
#define BODY_DIRECT_MIN (16 * 1024) /* shorter body runs go through v->in */
#define READ_DIRECT_MAX (64 * 1024)

enum vstate {
    V_HEAD,    /* reading / parsing a request head */
    V_BODY,    /* forwarding the current request's body */
    V_UPGRADE, /* an upgrade request went out; waiting to see if the answer is 101 */
    V_RAW,     /* after 101: a two-way pipe */
    V_ERROR,   /* the edge answers (after outstanding responses), then lingers */
    V_LINGER,  /* write side shut; discarding input until EOF or deadline */
    V_LOOKUP,  /* the first head waits while the fleet is asked who has the name */
};

struct visitor {
    struct raw_obj obj;
    struct edge *e;
    struct evfd ev; /* in the edge's epoll set (evset.h); ev.fd is the socket */
    struct visitor *prev, *next;
    char peer[ADDR_TEXT_MAX], peer_ip[ADDR_TEXT_MAX];
    uint8_t *in;
    size_t in_len;
    hmsg *req;
    hobs *resp;
    mux_stream *st;
    char name[NAME_MAX_LEN + 1];
    char host[256];
    enum vstate state;
    bool read_eof, wr_shut, kill, html, draining;
    bool abortive;         /* SO_LINGER 0: closing resets the connection */
    unsigned pending;      /* requests forwarded, response not finished */
    uint64_t head_fifo;    /* bit i: pending request i was HEAD */
    uint64_t upgrade_fifo; /* bit i: pending request i asked for an upgrade */
    unsigned resp_status;  /* status of the response being relayed */
    uint64_t resp_mark;    /* hobs position where the last response ended */
    char *out;             /* an answer of the edge itself */
    size_t out_len, out_off;
    unsigned err_status;
    uint64_t last_activity, head_start, linger_at;
    unsigned nrequests;
    lws_sorted_usec_list_t sul, rsul;
    struct fleet_wait *wait; /* fleet lookup in flight (V_LOOKUP) */
    size_t head_used;        /* bytes of the head waiting in `in` during V_LOOKUP */
    bool via_peer;           /* the stream goes to another edge */
    char req_summary[48];    /* "GET HTTP/1.1 body=none": the request being forwarded */
    bool req_keep_alive;     /* ... and whether the connection may carry another */
    bool last_request;       /* a request without keep-alive went out: input is ignored */
    struct ipkey key;        /* the address per-address limits count it as */
    unsigned retry_after;    /* seconds, for a 429 */
    struct pace body;        /* --body-timeout windows while a request body is awaited */
    struct pace send;        /* --send-timeout windows while bytes wait for the visitor */
    bool send_drained;       /* the last write left nothing in the stream for the visitor */
    uint64_t timer_at;       /* when `sul` fires (0: not scheduled) */
};

/* The connection is in the event loop (not yet closing, not handed off). */
static bool live(const struct visitor *v)
{
    return v->ev.fd >= 0 && !v->ev.dead;
}

/* on_writeable() at the end of this turn, or on the next. */
static void want_write(struct visitor *v)
{
    evset_write_soon(&v->ev);
}

/* on_writeable() once the socket takes bytes again (a write met EAGAIN). */
static void wait_writable(struct visitor *v)
{
    evset_write_when_ready(&v->ev);
}

static void arm_timer(struct visitor *v);
static void send_waits(struct visitor *v);

/* Bytes of the current (unfinished) response already written to the visitor. */
static uint64_t resp_bytes(const struct visitor *v)
{
    return hobs_total(v->resp) - v->resp_mark;
}

static void set_reading(struct visitor *v)
{
    bool want;
    if (v->read_eof || v->kill || !live(v))
        want = false;
    else if (v->state == V_LINGER)
        want = true;
    else if (v->state == V_ERROR || v->state == V_LOOKUP)
        want = false;
    else if (v->state == V_RAW)
        want = v->in_len == 0 && v->st && buf_room(mux_stream_tx(v->st)) > 0;
    else
        want = v->in_len < IN_CAP;
    if (want != v->ev.reading)
        evset_read(&v->ev, want);
}

/* on: a close (ours, or the kernel's when this process dies) sends a reset. */
static void set_abortive(struct visitor *v, bool on)
{
    struct linger lg = {.l_onoff = on ? 1 : 0, .l_linger = 0};
    if (v->abortive != on && setsockopt(v->ev.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0)
        v->abortive = on;
}

static void kill_later(struct visitor *v)
{
    v->kill = true;
    evset_close(&v->ev); /* at the end of the turn, writable or not */
}

/* Close with a reset: nothing queued is worth delivering (a visitor cut for
 * taking too long), and the kernel keeps no orphan socket probing it. */
static void abort_conn(struct visitor *v)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(v->ev.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    kill_later(v);
}

static void release_stream(struct visitor *v, uint16_t code)
{
    if (v->st) {
        mux_stream_release(v->st, code);
        v->st = NULL;
    }
}

/* Shut our write side and discard input for a moment before closing. */
static void linger(struct visitor *v)
{
    release_stream(v, v->read_eof ? 0 : RST_CANCEL);
    shutdown(v->ev.fd, SHUT_WR);
    if (v->read_eof) {
        kill_later(v);
        return;
    }
    v->state = V_LINGER;
    v->in_len = 0;
    v->linger_at = edge_now_ms();
    arm_timer(v);
    set_reading(v);
}

/* The edge answers `status` itself once outstanding responses are written. */
static void respond(struct visitor *v, unsigned status, const char *detail)
{
    struct edge *e = v->e;
    if (v->state == V_ERROR || v->state == V_LINGER)
        return;
    char page[4096], retry[48];
    const char *extra = NULL;
    if (status == 503 || status == 429) {
        snprintf(retry, sizeof retry, "Retry-After: %u\r\n",
                 status == 429 && v->retry_after ? v->retry_after : 1);
        extra = retry;
    }
    size_t n = errpage_render(page, sizeof page, status, detail, v->name[0] ? v->name : NULL,
                              v->html, false, extra);
    free(v->out);
    v->out = malloc(n);
    if (v->out)
        memcpy(v->out, page, n);
    v->out_len = v->out ? n : 0;
    v->out_off = 0;
    v->err_status = status;
    v->state = V_ERROR;
    switch (status) {
    case 404:
        e->stats.errors_404++;
        break;
    case 502:
        e->stats.errors_502++;
        break;
    case 503:
        e->stats.errors_503++;
        break;
    case 504:
        e->stats.errors_504++;
        break;
    default:
        if (status >= 400 && status < 500)
            e->stats.errors_400++;
        break;
    }
    log_info("visitor=%s tunnel=%s answered %u: %s", v->peer, v->name[0] ? v->name : "-", status,
             detail);
    if (v->pending == 0)
        lws_sul_cancel(&v->rsul); /* else a 504 may still replace this answer */
    set_reading(v);
    want_write(v);
}

static void respond_now(struct visitor *v, unsigned status, const char *detail)
{
    /* outstanding responses that never started are abandoned */
    v->pending = 0;
    respond(v, status, detail);
}

/* --- response side: observe what the tunnel sends back --- */

static void resp_on_head(void *ud, const struct hmsg_head *h)
{
    struct visitor *v = ud;
    v->resp_status = h->status;
    if (h->status != 101) {
        if (h->until_eof)
            set_abortive(v, true); /* only the tunnel's FIN ends this response cleanly */
        return;
    }
    if (v->pending == 0 || !(v->upgrade_fifo & 1) || v->state == V_ERROR || v->state == V_LINGER) {
        /* a 101 nobody asked for must not turn the connection into a pipe:
         * later bytes of the visitor (maybe a request for another tunnel)
         * would reach this application unframed */
        log_info("visitor=%s tunnel=%s the local service switched protocols without an upgrade "
                 "request; closing",
                 v->peer, v->name);
        hobs_set_raw(v->resp);
        free(v->out);
        v->out = NULL;
        v->pending = 0;
        v->in_len = 0;
        if (v->state != V_LINGER)
            v->state = V_ERROR;
        return;
    }
    set_abortive(v, true); /* only the tunnel's FIN ends the raw pipe cleanly */
    /* after a 101 neither direction is HTTP any more: a raw pipe */
    v->state = V_RAW;
    log_debug("visitor=%s tunnel=%s upgraded: raw pipe", v->peer, v->name);
}

static void resp_on_end(void *ud)
{
    struct visitor *v = ud;
    if (v->resp_status >= 100 && v->resp_status < 200 && v->resp_status != 101)
        return; /* interim response: the real one follows */
    if (v->pending == 0)
        return;
    bool was_upgrade = v->upgrade_fifo & 1;
    v->pending--;
    v->head_fifo >>= 1;
    v->upgrade_fifo >>= 1;
    v->resp_mark = hobs_total(v->resp);
    if (v->pending > 0 && (v->head_fifo & 1))
        hobs_expect_head_response(v->resp);
    if (was_upgrade && v->state == V_UPGRADE)
        v->state = V_HEAD; /* the upgrade was declined: go on with HTTP */
    if (v->pending == 0 && v->state == V_HEAD)
        arm_timer(v); /* a pipelined head may be waiting: its deadline applies now */
}

static const struct hobs_ops resp_ops = {resp_on_head, resp_on_end};

static void response_timeout(lws_sorted_usec_list_t *sul)
{
    struct visitor *v = lws_container_of(sul, struct visitor, rsul);
    if (v->pending > 0 && resp_bytes(v) == 0 && v->state != V_LINGER) {
        char msg[200];
        if (v->state == V_ERROR) {
            /* the edge's own answer waited behind this response: the 504
             * answers the request that timed out and replaces it */
            free(v->out);
            v->out = NULL;
            v->state = V_HEAD;
        }
        snprintf(msg, sizeof msg, "the local service of tunnel \"%s\" did not answer within %u s",
                 v->name, v->e->cfg->response_timeout);
        release_stream(v, RST_TIMEOUT);
        respond_now(v, 504, msg);
    }
}

static void arm_response_timer(struct visitor *v)
{
    lws_sul_schedule(v->e->ctx, 0, &v->rsul, response_timeout,
                     (lws_usec_t)v->e->cfg->response_timeout * LWS_US_PER_SEC);
}

/* --- timers: head deadline, idle, linger --- */

/* When the connection's one timer must look again, by state:
 *  lingering:                         LINGER_MS after the linger began;
 *  a head is arriving (bytes buffered): head_timeout after its first byte;
 *  nothing sent yet on a new connection: head_timeout after accept;
 *  otherwise:                          idle_timeout after the last activity. */
static uint64_t base_deadline(const struct visitor *v)
{
    const struct config *c = v->e->cfg;
    if (v->state == V_LINGER)
        return v->linger_at + LINGER_MS;
    if (v->state == V_HEAD && v->pending == 0 && v->in_len > 0)
        return v->head_start + (uint64_t)c->head_timeout * 1000;
    if (v->state == V_HEAD && v->pending == 0 && v->nrequests == 0)
        return v->head_start + (uint64_t)c->head_timeout * 1000;
    return v->last_activity + (uint64_t)c->idle_timeout * 1000;
}

/* The earliest of the state's deadline and the end of a running
 * --body-timeout or --send-timeout window. */
static uint64_t deadline(const struct visitor *v)
{
    const struct config *c = v->e->cfg;
    uint64_t at = base_deadline(v);
    if (v->state == V_LINGER)
        return at;
    uint64_t b = pace_deadline(&v->body, c->body_timeout);
    uint64_t w = pace_deadline(&v->send, c->send_timeout);
    if (v->state == V_BODY && b && b < at)
        at = b;
    if (w && w < at)
        at = w;
    return at;
}

/* Make sure the timer fires by `at` (cheap when it already does). */
static void timer_by(struct visitor *v, uint64_t at)
{
    if (!v->timer_at || at < v->timer_at)
        arm_timer(v);
}

/* Bytes written to the socket that the visitor has not acknowledged yet. */
static uint64_t send_queue(const struct visitor *v)
{
    int n = 0;
    if (ioctl(v->ev.fd, SIOCOUTQ, &n) < 0 || n < 0)
        return 0;
    return (uint64_t)n;
}

/* Bytes wait for the visitor: from now on it must take --min-rate bytes/s.
 * A window starts unless one is running for bytes the visitor has not taken
 * yet; windows go on while anything waits, in the stream or in the socket's
 * send queue. Once a write left the stream empty, the next bytes look at the
 * send queue (one ioctl per response, not per write): empty, the visitor
 * caught up and a new window starts; not empty, the running one goes on.
 * A window nobody restarted ends at its deadline if nothing waits then. */
static void send_waits(struct visitor *v)
{
    if (pace_running(&v->send) && !v->send_drained)
        return;
    v->send_drained = false;
    uint64_t q = send_queue(v);
    if (pace_running(&v->send) && q > 0)
        return;
    pace_start(&v->send, edge_now_ms(), q);
    timer_by(v, pace_deadline(&v->send, v->e->cfg->send_timeout));
}

/* A request body is awaited: a --body-timeout window begins. */
static void body_window(struct visitor *v)
{
    pace_start(&v->body, edge_now_ms(), 0);
    timer_by(v, pace_deadline(&v->body, v->e->cfg->body_timeout));
}

/* The tunnel holds the body back (the stream's buffer is full), not the
 * visitor: the window's clock stands still until it takes bytes again, and
 * what the visitor sent before still counts (a burst that filled the buffer
 * buys its window). */
static void body_hold(struct visitor *v)
{
    pace_hold(&v->body, edge_now_ms());
}

static void body_resume(struct visitor *v)
{
    if (!pace_held(&v->body))
        return;
    pace_resume(&v->body, edge_now_ms());
    timer_by(v, pace_deadline(&v->body, v->e->cfg->body_timeout));
}

/* The body came slower than --min-rate: 408 if the response has not begun. */
static void cut_slow_body(struct visitor *v, uint64_t got)
{
    const struct config *c = v->e->cfg;
    char msg[200];
    quota_stats(v->e->quota)->body_timeouts++;
    snprintf(msg, sizeof msg,
             "the request body arrived slower than %u bytes/s (%llu bytes in %u s)", c->min_rate,
             (unsigned long long)got, c->body_timeout);
    release_stream(v, RST_TIMEOUT);
    if (resp_bytes(v) == 0) {
        respond_now(v, 408, msg);
        return;
    }
    log_info("visitor=%s tunnel=%s %s: closing", v->peer, v->name, msg);
    abort_conn(v);
}

/* Bytes wait for the visitor: in the stream, in our own answer, or in the
 * socket (q: its send queue). */
static bool send_pending(const struct visitor *v, uint64_t q)
{
    return q > 0 || (v->st && !buf_empty(mux_stream_rx(v->st))) ||
           (v->out && v->out_off < v->out_len);
}

/* The visitor took a waiting response slower than --min-rate: reset. */
static void cut_slow_reader(struct visitor *v, uint64_t took)
{
    const struct config *c = v->e->cfg;
    quota_stats(v->e->quota)->send_timeouts++;
    log_info("visitor=%s tunnel=%s took %llu bytes in %u s, slower than %u bytes/s: resetting",
             v->peer, v->name[0] ? v->name : "-", (unsigned long long)took, c->send_timeout,
             c->min_rate);
    release_stream(v, RST_TIMEOUT);
    v->state = V_ERROR; /* nothing more is read or answered */
    abort_conn(v);
}

/* A --body-timeout or --send-timeout window ended at `now`: the next one
 * begins if enough bytes moved, else the visitor is cut. True when cut. */
static bool check_progress(struct visitor *v, uint64_t now)
{
    const struct config *c = v->e->cfg;
    uint64_t n;
    if (v->state == V_BODY &&
        pace_check(&v->body, now, c->body_timeout, c->min_rate, 0, &n) == PACE_SLOW) {
        cut_slow_body(v, n);
        return true;
    }
    if (v->state != V_LINGER && pace_running(&v->send) &&
        now >= pace_deadline(&v->send, c->send_timeout)) {
        /* what the visitor acknowledged counts, not what its socket took in */
        uint64_t q = send_queue(v);
        if (!send_pending(v, q)) {
            pace_stop(&v->send); /* it caught up */
        } else if (pace_check(&v->send, now, c->send_timeout, c->min_rate, q, &n) == PACE_SLOW) {
            cut_slow_reader(v, n);
            return true;
        }
    }
    return false;
}

static void on_timer(lws_sorted_usec_list_t *sul)
{
    struct visitor *v = lws_container_of(sul, struct visitor, sul);
    const struct config *c = v->e->cfg;
    uint64_t now = edge_now_ms();
    v->timer_at = 0;
    if (v->kill)
        return;
    if (check_progress(v, now)) {
        if (!v->kill)
            arm_timer(v);
        return;
    }
    if (now < deadline(v)) {
        arm_timer(v);
        return;
    }
    if (v->state == V_LINGER) {
        kill_later(v);
    } else if (v->state == V_HEAD && v->pending == 0 && v->in_len > 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request head did not arrive within %u s", c->head_timeout);
        quota_stats(v->e->quota)->head_timeouts++;
        respond(v, 408, msg);
    } else if (v->state == V_HEAD && v->pending == 0) {
        log_debug("visitor=%s %s: closing", v->peer,
                  v->nrequests ? "idle keep-alive connection" : "sent nothing");
        kill_later(v);
    } else if (v->state != V_ERROR && (v->pending == 0 || v->state == V_RAW)) {
        log_debug("visitor=%s idle for %u s: closing", v->peer, c->idle_timeout);
        kill_later(v);
    } else {
        /* waiting for a response: the response timer (504) owns that */
        v->last_activity = now;
        arm_timer(v);
    }
}

static void arm_timer(struct visitor *v)
{
    uint64_t now = edge_now_ms(), at = deadline(v);
    if (at <= now)
        at = now + 1;
    v->timer_at = at;
    lws_sul_schedule(v->e->ctx, 0, &v->sul, on_timer, (lws_usec_t)(at - now) * 1000);
}

/* --- routing and forwarding of requests --- */

static bool wants_html(const struct hmsg_head *h)
{
    const struct hmsg_header *a = hmsg_find(h, "accept");
    return a && memmem(a->value.p, a->value.len, "text/html", 9) != NULL;
}

static bool is_control_upgrade(const struct hmsg_head *h)
{
    struct hslice t = h->target;
    size_t plen = t.len;
    const char *q = memchr(t.p, '?', t.len);
    if (q)
        plen = (size_t)(q - t.p);
    const struct hmsg_header *up = hmsg_find(h, "upgrade");
    return h->upgrade && up && up->value.len == 9 &&
           strncasecmp(up->value.p, "websocket", 9) == 0 && plen == 8 &&
           memcmp(t.p, "/_tunnel", 8) == 0;
}

enum route { ROUTE_FORWARD, ROUTE_ANSWERED, ROUTE_HANDOFF, ROUTE_PENDING };

/* Hand the connection to session.c as a control WebSocket, after checking the
 * upgrade request (RFC 6455 4.2.1); `used` bytes of v->in are its head. */
static enum route handoff(struct visitor *v, const struct hmsg_head *h, size_t used)
{
    const struct hmsg_header *key = hmsg_find(h, "sec-websocket-key");
    const struct hmsg_header *ver = hmsg_find(h, "sec-websocket-version");
    const struct hmsg_header *proto = hmsg_find(h, "sec-websocket-protocol");
    char accept[29];
    if (!key || key->value.len != WSHS_KEY_LEN ||
        wshs_accept(key->value.p, key->value.len, accept) < 0) {
        respond(v, 400, "a tunnel upgrade needs a Sec-WebSocket-Key of 16 bytes in base64");
        return ROUTE_ANSWERED;
    }
    if (!ver || ver->value.len != 2 || memcmp(ver->value.p, "13", 2) != 0) {
        respond(v, 400, "a tunnel upgrade needs Sec-WebSocket-Version: 13");
        return ROUTE_ANSWERED;
    }
    if (proto && !wshs_list_has(proto->value.p, proto->value.len, WARREN_WS_PROTOCOL)) {
        respond(v, 400, "the tunnel WebSocket speaks the subprotocol " WARREN_WS_PROTOCOL);
        return ROUTE_ANSWERED;
    }
    if (v->e->draining) {
        respond(v, 503, "this edge is shutting down");
        return ROUTE_ANSWERED;
    }
    /* the socket leaves the epoll set for the session's place in lws */
    int fd2 = evset_detach(&v->ev);
    if (session_adopt(v->e, fd2, v->peer, &v->key, accept, proto != NULL, v->in + used,
                      v->in_len - used) < 0)
        log_debug("visitor=%s control upgrade: out of memory", v->peer);
    v->in_len = 0;
    return ROUTE_HANDOFF;
}

static void consume_in(struct visitor *v, size_t n)
{
    memmove(v->in, v->in + n, v->in_len - n);
    v->in_len -= n;
}

static bool process_in(struct visitor *v);
static enum route finish_head(struct visitor *v, const struct hmsg_head *h);

/* The fleet answered: forward to the edge that has the name, or answer. */
static void on_lookup(void *ud, enum fleet_result r, struct link *owner)
{
    struct visitor *v = ud;
    struct edge *e = v->e;
    char msg[300];
    v->wait = NULL;
    if (v->state != V_LOOKUP)
        return;
    v->state = V_HEAD;
    switch (r) {
    case FLEET_FOUND: {
        struct frame_open o = {.proto = FRAME_PROTO_HTTP, .hops = 1};
        snprintf(o.remote, sizeof o.remote, "%s", v->peer);
        snprintf(o.name, sizeof o.name, "%s", v->name);
        v->st = owner ? peerlink_open_stream(owner, &o, v) : NULL;
        if (!v->st) {
            e->fleet.forward_errors++;
            fleet_forget(e, v->name);
            snprintf(msg, sizeof msg, "the edge serving tunnel \"%s\" cannot be reached; retry",
                     v->name);
            respond(v, 502, msg);
            return;
        }
        v->via_peer = true;
        log_debug("visitor=%s tunnel=%s forwarded to %s", v->peer, v->name,
                  peerlink_instance(owner));
        if (finish_head(v, hmsg_head(v->req)) != ROUTE_FORWARD)
            return;
        consume_in(v, v->head_used);
        v->state = V_BODY;
        body_window(v);
        process_in(v);
        set_reading(v);
        return;
    }
    case FLEET_RESERVED:
        snprintf(msg, sizeof msg,
                 "tunnel \"%s\" is offline: its client disconnected and may reconnect soon",
                 v->name);
        respond(v, 502, msg);
        return;
    case FLEET_UNANSWERED:
        snprintf(msg, sizeof msg,
                 "not every edge of the fleet answered about tunnel \"%s\" in time; retry in a "
                 "moment",
                 v->name);
        respond(v, 503, msg);
        return;
    default:
        snprintf(msg, sizeof msg, "no tunnel named \"%s\" is online", v->name);
        respond(v, 404, msg);
        return;
    }
}

/* A tunnel WebSocket handshake, within --handshake-rate for its address?
 * Behind a trusted proxy the address is the one the proxy names (if valid). */
static bool handshake_allowed(struct visitor *v, const struct hmsg_head *h)
{
    const char *ph = v->e->cfg->proxy_header;
    if (ph[0]) {
        const struct hmsg_header *x = hmsg_find(h, ph);
        struct ipkey k;
        if (x && ipkey_parse(x->value.p, x->value.len, &k) == 0)
            v->key = k;
    }
    unsigned wait = quota_handshake(v->e->quota, &v->key, edge_now_ms());
    if (!wait)
        return true;
    char msg[200], who[IPKEY_TEXT_MAX];
    ipkey_format(&v->key, who, sizeof who);
    snprintf(msg, sizeof msg,
             "too many tunnel handshakes from %s (--handshake-rate %u/s, burst %u); retry in %u s",
             who, v->e->cfg->handshake_rate, v->e->cfg->handshake_burst, wait);
    v->retry_after = wait;
    respond(v, 429, msg);
    return false;
}

/* First request of the connection: decide where it goes. */
static enum route route_first(struct visitor *v, const struct hmsg_head *h, const char *host)
{
    struct edge *e = v->e;
    const char *domain = e->cfg->domain;
    size_t hl = strlen(host), dl = strlen(domain);
    char msg[400];
    bool under = hl > dl + 1 && host[hl - dl - 1] == '.' && memcmp(host + hl - dl, domain, dl) == 0;
    if (!under) {
        if (is_control_upgrade(h))
            return handshake_allowed(v, h) ? ROUTE_HANDOFF : ROUTE_ANSWERED;
        snprintf(msg, sizeof msg,
                 "this is a warren edge: tunnels are served at NAME.%s; \"%s\" is not one", domain,
                 host);
        respond(v, 404, msg);
        return ROUTE_ANSWERED;
    }
    size_t nl = hl - dl - 1;
    if (nl > NAME_MAX_LEN || memchr(host, '.', nl) || name_validate(host, nl) == -EINVAL) {
        snprintf(msg, sizeof msg, "\"%.*s\" is not a tunnel name", (int)(nl > 80 ? 80 : nl), host);
        respond(v, 404, msg);
        return ROUTE_ANSWERED;
    }
    memcpy(v->name, host, nl);
    v->name[nl] = 0;
    struct session *s = registry_find(e->reg, v->name);
    if (!s && e->fl && !registry_taken(e->reg, v->name, edge_now_ms())) {
        /* not here: ask the fleet (the head waits in `in`) */
        snprintf(v->host, sizeof v->host, "%s", host);
        v->wait = fleet_lookup(e, v->name, on_lookup, v);
        if (!v->wait) {
            respond(v, 503, "the edge is out of memory");
            return ROUTE_ANSWERED;
        }
        return ROUTE_PENDING;
    }
    if (!s) {
        if (registry_taken(e->reg, v->name, edge_now_ms())) {
            snprintf(msg, sizeof msg,
                     "tunnel \"%s\" is offline: its client disconnected and may reconnect soon",
                     v->name);
            respond(v, 502, msg);
        } else {
            snprintf(msg, sizeof msg, "no tunnel named \"%s\" is online", v->name);
            respond(v, 404, msg);
        }
        return ROUTE_ANSWERED;
    }
    struct frame_open o = {.proto = FRAME_PROTO_HTTP};
    snprintf(o.remote, sizeof o.remote, "%s", v->peer);
    v->st = session_open_stream(s, &o, v);
    if (!v->st) {
        int err = errno;
        if (err == ENOSPC) /* stream ids used up: the client must start a new session */
            session_close(s, 1013, "stream ids exhausted: reconnect");
        if (err == EBUSY) {
            quota_stats(e->quota)->streams_refused++;
            snprintf(msg, sizeof msg,
                     "tunnel \"%s\" is serving its maximum of %u concurrent connections; retry "
                     "shortly",
                     v->name, e->cfg->max_streams);
        } else {
            snprintf(msg, sizeof msg, "tunnel \"%s\" cannot take a connection now", v->name);
        }
        respond(v, 503, msg);
        return ROUTE_ANSWERED;
    }
    snprintf(v->host, sizeof v->host, "%s", host);
    log_debug("visitor=%s tunnel=%s stream=%u opened", v->peer, v->name, mux_stream_id(v->st));
    return ROUTE_FORWARD;
}

/* A request head went out: from now on a response is due (it may start
 * before the request's body has been sent, e.g. an early 413). */
static void request_started(struct visitor *v, const struct hmsg_head *h)
{
    bool is_head = h->method.len == 4 && memcmp(h->method.p, "HEAD", 4) == 0;
    if (v->pending == 0 && is_head)
        hobs_expect_head_response(v->resp);
    if (is_head)
        v->head_fifo |= 1ULL << v->pending;
    if (h->upgrade)
        v->upgrade_fifo |= 1ULL << v->pending;
    if (v->pending == 0)
        arm_response_timer(v);
    v->pending++;
}

static enum route finish_head(struct visitor *v, const struct hmsg_head *h);

static enum route on_head(struct visitor *v, const struct hmsg_head *h)
{
    char host[256], msg[400];
    v->html = wants_html(h);
    if (hmsg_host_name(h, host, sizeof host) < 0) {
        respond(v, 400, "the Host header is missing or not a host name");
        return ROUTE_ANSWERED;
    }
    if (!v->host[0]) {
        enum route r = route_first(v, h, host);
        if (r != ROUTE_FORWARD)
            return r;
    } else if (strcmp(host, v->host) != 0 && v->e->cfg->proxy_header[0] && v->pending == 0) {
        /* a trusted proxy carries several tunnels' requests on one connection:
         * end this tunnel's stream and route the request afresh */
        release_stream(v, RST_CANCEL);
        v->host[0] = v->name[0] = 0;
        v->via_peer = false;
        enum route r = route_first(v, h, host);
        if (r != ROUTE_FORWARD)
            return r;
    } else if (strcmp(host, v->host) != 0) {
        snprintf(msg, sizeof msg,
                 "this connection belongs to tunnel \"%s\"; open a new connection for \"%.100s\"",
                 v->name, host);
        respond(v, 421, msg);
        return ROUTE_ANSWERED;
    }
    return finish_head(v, h);
}

/* The route is known: forward the (rewritten) head into the stream. */
static enum route finish_head(struct visitor *v, const struct hmsg_head *h)
{
    char msg[200];
    if (!v->st) {
        snprintf(msg, sizeof msg, "tunnel \"%s\" closed this connection", v->name);
        respond(v, 502, msg);
        return ROUTE_ANSWERED;
    }
    uint8_t head[HEAD_ROOM];
    struct hmsg_forward fw = {.client_ip = v->peer_ip, .proto = "http"};
    char proxied_ip[INET6_ADDRSTRLEN];
    const char *ph = v->e->cfg->proxy_header;
    if (ph[0]) {
        /* behind a trusted proxy: the visitor is who the proxy says */
        const struct hmsg_header *x = hmsg_find(h, ph);
        uint8_t tmp[sizeof(struct in6_addr)];
        if (x && x->value.len < sizeof proxied_ip) {
            memcpy(proxied_ip, x->value.p, x->value.len);
            proxied_ip[x->value.len] = 0;
            if (inet_pton(AF_INET, proxied_ip, tmp) == 1 ||
                inet_pton(AF_INET6, proxied_ip, tmp) == 1)
                fw.client_ip = proxied_ip;
        }
        const struct hmsg_header *xp = hmsg_find(h, "x-forwarded-proto");
        if (xp && xp->value.len == 5 && strncasecmp(xp->value.p, "https", 5) == 0)
            fw.proto = "https";
    }
    ssize_t n = hmsg_rewrite_request(h, &fw, head, sizeof head);
    if (n < 0) {
        respond(v, 431, "the request head is too large");
        return ROUTE_ANSWERED;
    }
    if (buf_append(mux_stream_tx(v->st), head, (size_t)n) < 0) {
        respond(v, 503, "the edge is out of memory");
        return ROUTE_ANSWERED;
    }
    mux_stream_tx_kick(v->st);
    request_started(v, h);
    v->nrequests++;
    v->e->stats.requests++;
    /* for the access log line written when the request has gone out whole
     * (never the target: its query string may hold a visitor's secret) */
    snprintf(v->req_summary, sizeof v->req_summary, "%.*s HTTP/%u.%u body=%s",
             (int)(h->method.len > 16 ? 16 : h->method.len), h->method.p, h->http_major,
             h->http_minor,
             h->chunked      ? "chunked"
             : h->has_length ? "length"
                             : "none");
    v->req_keep_alive = h->keep_alive;
    return ROUTE_FORWARD;
}

/* A framing error inside a request body: the request is cut where the error
 * is. Earlier requests on the connection went out whole, so their responses
 * are still relayed before the edge's answer; the stream is reset after it.
 * With no earlier request outstanding, the stream is reset at once. */
static void body_error(struct visitor *v)
{
    unsigned status = hmsg_error_status(v->req);
    const char *reason = hmsg_error_reason(v->req);
    if (v->pending > 1) {
        v->pending--; /* the cut request gets the edge's answer, not the application's */
        v->in_len = 0;
        respond(v, status, reason);
        return;
    }
    release_stream(v, RST_PROTOCOL);
    respond_now(v, status, reason);
}

/* Move what can be moved from `in` to the stream; returns false when the
 * connection was handed to session.c (the caller must return -1 from its
 * callback). */
static bool process_in(struct visitor *v)
{
    for (int guard = 0; guard < 256; guard++) {
        size_t used = 0;
        enum hmsg_event ev;
        if (v->state == V_HEAD) {
            if (v->last_request) {
                v->in_len = 0; /* RFC 9112 9.6: nothing after it is a request */
                return true;
            }
            if (v->in_len == 0 || v->pending >= MAX_PENDING)
                return true;
            if (v->st && buf_room(mux_stream_tx(v->st)) < HEAD_ROOM)
                return true; /* resumed by visitor_stream_writable */
            ev = hmsg_feed(v->req, v->in, v->in_len, &used);
            if (ev == HMSG_NEED_MORE)
                return true;
            if (ev == HMSG_ERROR) {
                /* earlier requests went out whole: their responses come first */
                respond(v, hmsg_error_status(v->req), hmsg_error_reason(v->req));
                return true;
            }
            const struct hmsg_head *h = hmsg_head(v->req);
            enum route r = on_head(v, h);
            if (r == ROUTE_HANDOFF)
                return !(handoff(v, h, used) == ROUTE_HANDOFF);
            if (r == ROUTE_ANSWERED)
                return true;
            if (r == ROUTE_PENDING) {
                v->head_used = used;
                v->state = V_LOOKUP;
                set_reading(v);
                return true;
            }
            consume_in(v, used);
            v->state = V_BODY;
            body_window(v);
            continue;
        }
        if (v->state == V_BODY) {
            if (!v->st) {
                respond_now(v, 502, "the tunnel closed the connection");
                return true;
            }
            buf *tx = mux_stream_tx(v->st);
            size_t n = v->in_len < buf_room(tx) ? v->in_len : buf_room(tx);
            ev = hmsg_feed(v->req, v->in, n, &used);
            if (ev == HMSG_ERROR) {
                body_error(v);
                return true;
            }
            if (used) {
                buf_append(tx, v->in, used);
                consume_in(v, used);
                mux_stream_tx_kick(v->st);
            }
            if (buf_room(tx) == 0)
                body_hold(v);
            if (ev == HMSG_END) {
                log_debug("visitor=%s tunnel=%s stream=%u request=%u forwarded: %s", v->peer,
                          v->name, mux_stream_id(v->st), v->nrequests, v->req_summary);
                pace_stop(&v->body);
                if (v->state == V_BODY) /* not already raw after an early 101 */
                    v->state = hmsg_head(v->req)->upgrade ? V_UPGRADE : V_HEAD;
                if (!v->req_keep_alive) {
                    v->last_request = true;
                    want_write(v); /* close once its response is written */
                }
                v->head_start = edge_now_ms();
                continue;
            }
            return true; /* need more bytes or more room */
        }
        if (v->state == V_RAW && v->in_len > 0 && v->st) {
            buf *tx = mux_stream_tx(v->st);
            size_t n = v->in_len < buf_room(tx) ? v->in_len : buf_room(tx);
            if (n) {
                buf_append(tx, v->in, n);
                consume_in(v, n);
                mux_stream_tx_kick(v->st);
            }
        }
        return true;
    }
    return true;
}

/* Visitor EOF: pass the half-close on, or finish. */
static void on_read_eof(struct visitor *v)
{
    v->read_eof = true;
    if (v->state == V_LINGER) {
        kill_later(v);
        return;
    }
    if (v->state == V_BODY && v->in_len == 0) {
        /* the request was cut: the application must not take it for a whole one */
        log_debug("visitor=%s tunnel=%s closed in the middle of a request body", v->peer, v->name);
        release_stream(v, RST_CANCEL);
        v->state = V_ERROR; /* nothing more is forwarded or answered */
        v->pending = 0;
        kill_later(v);
        return;
    }
    if (v->st &&
        (v->state == V_HEAD || v->state == V_BODY || v->state == V_RAW || v->state == V_UPGRADE)) {
        mux_stream_shutdown(v->st);
        mux_stream_tx_kick(v->st);
        if (v->wr_shut) { /* both directions ended: FIN goes out after queued bytes */
            release_stream(v, 0);
            kill_later(v);
        }
    } else if (!v->st && v->pending == 0 && v->state != V_ERROR) {
        kill_later(v);
    }
}

/* hmsg counts body bytes read straight into the stream. */
static void body_seen(void *ud, const uint8_t *p, size_t n)
{
    size_t used;
    hmsg_feed(ud, p, n, &used); /* within hmsg_body_run: HMSG_BODY, all used */
}

/* A long run of body payload (a large Content-Length body, a large chunk) is
 * read straight into the stream, up to 64 KiB per read, instead of through
 * the head buffer: one copy and one read less per 16 KiB. The run's last
 * byte and all framing take the usual path. Returns 1 when the usual path
 * should run, 0 when done for now, -1 to close. */
static int read_body_direct(struct visitor *v)
{
    uint64_t run = hmsg_body_run(v->req);
    buf *tx = mux_stream_tx(v->st);
    if (run <= BODY_DIRECT_MIN || buf_room(tx) == 0)
        return 1;
    size_t max = run - 1 < READ_DIRECT_MAX ? (size_t)(run - 1) : READ_DIRECT_MAX;
    size_t offered;
    ssize_t n = buf_readv_fd(tx, v->ev.fd, max, &offered, body_seen, v->req);
    if (n == 0) {
        on_read_eof(v);
        set_reading(v);
        return 0;
    }
    if (n < 0) {
        set_reading(v);
        return n == -EAGAIN || n == -ENOMEM ? 0 : -1;
    }
    v->e->stats.bytes_in += (uint64_t)n;
    v->last_activity = edge_now_ms();
    pace_moved(&v->body, (uint64_t)n);
    mux_stream_tx_kick(v->st);
    if (buf_room(tx) == 0)
        body_hold(v);
    set_reading(v);
    return 0;
}

static int on_readable(struct visitor *v)
{
    struct edge *e = v->e;
    if (v->state == V_LINGER) {
        uint8_t junk[4096];
        ssize_t n = read(v->ev.fd, junk, sizeof junk);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        return 0;
    }
    if (v->state == V_RAW && v->in_len == 0 && v->st) {
        buf *tx = mux_stream_tx(v->st);
        ssize_t n = buf_read_fd(tx, v->ev.fd, 0);
        if (n > 0) {
            e->stats.bytes_in += (uint64_t)n;
            v->last_activity = edge_now_ms();
            mux_stream_tx_kick(v->st);
        } else if (n == 0) {
            on_read_eof(v);
        } else if (n != -EAGAIN && n != -EINTR) {
            return -1;
        }
        set_reading(v);
        return 0;
    }
    if (v->state == V_BODY && v->in_len == 0 && v->st) {
        int r = read_body_direct(v);
        if (r <= 0)
            return r;
    }
    if (v->in_len < IN_CAP) {
        ssize_t n = read(v->ev.fd, v->in + v->in_len, IN_CAP - v->in_len);
        if (n > 0) {
            bool head_begins = v->in_len == 0 && v->state == V_HEAD;
            v->in_len += (size_t)n;
            if (head_begins) {
                v->head_start = edge_now_ms();
                if (v->pending == 0)
                    arm_timer(v);
            }
            e->stats.bytes_in += (uint64_t)n;
            v->last_activity = edge_now_ms();
            if (v->state == V_BODY)
                pace_moved(&v->body, (uint64_t)n);
        } else if (n == 0) {
            on_read_eof(v);
        } else if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (!process_in(v))
        return -1;
    if (v->read_eof && v->in_len > 0 && v->state == V_HEAD && v->pending == 0)
        kill_later(v); /* a partial head and then EOF: nothing to answer */
    set_reading(v);
    return 0;
}

/* The stream's rx is drained and the tunnel sent FIN. */
static void on_stream_done(struct visitor *v)
{
    if (v->pending > 0 && resp_bytes(v) == 0 && v->state != V_RAW) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "the local service of tunnel \"%s\" closed the connection without answering",
                 v->name);
        release_stream(v, 0);
        respond_now(v, 502, msg);
        return;
    }
    hobs_eof(v->resp);
    set_abortive(v, false); /* the tunnel ended it: a clean end */
    linger(v);
}

/* The response observer sees what was written, region by region. */
struct resp_seen {
    hobs *obs;
    bool bad;
};

static void resp_seen(void *ud, const uint8_t *p, size_t n)
{
    struct resp_seen *s = ud;
    if (!s->bad && hobs_feed(s->obs, p, n) < 0)
        s->bad = true;
}

static int on_writeable(struct visitor *v)
{
    struct edge *e = v->e;
    if (v->kill)
        return -1;
    size_t budget = WRITE_BUDGET;
    while (v->st && budget > 0) {
        buf *rx = mux_stream_rx(v->st);
        size_t n;
        struct resp_seen seen = {v->resp, false};
        enum vstate before = v->state; /* the observer's callbacks may move it */
        ssize_t w = buf_writev_peek(rx, v->ev.fd, budget, &n, resp_seen, &seen);
        if (!n)
            break;
        if (w < 0) {
            if (w == -EAGAIN) {
                send_waits(v);
                wait_writable(v);
                return 0;
            }
            log_debug("visitor=%s tunnel=%s write failed: %s", v->peer, v->name, strerror((int)-w));
            release_stream(v, RST_CANCEL);
            return -1;
        }
        e->stats.bytes_out += (uint64_t)w;
        v->last_activity = edge_now_ms();
        pace_moved(&v->send, (uint64_t)w);
        if (seen.bad && v->state != V_RAW) {
            log_info("visitor=%s tunnel=%s the local service sent a malformed response; closing "
                     "after it",
                     v->peer, v->name);
            hobs_set_raw(v->resp);
            v->pending = 0;
            if (!v->read_eof)
                v->state = V_ERROR; /* stop taking requests; linger once drained */
        }
        buf_consume(rx, (size_t)w);
        mux_stream_rx_consumed(v->st, (size_t)w);
        budget -= (size_t)w;
        if (v->pending > 0 && resp_bytes(v) == 0)
            arm_response_timer(v);
        else
            lws_sul_cancel(&v->rsul);
        if (before == V_UPGRADE && v->state != V_UPGRADE) {
            if (!process_in(v))
                return -1;
            set_reading(v);
        } else if (before != v->state || v->state == V_HEAD) {
            if (!process_in(v))
                return -1;
            set_reading(v);
        }
        if ((size_t)w < n) {
            send_waits(v);
            wait_writable(v);
            return 0;
        }
    }
    if (v->st && !buf_empty(mux_stream_rx(v->st))) {
        want_write(v);
        return 0;
    }
    v->send_drained = true; /* the socket may still hold some: send_waits() */
    if (v->state == V_ERROR && v->out && (v->pending == 0 || !v->st)) {
        while (v->out_off < v->out_len) {
            ssize_t w = write(v->ev.fd, v->out + v->out_off, v->out_len - v->out_off);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    send_waits(v);
                    wait_writable(v);
                    return 0;
                }
                return -1;
            }
            v->out_off += (size_t)w;
            pace_moved(&v->send, (uint64_t)w);
        }
        free(v->out);
        v->out = NULL;
        linger(v);
        return 0;
    }
    if (v->state == V_ERROR && !v->out && v->pending == 0) {
        linger(v);
        return 0;
    }
    if (v->last_request && v->state == V_HEAD && v->pending == 0) {
        linger(v); /* its response is written: nothing else is served here */
        return 0;
    }
    if (v->st && mux_stream_rx_done(v->st)) {
        if (v->state == V_RAW && !v->read_eof) {
            /* half-close: the tunnel is done sending, the visitor may still send */
            if (!v->wr_shut) {
                v->wr_shut = true;
                set_abortive(v, false);
                shutdown(v->ev.fd, SHUT_WR);
            }
            return 0;
        }
        on_stream_done(v);
    } else if (!v->st && v->state != V_ERROR && v->state != V_LINGER)
        linger(v);
    else if (v->draining && v->pending == 0 && v->state == V_HEAD && v->in_len == 0)
        linger(v);
    return 0;
}

/* --- stream events from the session --- */

void visitor_stream_readable(struct visitor *v)
{
    if (!live(v))
        return;
    if (v->st && !buf_empty(mux_stream_rx(v->st)))
        send_waits(v);
    want_write(v);
}

void visitor_stream_writable(struct visitor *v)
{
    if (!live(v))
        return;
    if (v->st && buf_room(mux_stream_tx(v->st)) > 0)
        body_resume(v);
    process_in(v); /* cannot hand off here: only the first head does that */
    set_reading(v);
}

void visitor_stream_closed(struct visitor *v, uint16_t code)
{
    v->st = NULL;
    if (v->via_peer && (code == RST_NOT_HERE || code == RST_SESSION_GONE || code == RST_LOOP)) {
        fleet_forget(v->e, v->name);
        v->e->fleet.forward_errors++;
    }
    if (v->pending > 0 && resp_bytes(v) == 0 && v->state != V_RAW) {
        char msg[200];
        if (code == RST_REFUSED)
            snprintf(msg, sizeof msg,
                     "the local service of tunnel \"%s\" refused the connection (is it running?)",
                     v->name);
        else if (code == RST_SESSION_GONE)
            snprintf(msg, sizeof msg, "tunnel \"%s\" went offline", v->name);
        else if (code == RST_NOT_HERE || code == RST_LOOP)
            snprintf(msg, sizeof msg,
                     "tunnel \"%s\" is no longer where the fleet said it was; retry", v->name);
        else
            snprintf(msg, sizeof msg, "tunnel \"%s\" reset the connection (%s)", v->name,
                     frame_rst_name(code));
        respond_now(v, code == RST_TOO_MANY ? 503 : code == RST_TIMEOUT ? 504 : 502, msg);
        return;
    }
    if (hobs_in_message(v->resp) || v->state == V_RAW)
        set_abortive(v, true); /* cut mid-response: a reset, never a clean end */
    kill_later(v);
}

/* --- lifecycle --- */

static void visitor_free(struct visitor *v)
{
    struct edge *e = v->e;
    lws_sul_cancel(&v->sul);
    lws_sul_cancel(&v->rsul);
    if (v->wait)
        fleet_cancel(v->wait);
    release_stream(v, RST_CANCEL);
    hmsg_free(v->req);
    hobs_free(v->resp);
    free(v->in);
    free(v->out);
    if (v->prev)
        v->prev->next = v->next;
    else if (e->visitors == v)
        e->visitors = v->next;
    if (v->next)
        v->next->prev = v->prev;
    e->nvisitors--;
    free(v);
    edge_check_drained(e);
}

static int on_event(struct evfd *f, enum ev_event ev)
{
    struct visitor *v = lws_container_of(f, struct visitor, ev);
    switch (ev) {
    case EV_READ:
        if (v->kill)
            return -1;
        return on_readable(v);
    case EV_WRITE:
        return on_writeable(v);
    case EV_CLOSE:
        visitor_free(v);
        return 0;
    }
    return 0;
}

void visitor_accept(struct edge *e, int fd, const struct sockaddr *sa, socklen_t salen)
{
    struct hmsg_limits lim = {.max_head = MAX_HEAD, .max_headers = MAX_HEADERS};
    struct hmsg_limits rlim = {.max_head = 64 * 1024, .max_headers = HMSG_MAX_HEADERS_LIMIT};
    struct visitor *v = calloc(1, sizeof *v);
    if (!v) {
        close(fd);
        return;
    }
    v->obj.kind = RAW_VISITOR;
    v->e = e;
    v->in = malloc(IN_CAP);
    v->req = hmsg_new(HMSG_REQUEST, &lim);
    v->resp = hobs_new(HMSG_RESPONSE, &rlim, &resp_ops, v);
    if (!v->in || !v->req || !v->resp) {
        hmsg_free(v->req);
        hobs_free(v->resp);
        free(v->in);
        free(v);
        close(fd);
        return;
    }
    (void)salen;
    if (ipkey_from_sockaddr(sa, &v->key) < 0)
        memset(&v->key, 0, sizeof v->key);
    addr_format(sa, v->peer, sizeof v->peer);
    addr_format_ip(sa, v->peer_ip, sizeof v->peer_ip);
    v->state = V_HEAD;
    v->last_activity = v->head_start = edge_now_ms();
    v->next = e->visitors;
    if (e->visitors)
        e->visitors->prev = v;
    e->visitors = v;
    e->nvisitors++;
    e->stats.visitors_accepted++;

    int r = evset_add(e->evset, &v->ev, fd, on_event, EVSET_READ);
    if (r < 0) {
        log_warnx("visitor=%s could not be added to the event loop: %s", v->peer, strerror(-r));
        close(fd);
        visitor_free(v);
        return;
    }
    lws_sul_schedule(e->ctx, 0, &v->sul, on_timer,
                     (lws_usec_t)e->cfg->head_timeout * LWS_US_PER_SEC);
}

void visitor_drain_all(struct edge *e)
{
    for (struct visitor *v = e->visitors; v; v = v->next) {
        v->draining = true;
        if (v->state == V_HEAD && v->pending == 0 && v->in_len == 0)
            kill_later(v);
    }
}
