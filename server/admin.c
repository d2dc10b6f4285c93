/*
 * admin: health, readiness and metrics over HTTP/1.1 for orchestrators and
 * Prometheus.
 *
 * Invariants:
 *  - at most ADMIN_MAX_CONNS connections; one over that gets a fixed 503 and
 *    is closed at once, so a flood costs no memory;
 *  - a request head is at most ADMIN_MAX_HEAD bytes (431 above), framed by
 *    hmsg (malformed: 400, then close); request bodies are never read: a
 *    request that has one is answered and the connection closed;
 *  - one request is answered at a time: pipelined heads wait in `in`, and
 *    reading stops while `in` is full;
 *  - every connection has a deadline: ADMIN_DEADLINE after it was accepted
 *    or its last response was written, the next response must be written,
 *    else it is closed (idle keep-alive, slow heads, readers that stall);
 *  - a connection is closed after an answer by shutting the write side and
 *    discarding input until EOF or ADMIN_LINGER, so the client's kernel does
 *    not drop the answer;
 *  - the metrics page is rendered into a bounded buffer (METRICS_CAP);
 *  - write interest is re-requested through a 1 us timer when asked for
 *    inside the WRITEABLE callback (the raw-file role would lose it).
 * The admin endpoint stays up during a drain: /readyz then answers 503.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lwsraw.h"
#include "addr.h"
#include "admin.h"
#include "edge.h"
#include "errpage.h"
#include "hmsg.h"
#include "log.h"
#include "quota.h"
#include "registry.h"

#define ADMIN_VERSION "0.1.0"
#define ADMIN_MAX_CONNS 64
#define ADMIN_MAX_HEAD 8192
#define ADMIN_IN_CAP (ADMIN_MAX_HEAD + 1) /* one byte over the limit lets hmsg say 431 */
#define ADMIN_MAX_HEADERS 64
#define ADMIN_DEADLINE_US (10 * LWS_US_PER_SEC)
#define ADMIN_LINGER_US (2 * LWS_US_PER_SEC)
#define ACCEPT_BATCH 16
#define METRICS_CAP (32 * 1024)
#define HEAD_CAP 512

enum admin_role { ADMIN_LISTENER, ADMIN_CONN };

/* What both the listener and a connection start with. */
struct admin_obj {
    struct raw_obj raw; /* RAW_ADMIN */
    enum admin_role role;
};

struct aconn;

struct admin {
    struct admin_obj obj;
    struct edge *e;
    int fd;
    struct lws *wsi;
    char text[ADDR_TEXT_MAX];
    struct aconn *conns;
    unsigned nconns;
    struct timespec started; /* wall clock, for process_start_time_seconds */
};

struct aconn {
    struct admin_obj obj;
    struct admin *a;
    struct aconn *prev, *next;
    struct lws *wsi;
    int fd;
    char peer[ADDR_TEXT_MAX];
    hmsg *req;
    uint8_t in[ADMIN_IN_CAP];
    size_t in_len;
    char *out; /* the response being written */
    size_t out_len, out_off;
    bool close_after; /* close once out is written */
    bool lingering;   /* write side shut; discarding input */
    bool read_eof, reading, kill;
    bool in_write_cb, rearm; /* see want_write() */
    lws_sorted_usec_list_t sul, wsul;
};

