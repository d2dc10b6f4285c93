/*
 * peers: the fleet's member addresses from DNS, with c-ares driven by the lws
 * loop. Why it is built this way:
 *
 * - Each c-ares socket is watched through a dup() of it adopted as a raw file
 *   (struct dnssock, kind RAW_DNS): c-ares closes its descriptor, lws closes
 *   the dup, so neither closes the other's. c-ares reports its sockets through
 *   sock_state_cb; readable/writable events call ares_process_fd; one lws
 *   timer follows ares_timeout() so retries and timeouts run without traffic.
 * - lws closes a raw file on POLLERR/POLLHUP by itself (an ICMP port
 *   unreachable on the UDP socket does it). The dnssock then becomes an
 *   "orphan": on the next loop turn c-ares is made to process its descriptor,
 *   sees the error, closes the socket and retries or fails the query at once;
 *   if c-ares keeps the socket, a new dup is adopted.
 * - A and AAAA are asked as two getaddrinfo queries, one per family, so a
 *   failure of one family (say an AAAA timeout) keeps that family's last known
 *   addresses instead of silently dropping them, which c-ares 1.18's AF_UNSPEC
 *   would do when the other family answered.
 *
 * Invariants: at most one resolution (two family queries) in flight; starts
 * are at least REFRESH_GAP_MS apart except for the scheduled periodic ones
 * (which are further apart anyway); the published set is sorted, without
 * duplicates, without our own addresses, every entry with the peer port; a
 * dnssock is freed only when it has neither a c-ares descriptor nor an lws
 * connection, never inside its own callback; on_change runs from a timer of
 * its own, never from inside c-ares.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <libwebsockets.h>

#include "lwsraw.h"
#include "addr.h"
#include "edge.h"
#include "log.h"
#include "peers.h"

#define TTL_MIN_S 2         /* re-resolve at least this far apart... */
#define TTL_MAX_S 30        /* ...and at most this far */
#define RETRY_MS 2000       /* after a failed resolution */
#define EMPTY_MS 5000       /* after an answer without records (no TTL to honour) */
#define REFRESH_GAP_MS 1000 /* between the starts of two resolutions asked by peers_refresh */
#define DNS_TIMEOUT_MS 1000 /* first try; c-ares doubles it for the next round */
#define DNS_TRIES 2
#define KICK_MAX 16 /* orphaned descriptors handled per loop turn */
#define LOG_LIST 4  /* addresses named per direction in a change line */

/* One c-ares socket as the loop sees it. */
struct dnssock {
    struct raw_obj obj; /* RAW_DNS; first */
    struct peers *p;
    struct dnssock *next;
    ares_socket_t fd; /* c-ares's descriptor; ARES_SOCKET_BAD once c-ares closed it */
    struct lws *wsi;  /* the adopted dup; NULL once lws closed it */
    bool want_write;
    lws_sorted_usec_list_t wsul; /* re-requests WRITEABLE outside the WRITEABLE callback */
};

/* One address family's query and its last known answer. */
struct famq {
    struct peers *p;
    int family;
    int status;                     /* of the last query */
    int ttl;                        /* smallest TTL of the last answer, -1 if none */
    struct sockaddr_storage *addrs; /* PEERS_MAX; last known, self excluded, port set */
    unsigned n;
};

enum dns_state { DNS_UNKNOWN, DNS_OK, DNS_EMPTY, DNS_FAILING };

struct peers {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    ares_channel ch;
    bool lib_init;
    char name[254];
    uint16_t port;
    struct sockaddr_storage self[PEERS_MAX_SELF];
    unsigned nself;
    struct peers_ops ops;
    void *ud;
    struct fleet_stats *stats;
    struct fleet_stats own_stats; /* when the caller gave none */

    struct dnssock *socks;
    struct famq fq[2];                       /* AF_INET, AF_INET6 */
    unsigned pending;                        /* family queries in flight */
    struct sockaddr_storage *set, *next_set; /* PEERS_MAX each */
    unsigned nset;
    enum dns_state state;
    bool warned_max;

    bool started, query_scheduled, again, orphans, freeing;
    bool answered_once; /* a resolution completed without failing */
    uint64_t last_start_ms, query_at_ms;
    lws_sorted_usec_list_t query_sul, ares_sul, notify_sul;
};

