/*
 * local: one connection to the local service per stream.
 *
 * OPEN from the edge starts a non-blocking connect to the first resolved
 * address of --local-host; a refusal tries the next address, and when none
 * is left the stream is reset with RST(refused) so the edge answers 502.
 * Bytes flow with the same pump as on the edge: local -> tunnel reads only
 * while the stream's tx buffer has room, tunnel -> local writes what the rx
 * buffer holds and returns credit. EOF on either side is passed on as a
 * half-close. Requests and responses are observed (hobs) to report one
 * "request" event per exchange. A stream reset in the middle of an exchange
 * (a request or response under way, or a raw pipe after a 101) resets the
 * local connection: the local service must not mistake the cut for a clean
 * end.
 */
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "hobs.h"
#include "log.h"
#include "evset.h"

#define REQ_FIFO 16
#define READ_BUDGET (256 * 1024)

struct req_rec {
    char method[16];
    char path[200];
    uint64_t start_ms, bytes_in;
    unsigned status;
    bool done_in;
};

struct local {
    struct cli *c;
    struct evfd ev; /* in the CLI's epoll set (evset.h); ev.fd is the socket */
    mux_stream *st;
    struct local *prev, *next;
    unsigned addr_idx;
    bool connected, read_eof, wr_shut, kill;
    hobs *req_obs, *resp_obs;
    struct req_rec q[REQ_FIFO];
    unsigned qhead, qn;
    uint64_t req_mark, resp_mark;
    lws_sorted_usec_list_t sul;
};

/* on_writeable() at the end of this turn, or on the next. */
static void want_write(struct local *l)
{
    evset_write_soon(&l->ev);
}

/* on_writeable() once the socket takes bytes again (a write met EAGAIN). */
static void wait_writable(struct local *l)
{
    evset_write_when_ready(&l->ev);
}

static int start_connect(struct local *l);
static int on_event(struct evfd *f, enum ev_event ev);

int local_resolve(struct cli *c)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", c->cfg->port);
    int r = getaddrinfo(c->cfg->local_host, port, &hints, &res);
    if (r != 0) {
        log_errx("--local-host %s: %s", c->cfg->local_host, gai_strerror(r));
        return -1;
    }
    c->local_addrs.n = 0;
    for (struct addrinfo *ai = res; ai && c->local_addrs.n < CLI_MAX_ADDRS; ai = ai->ai_next) {
        memcpy(&c->local_addrs.a[c->local_addrs.n], ai->ai_addr, ai->ai_addrlen);
        c->local_addrs.len[c->local_addrs.n++] = ai->ai_addrlen;
    }
    freeaddrinfo(res);
    return c->local_addrs.n ? 0 : -1;
}

static struct req_rec *front(struct local *l)
{
    return l->qn ? &l->q[l->qhead] : NULL;
}

static void req_on_head(void *ud, const struct hmsg_head *h)
{
    struct local *l = ud;
    if (l->qn == REQ_FIFO)
        return; /* not tracked: no event for this one */
    struct req_rec *r = &l->q[(l->qhead + l->qn++) % REQ_FIFO];
    memset(r, 0, sizeof *r);
    size_t ml = h->method.len < sizeof r->method - 1 ? h->method.len : sizeof r->method - 1;
    memcpy(r->method, h->method.p, ml);
    size_t pl = h->target.len < sizeof r->path - 1 ? h->target.len : sizeof r->path - 1;
    memcpy(r->path, h->target.p, pl);
    for (size_t i = 0; i < pl; i++)
        if ((unsigned char)r->path[i] < 0x20 || r->path[i] == 0x7f)
            r->path[i] = '?';
    r->start_ms = cli_now_ms();
    if (l->qn == 1 && strcmp(r->method, "HEAD") == 0)
        hobs_expect_head_response(l->resp_obs);
}

static void req_on_end(void *ud)
{
    struct local *l = ud;
    uint64_t pos = hobs_total(l->req_obs);
    for (unsigned i = 0; i < l->qn; i++) {
        struct req_rec *r = &l->q[(l->qhead + i) % REQ_FIFO];
        if (!r->done_in) {
            r->done_in = true;
            r->bytes_in = pos - l->req_mark;
            break;
        }
    }
    l->req_mark = pos;
}

static void resp_on_head(void *ud, const struct hmsg_head *h)
{
    struct local *l = ud;
    struct req_rec *r = front(l);
    if (r)
        r->status = h->status;
    if (h->status == 101)
        hobs_set_raw(l->req_obs);
}