static const char busy_answer[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 31\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "too many admin connections: 64\n";

/* --- write interest (the raw-file POLLOUT trap) --- */

static void wake_cb(lws_sorted_usec_list_t *sul)
{
    struct aconn *c = lws_container_of(sul, struct aconn, wsul);
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

/* lws clears POLLOUT after the WRITEABLE callback returns, so a request made
 * inside it is re-made from a timer on the next loop turn. */
static void want_write(struct aconn *c)
{
    if (!c->wsi)
        return;
    if (c->in_write_cb)
        c->rearm = true;
    else
        lws_callback_on_writable(c->wsi);
}

static void kill_later(struct aconn *c)
{
    c->kill = true;
    want_write(c);
}

static void set_reading(struct aconn *c)
{
    bool want;
    if (c->read_eof || c->kill || !c->wsi)
        want = false;
    else if (c->lingering)
        want = true;
    else
        want = !c->close_after && c->in_len < ADMIN_IN_CAP;
    if (want != c->reading) {
        c->reading = want;
        lws_rx_flow_control(c->wsi, want ? 1 : 0);
    }
}

static void on_deadline(lws_sorted_usec_list_t *sul)
{
    struct aconn *c = lws_container_of(sul, struct aconn, sul);
    if (!c->lingering)
        log_debug("admin %s: deadline reached: closing", c->peer);
    if (c->wsi)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC); /* frees c */
}

static void arm_deadline(struct aconn *c, lws_usec_t us)
{
    lws_sul_schedule(c->a->e->ctx, 0, &c->sul, on_deadline, us);
}

/* --- the metrics page --- */

struct wr {
    char *p;
    size_t len, cap;
    bool full;
};

static void wr_printf(struct wr *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void wr_printf(struct wr *w, const char *fmt, ...)
{
    if (w->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->p + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len) {
        w->full = true;
        return;
    }
    w->len += (size_t)n;
}

static void family(struct wr *w, const char *name, const char *type, const char *help)
{
    wr_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(struct wr *w, const char *name, const char *type, const char *help, uint64_t v)
{
    family(w, name, type, help);
    wr_printf(w, "%s %" PRIu64 "\n", name, v);
}

static void labelled(struct wr *w, const char *name, const char *label, const char *lv, uint64_t v)
{
    wr_printf(w, "%s{%s=\"%s\"} %" PRIu64 "\n", name, label, lv, v);
}

/* Microseconds as exact decimal seconds: 250 -> "0.00025", 2000000 -> "2". */
static void us_to_seconds(uint64_t us, char *out, size_t cap)
{
    uint64_t s = us / 1000000, frac = us % 1000000;
    if (frac == 0) {
        snprintf(out, cap, "%" PRIu64, s);
        return;
    }
    int digits = 6;
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(out, cap, "%" PRIu64 ".%0*" PRIu64, s, digits, frac);
}

static void render_edge(struct wr *w, const struct edge *e)
{
    const struct edge_stats *s = &e->stats;
    metric(w, "warren_tunnels", "gauge", "Tunnels online on this edge (names held by a session).",
           registry_live(e->reg));
    metric(w, "warren_reserved_names", "gauge",
           "Names reserved for a disconnected client during its grace period.",
           registry_reserved(e->reg));
    metric(w, "warren_visitor_connections", "gauge", "Open public (visitor) connections.",
           e->nvisitors);
    metric(w, "warren_sessions", "gauge",
           "Open control WebSocket sessions, including those not yet welcomed.", e->nsessions);
    metric(w, "warren_draining", "gauge", "1 while the edge drains after SIGTERM, else 0.",
           e->draining ? 1 : 0);
    metric(w, "warren_edge_visitors_accepted_total", "counter", "Public connections accepted.",
           s->visitors_accepted);
    metric(w, "warren_edge_requests_total", "counter", "Visitor requests forwarded into a tunnel.",
           s->requests);
    metric(w, "warren_edge_tunnels_opened_total", "counter", "Tunnels opened (clients welcomed).",
           s->tunnels_opened);
    metric(w, "warren_edge_bytes_in_total", "counter", "Bytes read from visitors.", s->bytes_in);
    metric(w, "warren_edge_bytes_out_total", "counter", "Bytes written to visitors.", s->bytes_out);
    family(w, "warren_edge_errors_total", "counter",
           "Error answers the edge gave visitors itself, by status (4xx: client errors other "
           "than 404, e.g. 400, 408, 421, 431).");
    labelled(w, "warren_edge_errors_total", "status", "404", s->errors_404);
    labelled(w, "warren_edge_errors_total", "status", "4xx", s->errors_400);
    labelled(w, "warren_edge_errors_total", "status", "502", s->errors_502);
    labelled(w, "warren_edge_errors_total", "status", "503", s->errors_503);
    labelled(w, "warren_edge_errors_total", "status", "504", s->errors_504);
}

static void render_limits(struct wr *w, const struct edge *e)
{
    const struct quota_stats *q = quota_stats(e->quota);
    metric(w, "warren_max_connections", "gauge",
           "Public connections allowed at once (--max-connections).",
           quota_max_connections(e->quota));
    family(w, "warren_limit_refusals_total", "counter",
           "Refusals by a limit: connections (503 at accept), handshake_rate (429), "
           "tunnels_per_ip (too_many_tunnels), streams (503).");
    labelled(w, "warren_limit_refusals_total", "limit", "connections", q->conn_refused);
    labelled(w, "warren_limit_refusals_total", "limit", "handshake_rate", q->handshakes_limited);
    labelled(w, "warren_limit_refusals_total", "limit", "tunnels_per_ip", q->tunnels_refused);
    labelled(w, "warren_limit_refusals_total", "limit", "streams", q->streams_refused);
    family(w, "warren_visitor_timeouts_total", "counter",
           "Visitor connections cut by a deadline: head (408), body (slower than --min-rate over "
           "--body-timeout), send (took a response slower than --min-rate over --send-timeout).");
    labelled(w, "warren_visitor_timeouts_total", "deadline", "head", q->head_timeouts);
    labelled(w, "warren_visitor_timeouts_total", "deadline", "body", q->body_timeouts);
    labelled(w, "warren_visitor_timeouts_total", "deadline", "send", q->send_timeouts);
    metric(w, "warren_accept_pauses_total", "counter",
           "Pauses of accepting because accept() failed for lack of file descriptors or memory.",
           q->accept_pauses);
}

static void render_latency(struct wr *w, const struct fleet_stats *f)
{
    const char *name = "warren_lookup_duration_seconds";
    char le[32];
    family(w, name, "histogram", "Time to find the owner of a name that is not local.");
    uint64_t cum = 0;
    for (unsigned i = 0; i < FLEET_LAT_BUCKETS; i++) {
        cum += f->lat_buckets[i];
        if (i < FLEET_LAT_BUCKETS - 1)
            us_to_seconds(fleet_lat_bounds_us[i], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        wr_printf(w, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le, cum);
    }
    us_to_seconds(f->lat_sum_us, le, sizeof le);
    wr_printf(w, "%s_sum %s\n%s_count %" PRIu64 "\n", name, le, name, cum);
}

static void render_fleet(struct wr *w, const struct fleet_stats *f)
{
    family(w, "warren_lookups_total", "counter",
           "Fleet lookups of names that are not local, by result.");
    labelled(w, "warren_lookups_total", "result", "cache_hit", f->lookup_cache_hits);
    labelled(w, "warren_lookups_total", "result", "found", f->lookup_found);
    labelled(w, "warren_lookups_total", "result", "not_found", f->lookup_not_found);
    labelled(w, "warren_lookups_total", "result", "unanswered", f->lookup_unanswered);
    metric(w, "warren_peers_asked_total", "counter", "Questions sent to peers.", f->peers_asked);
    metric(w, "warren_forwards_total", "counter", "Visitor connections forwarded to a peer.",
           f->forwards);
    metric(w, "warren_forward_errors_total", "counter", "Forwards to a peer that failed.",
           f->forward_errors);
    metric(w, "warren_loops_refused_total", "counter",
           "Forwarded connections refused because they had already been forwarded once.",
           f->loops_refused);
    metric(w, "warren_claims_started_total", "counter",
           "Name registrations checked with the fleet (granted = started - refused - "
           "unanswered, once none is in flight).",
           f->claims);
    family(w, "warren_claims_total", "counter",
           "Name registrations the fleet did not grant, by result.");
    labelled(w, "warren_claims_total", "result", "granted", f->claims_granted);
    labelled(w, "warren_claims_total", "result", "refused", f->claims_refused);
    labelled(w, "warren_claims_total", "result", "unanswered", f->claims_unanswered);
    metric(w, "warren_peer_auth_failures_total", "counter",
           "Peer requests refused: bad MAC, stale or replayed.", f->peer_auth_failures);
    metric(w, "warren_dns_resolutions_total", "counter", "Resolutions of --peers-dns.",
           f->dns_resolutions);
    metric(w, "warren_dns_failures_total", "counter", "Resolutions of --peers-dns that failed.",
           f->dns_failures);
    metric(w, "warren_peers_known", "gauge", "Peers found in DNS (this edge excluded).",
           f->peers_known);
    metric(w, "warren_peers_connected", "gauge", "Peers with an open, authenticated link.",
           f->peers_connected);
    render_latency(w, f);
}

/* The whole exposition; its length, or -ENOSPC when it does not fit. */
static ssize_t render_metrics(const struct admin *a, char *buf, size_t cap)
{
    struct wr w = {.p = buf, .cap = cap};
    render_edge(&w, a->e);
    render_limits(&w, a->e);
    render_fleet(&w, &a->e->fleet);
    metric(&w, "warren_admin_connections", "gauge",
           "Open connections to this admin endpoint, the asking one included.", a->nconns);
    family(&w, "warren_build_info", "gauge", "Build information; the value is always 1.");
    wr_printf(&w, "warren_build_info{version=\"%s\"} 1\n", ADMIN_VERSION);
    family(&w, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch in seconds.");
    wr_printf(&w, "process_start_time_seconds %lld.%06ld\n", (long long)a->started.tv_sec,
              a->started.tv_nsec / 1000);
    return w.full ? -ENOSPC : (ssize_t)w.len;
}

/* --- requests --- */

/* Queue one response; head_only: HEAD request (headers describe the body that
 * is not sent). http10_keep: an HTTP/1.0 client asked for keep-alive. */
static void respond(struct aconn *c, unsigned status, const char *ctype, const char *body,
                    size_t body_len, const char *extra, bool head_only, bool http10_keep)
{
    char head[HEAD_CAP];
    const char *conn = c->close_after ? "Connection: close\r\n"
                       : http10_keep  ? "Connection: keep-alive\r\n"
                                      : "";
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%s%s\r\n",
                     status, errpage_reason(status), ctype, body_len, extra ? extra : "", conn);
    if (n < 0 || (size_t)n >= sizeof head) {
        kill_later(c);
        return;
    }
    size_t blen = head_only ? 0 : body_len;
    c->out = malloc((size_t)n + blen);
    if (!c->out) {
        kill_later(c);
        return;
    }
    memcpy(c->out, head, (size_t)n);
    if (blen)
        memcpy(c->out + n, body, blen);
    c->out_len = (size_t)n + blen;
    c->out_off = 0;
    want_write(c);
}

static void respond_text(struct aconn *c, unsigned status, const char *text, const char *extra,
                         bool head_only, bool http10_keep)
{
    respond(c, status, "text/plain; charset=utf-8", text, strlen(text), extra, head_only,
            http10_keep);
}

enum route { R_NONE, R_HEALTHZ, R_READYZ, R_METRICS };

static enum route route_of(struct hslice target)
{
    size_t len = target.len;
    const char *q = memchr(target.p, '?', len);
    if (q)
        len = (size_t)(q - target.p);
    static const struct {
        const char *path;
        enum route r;
    } table[] = {{"/healthz", R_HEALTHZ}, {"/readyz", R_READYZ}, {"/metrics", R_METRICS}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strlen(table[i].path) == len && memcmp(table[i].path, target.p, len) == 0)
            return table[i].r;
    return R_NONE;
}

static bool method_is(const struct hmsg_head *h, const char *m)
{
    return h->method.len == strlen(m) && memcmp(h->method.p, m, h->method.len) == 0;
}

static void serve_metrics(struct aconn *c, bool head_only, bool keep10)
{
    char *body = malloc(METRICS_CAP);
    ssize_t n = body ? render_metrics(c->a, body, METRICS_CAP) : -ENOMEM;
    if (n < 0) {
        log_warnx("admin %s: metrics page does not fit in %d bytes", c->peer, METRICS_CAP);
        c->close_after = true;
        respond_text(c, 500, "metrics unavailable\n", NULL, head_only, false);
    } else {
        respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", body, (size_t)n, NULL,
                head_only, keep10);
    }
    free(body);
}

/* Answer one request head (its slices point into c->in). */
static void handle(struct aconn *c, const struct hmsg_head *h)
{
    bool get = method_is(h, "GET"), head_only = method_is(h, "HEAD");
    bool has_body = h->chunked || (h->has_length && h->content_length > 0);
    if (!h->keep_alive || has_body || h->upgrade)
        c->close_after = true; /* bodies are not read; upgrades are not spoken */
    bool keep10 = !c->close_after && h->http_major == 1 && h->http_minor == 0;
    enum route r = route_of(h->target);
    log_debug("admin %s: %.*s %.*s", c->peer, (int)h->method.len, h->method.p,
              (int)(h->target.len > 200 ? 200 : h->target.len), h->target.p);
    if (r == R_NONE) {
        respond_text(c, 404, "not found: /healthz, /readyz and /metrics are served here\n", NULL,
                     head_only, keep10);
        return;
    }
    if (!get && !head_only) {
        respond_text(c, 405, "method not allowed: use GET or HEAD\n", "Allow: GET, HEAD\r\n", false,
                     keep10);
        return;
    }
    switch (r) {
    case R_HEALTHZ:
        respond_text(c, 200, "ok\n", NULL, head_only, keep10);
        break;
    case R_READYZ:
        if (c->a->e->draining)
            respond_text(c, 503, "draining\n", NULL, head_only, keep10);
        else
            respond_text(c, 200, "ready\n", NULL, head_only, keep10);
        break;
    case R_METRICS:
        serve_metrics(c, head_only, keep10);
        break;
    case R_NONE:
        break;
    }
}

static void consume_in(struct aconn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Parse and answer the next buffered request, if no answer is being written. */
static void process(struct aconn *c)
{
    if (c->out || c->close_after || c->lingering || c->kill || c->in_len == 0)
        return;
    size_t used = 0;
    enum hmsg_event ev = hmsg_feed(c->req, c->in, c->in_len, &used);
    if (ev == HMSG_NEED_MORE) {
        if (c->read_eof)
            kill_later(c); /* a partial head, then EOF: nothing to answer */
        return;
    }
    if (ev != HMSG_HEAD) {
        unsigned st = ev == HMSG_ERROR ? hmsg_error_status(c->req) : 400;
        log_debug("admin %s: bad request: %s", c->peer, hmsg_error_reason(c->req));
        c->close_after = true;
        char msg[160];
        snprintf(msg, sizeof msg, "bad request: %s\n", hmsg_error_reason(c->req));
        respond_text(c, st, msg, NULL, false, false);
        return;
    }
    handle(c, hmsg_head(c->req));
    consume_in(c, used);
    if (!c->close_after) {
        /* no body: this feed ends the message */
        if (hmsg_feed(c->req, c->in, 0, &used) != HMSG_END)
            c->close_after = true;
    }
}

/* The answer is out and the connection must end: shut our side, linger. */
static int finish(struct aconn *c)
{
    shutdown(c->fd, SHUT_WR);
    if (c->read_eof)
        return -1;
    c->lingering = true;
    c->in_len = 0;
    arm_deadline(c, ADMIN_LINGER_US);
    set_reading(c);
    return 0;
}

static int on_writeable(struct aconn *c)
{
    if (c->kill)
        return -1;
    if (!c->out)
        return 0;
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                want_write(c);
                return 0;
            }
            return -1;
        }
        c->out_off += (size_t)w;
    }
    free(c->out);
    c->out = NULL;
    if (c->close_after)
        return finish(c);
    arm_deadline(c, ADMIN_DEADLINE_US);
    process(c); /* a pipelined request may be waiting */
    if (c->kill)
        return -1;
    if (!c->out && c->read_eof)
        return finish(c);
    set_reading(c);
    return 0;
}

static int on_readable(struct aconn *c)
{
    if (c->kill)
        return -1;
    if (c->lingering) {
        uint8_t junk[4096];
        ssize_t n = read(c->fd, junk, sizeof junk);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        return 0;
    }
    if (c->in_len < ADMIN_IN_CAP) {
        ssize_t n = read(c->fd, c->in + c->in_len, ADMIN_IN_CAP - c->in_len);
        if (n > 0)
            c->in_len += (size_t)n;
        else if (n == 0)
            c->read_eof = true;
        else if (errno != EAGAIN && errno != EINTR)
            return -1;
    }
    process(c);
    if (c->read_eof && !c->out && !c->lingering)
        return -1; /* nothing (more) to answer */
    set_reading(c);
    return 0;
}

/* --- connections --- */

static void conn_free(struct aconn *c)
{
    struct admin *a = c->a;
    lws_sul_cancel(&c->sul);
    lws_sul_cancel(&c->wsul);
    hmsg_free(c->req);
    free(c->out);
    if (c->prev)
        c->prev->next = c->next;
    else if (a->conns == c)
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    free(c);
}

static void conn_accept(struct admin *a, int fd, const struct sockaddr *sa)
{
    struct hmsg_limits lim = {.max_head = ADMIN_MAX_HEAD, .max_headers = ADMIN_MAX_HEADERS};
    struct aconn *c = calloc(1, sizeof *c);
    if (!c || !(c->req = hmsg_new(HMSG_REQUEST, &lim))) {
        free(c);
        close(fd);
        return;
    }
    c->obj.raw.kind = RAW_ADMIN;
    c->obj.role = ADMIN_CONN;
    c->a = a;
    c->fd = fd;
    c->reading = true;
    addr_format(sa, c->peer, sizeof c->peer);
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;

    struct lws *w = lwsraw_adopt(a->e->vh, fd, WARREN_RAW_PROTOCOL, c);
    if (!w) {
        /* lws closed the fd */
        c->wsi = NULL;
        log_warnx("admin %s: could not be adopted into the event loop", c->peer);
        conn_free(c);
        return;
    }
    c->wsi = w;
    arm_deadline(c, ADMIN_DEADLINE_US);
}

static int conn_callback(struct lws *wsi, enum lws_callback_reasons reason, struct aconn *c)
{
    switch (reason) {
    case LWS_CALLBACK_RAW_ADOPT_FILE:
        c->wsi = wsi;
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE:
        return on_readable(c);
    case LWS_CALLBACK_RAW_WRITEABLE_FILE: {
        c->in_write_cb = true;
        int r = on_writeable(c);
        c->in_write_cb = false;
        if (r == 0 && c->rearm) {
            c->rearm = false;
            lws_sul_schedule(c->a->e->ctx, 0, &c->wsul, wake_cb, 1);
        }
        return r;
    }
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        c->wsi = NULL;
        conn_free(c);
        return 0;
    default:
        return 0;
    }
}

/* --- listener --- */

static void accept_batch(struct admin *a)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(a->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                log_warn("admin %s: accept", a->text);
            return;
        }
        if (a->nconns >= ADMIN_MAX_CONNS) {
            /* a fresh socket's send buffer is empty: this fits or is dropped */
            ssize_t w = send(fd, busy_answer, sizeof busy_answer - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w;
            shutdown(fd, SHUT_WR);
            /* what already arrived is read, so close() sends FIN, not RST */
            char junk[4096];
            while (recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0)
                ;
            close(fd);
            log_debug("admin %s: %d connections open: refused one", a->text, ADMIN_MAX_CONNS);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_accept(a, fd, (struct sockaddr *)&ss);
    }
}

static int listener_cb(struct admin *a, enum lws_callback_reasons reason)
{
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        accept_batch(a);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        a->wsi = NULL;
        a->fd = -1;
        return 0;
    default:
        return 0;
    }
}