static void after_ares(struct peers *p);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- addresses ---- */

/* The IP of ss as (family, 4 or 16 bytes); IPv4-mapped IPv6 counts as IPv4. */
static int ip_of(const struct sockaddr_storage *ss, const uint8_t **ip)
{
    if (ss->ss_family == AF_INET) {
        *ip = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
        return AF_INET;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            *ip = a->s6_addr + 12;
            return AF_INET;
        }
        *ip = a->s6_addr;
        return AF_INET6;
    }
    *ip = NULL;
    return AF_UNSPEC;
}

static int addr_cmp(const void *va, const void *vb)
{
    const uint8_t *a, *b;
    int fa = ip_of(va, &a), fb = ip_of(vb, &b);
    if (fa != fb)
        return fa == AF_INET ? -1 : 1;
    if (fa == AF_UNSPEC)
        return 0;
    return memcmp(a, b, fa == AF_INET ? 4 : 16);
}

static bool is_self(const struct peers *p, const struct sockaddr_storage *ss)
{
    for (unsigned i = 0; i < p->nself; i++)
        if (p->self[i].ss_family != AF_UNSPEC && addr_cmp(&p->self[i], ss) == 0)
            return true;
    return false;
}

/* ai_addr of one node as a fresh sockaddr with our port; false if unusable. */
static bool node_addr(const struct ares_addrinfo_node *n, uint16_t port,
                      struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in *o = (struct sockaddr_in *)out;
        o->sin_family = AF_INET;
        o->sin_port = htons(port);
        o->sin_addr = ((const struct sockaddr_in *)n->ai_addr)->sin_addr;
        return true;
    }
    if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 *o = (struct sockaddr_in6 *)out;
        o->sin6_family = AF_INET6;
        o->sin6_port = htons(port);
        o->sin6_addr = ((const struct sockaddr_in6 *)n->ai_addr)->sin6_addr;
        o->sin6_scope_id = ((const struct sockaddr_in6 *)n->ai_addr)->sin6_scope_id;
        return true;
    }
    return false;
}

/* ---- the set ---- */

struct linebuf {
    char s[768];
    size_t len;
};