static void resp_on_end(void *ud)
{
    struct local *l = ud;
    struct req_rec *r = front(l);
    uint64_t pos = hobs_total(l->resp_obs);
    if (!r || (r->status >= 100 && r->status < 200 && r->status != 101))
        return;
    if (!r->done_in)
        r->bytes_in = hobs_total(l->req_obs) - l->req_mark;
    out_request(l->c, r->method, r->path, r->status, cli_now_ms() - r->start_ms, r->bytes_in,
                pos - l->resp_mark);
    l->resp_mark = pos;
    l->qhead = (l->qhead + 1) % REQ_FIFO;
    l->qn--;
    r = front(l);
    if (r && strcmp(r->method, "HEAD") == 0)
        hobs_expect_head_response(l->resp_obs);
}

static const struct hobs_ops req_ops = {req_on_head, req_on_end};
static const struct hobs_ops resp_ops = {resp_on_head, resp_on_end};

static void set_reading(struct local *l)
{
    bool want =
        l->connected && !l->read_eof && !l->kill && l->st && buf_room(mux_stream_tx(l->st)) > 0;
    if (l->ev.in_set && want != l->ev.reading)
        evset_read(&l->ev, want);
}

static void kill_later(struct local *l)
{
    l->kill = true;
    evset_close(&l->ev);
}

/* 100 ms after the last local connection closed (its stream's buffers are
 * gone by then), hand freed heap back: a burst of connections leaves the
 * CLI at its idle RSS instead of keeping the burst's peak. At most once a
 * second, so one request at a time does not trim each time. */
static void trim_cb(lws_sorted_usec_list_t *sul)
{
    struct cli *c = lws_container_of(sul, struct cli, trim_sul);
    if (c->nlocals == 0) {
        malloc_trim(0);
        c->last_trim_ms = cli_now_ms();
    }
}

static void local_free(struct local *l)
{
    struct cli *c = l->c;
    lws_sul_cancel(&l->sul);
    if (l->st) /* graceful when both directions ended: queued bytes and FIN still go out */
        mux_stream_release(l->st, l->read_eof && l->wr_shut ? 0 : RST_CANCEL);
    hobs_free(l->req_obs);
    hobs_free(l->resp_obs);
    if (l->prev)
        l->prev->next = l->next;
    else if (c->locals == l)
        c->locals = l->next;
    if (l->next)
        l->next->prev = l->prev;
    c->nlocals--;
    free(l);
    if (c->nlocals == 0 && !c->done && cli_now_ms() - c->last_trim_ms >= 1000)
        lws_sul_schedule(c->ctx, 0, &c->trim_sul, trim_cb, 100 * LWS_US_PER_MS);
}

int local_on_open(struct cli *c, mux_stream *st, const struct frame_open *o)
{
    struct hmsg_limits lim = {.max_head = 64 * 1024, .max_headers = HMSG_MAX_HEADERS_LIMIT};
    if (o->proto != FRAME_PROTO_HTTP)
        return RST_REFUSED;
    struct local *l = calloc(1, sizeof *l);
    if (!l)
        return RST_INTERNAL;
    l->c = c;
    l->st = st;
    l->ev.fd = -1;
    l->req_obs = hobs_new(HMSG_REQUEST, &lim, &req_ops, l);
    l->resp_obs = hobs_new(HMSG_RESPONSE, &lim, &resp_ops, l);
    if (!l->req_obs || !l->resp_obs) {
        hobs_free(l->req_obs);
        hobs_free(l->resp_obs);
        free(l);
        return RST_INTERNAL;
    }
    l->next = c->locals;
    if (c->locals)
        c->locals->prev = l;
    c->locals = l;
    c->nlocals++;
    mux_stream_set_ud(st, l);
    log_debug("tunnel=%s stream=%u open from %s", c->name, mux_stream_id(st), o->remote);
    if (start_connect(l) < 0) {
        /* no address could even be tried: refuse after this callback returns */
        l->st = NULL;
        local_free(l);
        return RST_REFUSED;
    }
    return 0;
}

/* Non-blocking connect to local address l->addr_idx and adopt the socket. */
static int start_connect(struct local *l)
{
    struct cli *c = l->c;
    while (l->addr_idx < c->local_addrs.n) {
        struct sockaddr *sa = (struct sockaddr *)&c->local_addrs.a[l->addr_idx];
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            l->addr_idx++;
            continue;
        }
        if (connect(fd, sa, c->local_addrs.len[l->addr_idx]) < 0 && errno != EINPROGRESS) {
            close(fd);
            l->addr_idx++;
            continue;
        }
        l->connected = false;
        /* EV_WRITE once the connect is done or failed */
        if (evset_add(c->evset, &l->ev, fd, on_event, EVSET_CONNECT) < 0) {
            close(fd);
            l->addr_idx++;
            continue;
        }
        return 0;
    }
    return -1;
}