int admin_callback(struct lws *wsi, enum lws_callback_reasons reason, struct raw_obj *o)
{
    struct admin_obj *ao = (struct admin_obj *)o;
    if (ao->role == ADMIN_LISTENER)
        return listener_cb((struct admin *)ao, reason);
    return conn_callback(wsi, reason, (struct aconn *)ao);
}

static int open_socket(const struct listen_addr *la)
{
    int fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_err("--admin-listen %s: socket", la->text);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (la->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&la->ss;
        int v6only = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) ? 0 : 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    if (bind(fd, (const struct sockaddr *)&la->ss, la->len) < 0) {
        log_err("--admin-listen %s: cannot bind the admin endpoint (\"off\" disables it)",
                la->text);
        close(fd);
        return -1;
    }
    if (listen(fd, 64) < 0) {
        log_err("--admin-listen %s: listen", la->text);
        close(fd);
        return -1;
    }
    return fd;
}

struct admin *admin_new(struct edge *e, const struct listen_addr *la)
{
    struct admin *a = calloc(1, sizeof *a);
    if (!a) {
        log_errx("--admin-listen %s: out of memory", la->text);
        return NULL;
    }
    a->obj.raw.kind = RAW_ADMIN;
    a->obj.role = ADMIN_LISTENER;
    a->e = e;
    clock_gettime(CLOCK_REALTIME, &a->started);
    a->fd = open_socket(la);
    if (a->fd < 0) {
        free(a);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(a->fd, (struct sockaddr *)&ss, &sl) == 0)
        addr_format((struct sockaddr *)&ss, a->text, sizeof a->text); /* the real port if 0 */
    else
        snprintf(a->text, sizeof a->text, "%s", la->text);

    a->wsi = lwsraw_adopt(e->vh, a->fd, WARREN_RAW_PROTOCOL, a);
    if (!a->wsi) {
        log_errx("--admin-listen %s: could not add the socket to the event loop", la->text);
        free(a); /* lws closed the fd */
        return NULL;
    }
    log_info("admin endpoint on http://%s (/healthz, /readyz, /metrics)", a->text);
    return a;
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    /* lws_context_destroy() has closed the listener and every connection
     * (conn_free ran for each); only a listener that was never adopted is
     * still ours */
    if (!a->wsi && a->fd >= 0)
        close(a->fd);
    free(a);
}