static void line_add(struct linebuf *b, const char *s)
{
    size_t n = strlen(s), room = sizeof b->s - 1 - b->len;
    if (n > room)
        n = room;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Append " (added a, b" or "; removed c" for the entries of x missing from y. */
static void describe(struct linebuf *b, const char *what, const struct sockaddr_storage *x,
                     unsigned nx, const struct sockaddr_storage *y, unsigned ny)
{
    unsigned shown = 0, more = 0, j = 0;
    for (unsigned i = 0; i < nx; i++) {
        while (j < ny && addr_cmp(&y[j], &x[i]) < 0)
            j++;
        if (j < ny && addr_cmp(&y[j], &x[i]) == 0)
            continue;
        if (shown == LOG_LIST) {
            more++;
            continue;
        }
        char a[ADDR_TEXT_MAX];
        addr_format((const struct sockaddr *)&x[i], a, sizeof a);
        if (shown == 0) {
            line_add(b, b->len ? "; " : " (");
            line_add(b, what);
            line_add(b, " ");
        } else {
            line_add(b, ", ");
        }
        line_add(b, a);
        shown++;
    }
    if (more) {
        char m[32];
        snprintf(m, sizeof m, " and %u more", more);
        line_add(b, m);
    }
}

static void log_change(struct peers *p, const struct sockaddr_storage *old, unsigned nold)
{
    struct linebuf b;
    b.len = 0;
    b.s[0] = '\0';
    describe(&b, "added", p->set, p->nset, old, nold);
    describe(&b, "removed", old, nold, p->set, p->nset);
    log_info("peers: %u%s%s", p->nset, b.s, b.len ? ")" : "");
}

static void notify_timer(lws_sorted_usec_list_t *sul)
{
    struct peers *p = lws_container_of(sul, struct peers, notify_sul);
    if (p->ops.on_change)
        p->ops.on_change(p->ud);
}

/* Union of both families' last known addresses; publish it if it differs. */
static void rebuild_set(struct peers *p, bool announce)
{
    struct sockaddr_storage *u = p->next_set;
    unsigned n = 0;
    for (int f = 0; f < 2; f++)
        for (unsigned i = 0; i < p->fq[f].n && n < PEERS_MAX; i++)
            u[n++] = p->fq[f].addrs[i];
    qsort(u, n, sizeof *u, addr_cmp);
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        if (k == 0 || addr_cmp(&u[k - 1], &u[i]) != 0)
            u[k++] = u[i];
    bool same = k == p->nset;
    for (unsigned i = 0; same && i < k; i++)
        same = addr_cmp(&u[i], &p->set[i]) == 0;
    if (same && !announce)
        return;
    struct sockaddr_storage *old = p->set;
    unsigned nold = p->nset;
    p->set = u;
    p->nset = k;
    p->next_set = old;
    p->stats->peers_known = k;
    log_change(p, old, nold);
    if (!same)
        lws_sul_schedule(p->ctx, 0, &p->notify_sul, notify_timer, 1);
}

/* ---- resolutions ---- */

static void query_timer(lws_sorted_usec_list_t *sul);

/* Start a resolution in delay_ms unless one is already due sooner. */
static void schedule_query(struct peers *p, uint64_t delay_ms)
{
    uint64_t at = now_ms() + delay_ms;
    if (p->query_scheduled && p->query_at_ms <= at)
        return;
    p->query_scheduled = true;
    p->query_at_ms = at;
    lws_sul_schedule(p->ctx, 0, &p->query_sul, query_timer,
                     delay_ms ? (lws_usec_t)delay_ms * 1000 : 1);
}

/* How long until an asked-for resolution may start. */
static uint64_t refresh_delay(const struct peers *p)
{
    if (!p->started)
        return 0;
    uint64_t el = now_ms() - p->last_start_ms;
    return el >= REFRESH_GAP_MS ? 0 : REFRESH_GAP_MS - el;
}

static bool answered(int status)
{
    return status == ARES_SUCCESS || status == ARES_ENOTFOUND || status == ARES_ENODATA;
}

static void collect(struct famq *fq, const struct ares_addrinfo *res)
{
    struct peers *p = fq->p;
    fq->n = 0;
    fq->ttl = -1;
    for (const struct ares_addrinfo_node *nd = res ? res->nodes : NULL; nd; nd = nd->ai_next) {
        struct sockaddr_storage ss;
        if (nd->ai_family != fq->family || !node_addr(nd, p->port, &ss))
            continue;
        int ttl = nd->ai_ttl < 0 ? 0 : nd->ai_ttl;
        if (fq->ttl < 0 || ttl < fq->ttl)
            fq->ttl = ttl;
        if (is_self(p, &ss))
            continue;
        if (fq->n == PEERS_MAX) {
            if (!p->warned_max)
                log_warnx("peers: %s has more than %u addresses; using the first %u", p->name,
                          PEERS_MAX, PEERS_MAX);
            p->warned_max = true;
            break;
        }
        fq->addrs[fq->n++] = ss;
    }
}

static void set_state(struct peers *p, enum dns_state st, int status)
{
    if (st == p->state)
        return;
    if (st == DNS_FAILING)
        log_warnx("peers: resolving %s failed (%s); keeping %u known peers, retrying every %u s",
                  p->name, ares_strerror(status), p->nset, RETRY_MS / 1000);
    else if (st == DNS_EMPTY)
        log_warnx("peers: %s has no A or AAAA records (%s)", p->name, ares_strerror(status));
    else if (p->state == DNS_FAILING)
        log_info("peers: resolving %s works again", p->name);
    p->state = st;
}

static void finish_resolution(struct peers *p)
{
    int fail_status = ARES_SUCCESS, empty_status = ARES_ENODATA, ttl = -1;
    bool any = false;
    for (int f = 0; f < 2; f++) {
        const struct famq *fq = &p->fq[f];
        if (!answered(fq->status))
            fail_status = fq->status;
        else if (fq->status != ARES_SUCCESS)
            empty_status = fq->status;
        else if (fq->ttl >= 0) {
            any = true;
            ttl = ttl < 0 || fq->ttl < ttl ? fq->ttl : ttl;
        }
    }
    bool failed = fail_status != ARES_SUCCESS;
    if (!failed)
        p->answered_once = true;
    p->stats->dns_resolutions++;
    if (failed)
        p->stats->dns_failures++;
    /* a failed family keeps its last known addresses; the first good answer
     * is logged even when it is empty (a lone edge) */
    rebuild_set(p, p->state == DNS_UNKNOWN && !failed && any);
    if (p->state == DNS_UNKNOWN)
        p->state = DNS_OK; /* so that set_state logs only failures and NXDOMAIN */
    if (failed)
        set_state(p, DNS_FAILING, fail_status);
    else
        set_state(p, any ? DNS_OK : DNS_EMPTY, empty_status);

    uint64_t delay;
    if (failed)
        delay = RETRY_MS;
    else if (ttl < 0)
        delay = EMPTY_MS;
    else
        delay = (uint64_t)(ttl < TTL_MIN_S ? TTL_MIN_S : ttl > TTL_MAX_S ? TTL_MAX_S : ttl) * 1000;
    if (p->again) {
        uint64_t r = refresh_delay(p);
        delay = r < delay ? r : delay;
        p->again = false;
    }
    schedule_query(p, delay);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct famq *fq = arg;
    struct peers *p = fq->p;
    if (!p->freeing) {
        fq->status = status;
        if (status == ARES_SUCCESS)
            collect(fq, res);
        else if (answered(status))
            fq->n = 0; /* NXDOMAIN or no records of this family */
        /* else: failed, keep this family's last known addresses */
    }
    ares_freeaddrinfo(res);
    if (p->freeing)
        return;
    if (p->pending && --p->pending == 0)
        finish_resolution(p);
}

static void start_resolution(struct peers *p)
{
    if (p->pending) {
        p->again = true;
        return;
    }
    p->started = true;
    p->last_start_ms = now_ms();
    p->again = false;
    p->pending = 2; /* before the calls: a callback may run inside them */
    for (int f = 0; f < 2; f++) {
        struct ares_addrinfo_hints h;
        memset(&h, 0, sizeof h);
        h.ai_family = p->fq[f].family;
        h.ai_flags = ARES_AI_NOSORT; /* we sort; c-ares's sort opens a socket per address */
        ares_getaddrinfo(p->ch, p->name, NULL, &h, on_addrinfo, &p->fq[f]);
    }
    after_ares(p);
}

static void query_timer(lws_sorted_usec_list_t *sul)
{
    struct peers *p = lws_container_of(sul, struct peers, query_sul);
    p->query_scheduled = false;
    start_resolution(p);
}

void peers_refresh(struct peers *p)
{
    if (!p || p->freeing)
        return;
    if (p->pending)
        p->again = true;
    else
        schedule_query(p, refresh_delay(p));
}

unsigned peers_count(const struct peers *p)
{
    return p ? p->nset : 0;
}

const struct sockaddr_storage *peers_addr(const struct peers *p, unsigned i)
{
    return p && i < p->nset ? &p->set[i] : NULL;
}

/* ---- c-ares sockets in the lws loop ---- */

static struct dnssock *sock_find(struct peers *p, ares_socket_t fd)
{
    for (struct dnssock *s = p->socks; s; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

static void sock_free(struct dnssock *s)
{
    struct peers *p = s->p;
    for (struct dnssock **pp = &p->socks; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    lws_sul_cancel(&s->wsul);
    free(s);
}

static void write_wake(lws_sorted_usec_list_t *sul)
{
    struct dnssock *s = lws_container_of(sul, struct dnssock, wsul);
    if (s->wsi && s->fd != ARES_SOCKET_BAD && s->want_write)
        lws_callback_on_writable(s->wsi);
}

/* Ask for WRITEABLE on the next loop turn: a request made inside the
 * WRITEABLE callback would be lost (the raw-file role clears POLLOUT after it). */
static void want_write(struct dnssock *s)
{
    lws_sul_schedule(s->p->ctx, 0, &s->wsul, write_wake, 1);
}

/* Watch s->fd through an adopted dup. 0 or -errno. */
static int sock_adopt(struct dnssock *s)
{
    int dupfd = fcntl(s->fd, F_DUPFD_CLOEXEC, 3);
    if (dupfd < 0) {
        log_warn("peers: dup of a DNS socket");
        return -errno;
    }
    s->wsi = lwsraw_adopt(s->p->vh, dupfd, WARREN_RAW_PROTOCOL, s);
    if (!s->wsi) {
        /* lws keeps a descriptor whose adoption failed (and closes it with
         * the vhost); c-ares times the queries out. */
        log_warnx("peers: could not add a DNS socket to the event loop");
        return -ENOMEM;
    }
    if (s->want_write)
        want_write(s);
    return 0;
}

/* c-ares stopped using s->fd. */
static void sock_gone(struct dnssock *s)
{
    s->fd = ARES_SOCKET_BAD;
    s->want_write = false;
    lws_sul_cancel(&s->wsul);
    if (s->wsi)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    else
        sock_free(s);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct peers *p = data;
    struct dnssock *s = sock_find(p, fd);
    if (!readable && !writable) {
        if (s)
            sock_gone(s);
        return;
    }
    if (p->freeing)
        return;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) {
            log_warnx("peers: out of memory for a DNS socket");
            return; /* c-ares times the queries out */
        }
        s->obj.kind = RAW_DNS;
        s->p = p;
        s->fd = fd;
        s->next = p->socks;
        p->socks = s;
        s->want_write = writable;
        sock_adopt(s); /* on failure it stays an orphan, retried by the timer */
        return;
    }
    s->want_write = writable;
    if (writable && s->wsi)
        want_write(s);
}

/* Timer: c-ares's timeouts, and orphaned descriptors (see the top). */
static void ares_timer(lws_sorted_usec_list_t *sul)
{
    struct peers *p = lws_container_of(sul, struct peers, ares_sul);
    ares_socket_t fds[KICK_MAX];
    unsigned n = 0;
    p->orphans = false;
    for (struct dnssock *s = p->socks; s; s = s->next)
        if (s->fd != ARES_SOCKET_BAD && !s->wsi) {
            if (n < KICK_MAX)
                fds[n++] = s->fd;
            else
                p->orphans = true;
        }
    for (unsigned i = 0; i < n; i++) {
        ares_process_fd(p->ch, fds[i], fds[i]);
        struct dnssock *s = sock_find(p, fds[i]);
        if (s && !s->wsi)
            sock_adopt(s);
    }
    if (!n)
        ares_process_fd(p->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    after_ares(p);
}

/* After every call into c-ares: follow its next timeout. */
static void after_ares(struct peers *p)
{
    if (p->freeing)
        return;
    if (p->orphans) {
        lws_sul_schedule(p->ctx, 0, &p->ares_sul, ares_timer, 1);
        return;
    }
    struct timeval tv;
    if (!ares_timeout(p->ch, NULL, &tv)) {
        lws_sul_cancel(&p->ares_sul);
        return;
    }
    lws_usec_t us = (lws_usec_t)tv.tv_sec * LWS_US_PER_SEC + tv.tv_usec;
    lws_sul_schedule(p->ctx, 0, &p->ares_sul, ares_timer, us > 0 ? us : 1);
}

static int sock_readable(struct dnssock *s)
{
    if (s->fd == ARES_SOCKET_BAD)
        return -1;
    ares_process_fd(s->p->ch, s->fd, ARES_SOCKET_BAD);
    after_ares(s->p);
    return s->fd == ARES_SOCKET_BAD ? -1 : 0;
}

static int sock_writable(struct dnssock *s)
{
    if (s->fd == ARES_SOCKET_BAD)
        return -1;
    ares_process_fd(s->p->ch, ARES_SOCKET_BAD, s->fd);
    after_ares(s->p);
    if (s->fd == ARES_SOCKET_BAD)
        return -1;
    if (s->want_write)
        want_write(s);
    return 0;
}

static void sock_closed(struct dnssock *s)
{
    s->wsi = NULL;
    lws_sul_cancel(&s->wsul);
    if (s->fd == ARES_SOCKET_BAD) {
        sock_free(s);
        return;
    }
    /* lws gave up on the descriptor (POLLERR/POLLHUP) while c-ares still uses
     * it: let c-ares see the error on the next loop turn. */
    struct peers *p = s->p;
    log_debug("peers: DNS socket %d closed by the loop; c-ares will see why", (int)s->fd);
    p->orphans = true;
    lws_sul_schedule(p->ctx, 0, &p->ares_sul, ares_timer, 1);
}

int peers_callback(struct lws *wsi, enum lws_callback_reasons reason, void *obj)
{
    struct dnssock *s = obj;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        return sock_readable(s);
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        return sock_writable(s);
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        /* lws calls protocols[0] once more (WSI_DESTROY) after this */
        lws_set_opaque_user_data(wsi, NULL);
        sock_closed(s);
        return 0;
    default:
        return 0;
    }
}

/* ---- life cycle ---- */

static int init_channel(struct peers *p, const char *dns_server)
{
    struct ares_options o;
    memset(&o, 0, sizeof o);
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    o.timeout = DNS_TIMEOUT_MS;
    o.tries = DNS_TRIES;
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = p;
    char lookups[] = "b"; /* DNS only: an explicit server means "ask it" */
    if (dns_server[0]) {
        mask |= ARES_OPT_LOOKUPS;
        o.lookups = lookups;
    }
    int st = ares_init_options(&p->ch, &o, mask);
    if (st != ARES_SUCCESS) {
        p->ch = NULL;
        log_errx("peers: c-ares: %s", ares_strerror(st));
        return -EINVAL;
    }
    if (dns_server[0]) {
        st = ares_set_servers_ports_csv(p->ch, dns_server);
        if (st != ARES_SUCCESS) {
            log_errx("peers: DNS server %s: %s", dns_server, ares_strerror(st));
            return -EINVAL;
        }
    }
    return 0;
}

struct peers *peers_new(struct lws_context *ctx, struct lws_vhost *vh, const char *name,
                        const char *dns_server, uint16_t port, const struct sockaddr_storage *self,
                        unsigned nself, const struct peers_ops *ops, void *ud,
                        struct fleet_stats *stats)
{
    if (!ctx || !vh || !name || !*name || strlen(name) > 253 || nself > PEERS_MAX_SELF ||
        (nself && !self)) {
        log_errx("peers: invalid arguments");
        return NULL;
    }
    struct peers *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ctx = ctx;
    p->vh = vh;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->port = port;
    if (nself)
        memcpy(p->self, self, nself * sizeof *self);
    p->nself = nself;
    if (ops)
        p->ops = *ops;
    p->ud = ud;
    p->stats = stats ? stats : &p->own_stats;
    p->set = calloc(PEERS_MAX, sizeof *p->set);
    p->next_set = calloc(PEERS_MAX, sizeof *p->next_set);
    for (int f = 0; f < 2; f++) {
        p->fq[f].p = p;
        p->fq[f].family = f == 0 ? AF_INET : AF_INET6;
        p->fq[f].ttl = -1;
        p->fq[f].addrs = calloc(PEERS_MAX, sizeof *p->fq[f].addrs);
        if (!p->fq[f].addrs)
            goto fail;
    }
    if (!p->set || !p->next_set)
        goto fail;
    int st = ares_library_init(ARES_LIB_INIT_ALL); /* reference counted by c-ares */
    if (st != ARES_SUCCESS) {
        log_errx("peers: c-ares: %s", ares_strerror(st));
        goto fail;
    }
    p->lib_init = true;
    if (init_channel(p, dns_server ? dns_server : "") < 0)
        goto fail;
    schedule_query(p, 0);
    log_info("peers: resolving %s with %s", p->name,
             dns_server && *dns_server ? dns_server : "the servers of /etc/resolv.conf");
    return p;
fail:
    peers_free(p);
    return NULL;
}

void peers_free(struct peers *p)
{
    if (!p)
        return;
    p->freeing = true;
    lws_sul_cancel(&p->query_sul);
    lws_sul_cancel(&p->ares_sul);
    lws_sul_cancel(&p->notify_sul);
    if (p->ch)
        ares_destroy(p->ch); /* query callbacks see p->freeing; sockets go via sock_gone */
    while (p->socks) {
        struct dnssock *s = p->socks;
        if (s->wsi) {
            lws_set_opaque_user_data(s->wsi, NULL);
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
        sock_free(s);
    }
    if (p->lib_init)
        ares_library_cleanup();
    for (int f = 0; f < 2; f++)
        free(p->fq[f].addrs);
    free(p->set);
    free(p->next_set);
    free(p);
}

bool peers_ready(const struct peers *p)
{
    return p->answered_once;
}