static void retry_next(lws_sorted_usec_list_t *sul)
{
    struct local *l = lws_container_of(sul, struct local, sul);
    l->addr_idx++;
    if (start_connect(l) < 0) {
        log_info("tunnel=%s local service %s:%u refused the connection", l->c->name,
                 l->c->cfg->local_host, l->c->cfg->port);
        if (l->st)
            mux_stream_release(l->st, RST_REFUSED);
        l->st = NULL;
        local_free(l);
    }
}

static void on_connected(struct local *l)
{
    l->connected = true;
    set_reading(l);
    want_write(l);
}

/* The observers see each region read or written. */
static void resp_seen(void *ud, const uint8_t *p, size_t n)
{
    if (hobs_feed(ud, p, n) < 0)
        hobs_set_raw(ud); /* not HTTP we understand: just relay */
}

static void req_seen(void *ud, const uint8_t *p, size_t n)
{
    hobs_feed(ud, p, n);
}

static int on_readable(struct local *l)
{
    if (!l->st)
        return -1;
    buf *tx = mux_stream_tx(l->st);
    size_t budget = READ_BUDGET;
    while (budget > 0) {
        size_t offered;
        ssize_t n = buf_readv_fd(tx, l->ev.fd, budget, &offered, resp_seen, l->resp_obs);
        if (n > 0) {
            budget -= (size_t)n;
            if ((size_t)n < offered)
                break;
            continue;
        }
        if (n == 0) {
            l->read_eof = true;
            hobs_eof(l->resp_obs);
            mux_stream_shutdown(l->st);
            break;
        }
        if (n == -EAGAIN || n == -ENOMEM)
            break; /* drained, or the stream's buffer is full */
        mux_stream_release(l->st, RST_CANCEL);
        l->st = NULL;
        return -1;
    }
    mux_stream_tx_kick(l->st);
    set_reading(l);
    if (l->read_eof && l->wr_shut)
        kill_later(l);
    return 0;
}

static int on_writeable(struct local *l)
{
    if (l->kill)
        return -1;
    if (!l->connected) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(l->ev.fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            log_debug("tunnel=%s local connect: %s", l->c->name, strerror(err));
            return -1; /* the close callback tries the next address */
        }
        on_connected(l);
    }
    if (!l->st)
        return -1;
    buf *rx = mux_stream_rx(l->st);
    for (int i = 0; i < 16; i++) {
        size_t n;
        ssize_t w = buf_writev_peek(rx, l->ev.fd, 0, &n, req_seen, l->req_obs);
        if (!n)
            break;
        if (w < 0) {
            if (w == -EAGAIN) {
                wait_writable(l);
                return 0;
            }
            mux_stream_release(l->st, RST_CANCEL);
            l->st = NULL;
            return -1;
        }
        buf_consume(rx, (size_t)w);
        mux_stream_rx_consumed(l->st, (size_t)w);
        if ((size_t)w < n) {
            wait_writable(l);
            return 0;
        }
    }
    if (!buf_empty(rx)) {
        want_write(l);
        return 0;
    }
    if (mux_stream_rx_done(l->st) && !l->wr_shut) {
        l->wr_shut = true;
        shutdown(l->ev.fd, SHUT_WR);
    }
    if (l->read_eof && l->wr_shut)
        return -1; /* local_free releases the stream gracefully */
    return 0;
}

void local_stream_readable(struct local *l)
{
    if (l->ev.in_set && l->connected)
        want_write(l);
}

void local_stream_writable(struct local *l)
{
    set_reading(l);
}

/* A request sent whose response has not ended, a request or response under
 * way, or a raw pipe: closing now would cut an exchange. */
static bool mid_exchange(const struct local *l)
{
    return l->qn > 0 || hobs_in_message(l->req_obs) || hobs_in_message(l->resp_obs) ||
           hobs_is_raw(l->req_obs) || hobs_is_raw(l->resp_obs);
}

void local_stream_closed(struct local *l, uint16_t code)
{
    log_debug("tunnel=%s stream reset by the edge (%s)", l->c->name, frame_rst_name(code));
    l->st = NULL;
    if (l->ev.in_set && l->connected && mid_exchange(l)) {
        /* close with a reset (SO_LINGER 0), never a clean end */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(l->ev.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (l->ev.in_set)
        kill_later(l);
    else
        local_free(l); /* between two addresses: no socket */
}

static int on_event(struct evfd *f, enum ev_event ev)
{
    struct local *l = lws_container_of(f, struct local, ev);
    switch (ev) {
    case EV_READ:
        if (l->kill)
            return -1;
        return on_readable(l);
    case EV_WRITE:
        return on_writeable(l);
    case EV_CLOSE:
        if (!l->connected && l->st && !l->kill) {
            /* this address failed: try the next one on the next loop turn */
            lws_sul_schedule(l->c->ctx, 0, &l->sul, retry_next, 1);
            return 0;
        }
        local_free(l);
        return 0;
    }
    return 0;
}
