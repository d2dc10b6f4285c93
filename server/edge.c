/*
 * edge: lws context and vhost setup, the raw-file dispatcher, signals via a
 * self-pipe in the loop, the periodic registry sweep, and the drain sequence
 * (stop accepting -> finish visitors -> close tunnels with 1001 -> stop).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "lwsraw.h"
#include "addr.h"
#include "admin.h"
#include "auth.h"
#include "edge.h"
#include "evset.h"
#include "fdlimit.h"
#include "fleet.h"
#include "frame.h"
#include "quota.h"
#include "listener.h"
#include "log.h"
#include "peerlink.h"
#include "peers.h"
#include "registry.h"
#include "session.h"
#include "visitor.h"

/* registry reservations and every session's deadlines (session_tick) */
#define SWEEP_US (500 * LWS_US_PER_MS)

static int signal_pipe_w = -1;

uint64_t edge_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (signal_pipe_w >= 0) {
        ssize_t w = write(signal_pipe_w, &b, 1);
        (void)w;
    }
    errno = saved;
}

static int signal_callback(struct edge *e, enum lws_callback_reasons reason)
{
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    unsigned char sigs[16];
    ssize_t n = read(e->sigpipe[0], sigs, sizeof sigs);
    for (ssize_t i = 0; i < n; i++) {
        if (sigs[i] == SIGHUP) {
            log_info("SIGHUP: reloading keys");
            auth_reload(e->auth);
        } else {
            log_info("%s: draining", sigs[i] == SIGTERM ? "SIGTERM" : "SIGINT");
            edge_drain(e);
        }
    }
    return 0;
}

/* The visitors' turn is over: what it gave the tunnels goes out now. */
static void turn_end(void *ud)
{
    session_kick_all(ud);
}

static int raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    struct raw_obj *o = lws_get_opaque_user_data(wsi);
    /* lws also calls this protocol with WSI_DESTROY after RAW_CLOSE_FILE, when
     * o has been freed: only raw-file events may look at it, none after the close. */
    if (!o || (reason != LWS_CALLBACK_RAW_ADOPT_FILE && reason != LWS_CALLBACK_RAW_RX_FILE &&
               reason != LWS_CALLBACK_RAW_WRITEABLE_FILE && reason != LWS_CALLBACK_RAW_CLOSE_FILE))
        return 0;
    if (reason == LWS_CALLBACK_RAW_CLOSE_FILE)
        lws_set_opaque_user_data(wsi, NULL);
    struct lws_vhost *vh = lws_get_vhost(wsi);
    struct edge *e = lws_get_vhost_user(vh);
    int r = 0;
    switch (o->kind) {
    case RAW_LISTENER:
        return listener_callback(wsi, reason, (struct listener *)o);
    case RAW_VISITOR: /* visitors are in the epoll set, never lws raw files */
        return 0;
    case RAW_EVSET:
        return e->evset ? evset_callback(e->evset, reason) : 0;
    case RAW_SIGNAL:
        return signal_callback(e, reason);
    case RAW_ADMIN:
        return admin_callback(wsi, reason, o);
    case RAW_DNS:
        return peers_callback(wsi, reason, o);
    case RAW_PEER:
        r = peerlink_callback(wsi, reason, o);
        break;
    case RAW_SESSION:
        r = session_raw_callback(wsi, reason, (struct session *)o);
        break;
    }
    /* what a tunnel or a peer link delivered goes out to its visitors in
     * this turn (not after a callback that closes its connection) */
    if (reason == LWS_CALLBACK_RAW_RX_FILE && r == 0)
        evset_flush(e->evset);
    return r;
}

static const struct lws_protocols protocols[] = {
    {WARREN_RAW_PROTOCOL, raw_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void sweep(lws_sorted_usec_list_t *sul)
{
    struct edge *e = lws_container_of(sul, struct edge, sweep_sul);
    registry_sweep(e->reg, edge_now_ms());
    session_tick(e);
    /* After a flood the heap is full of free holes between live chunks that
     * free() cannot give back: return their pages so RSS follows the load
     * (every 10 s: the sweep runs twice a second). */
    if (++e->sweeps % 20 == 0)
        malloc_trim(0);
    lws_sul_schedule(e->ctx, 0, &e->sweep_sul, sweep, SWEEP_US);
}

static void drain_deadline(lws_sorted_usec_list_t *sul)
{
    struct edge *e = lws_container_of(sul, struct edge, drain_sul);
    if (!e->stopping && (e->nvisitors || e->nsessions)) {
        log_warnx("drain deadline reached with %u connections and %u tunnels: closing them",
                  e->nvisitors, e->nsessions);
        if (!e->closing_sessions) {
            e->closing_sessions = true;
            session_close_all(e, LWS_CLOSE_STATUS_GOINGAWAY, "edge shutting down");
            lws_sul_schedule(e->ctx, 0, &e->drain_sul, drain_deadline, LWS_US_PER_SEC);
            return;
        }
    }
    e->stopping = true;
    lws_cancel_service(e->ctx);
}

void edge_check_drained(struct edge *e)
{
    if (!e->draining || e->stopping)
        return;
    if (e->nvisitors > 0)
        return;
    if (!e->closing_sessions) {
        e->closing_sessions = true;
        session_close_all(e, LWS_CLOSE_STATUS_GOINGAWAY, "edge shutting down");
    }
    if (e->nsessions == 0) {
        log_info("drained");
        e->stopping = true;
        lws_cancel_service(e->ctx);
    }
}

void edge_drain(struct edge *e)
{
    if (e->draining)
        return;
    e->draining = true;
    for (unsigned i = 0; i < e->nlisteners; i++)
        listener_stop(e->listeners[i]);
    visitor_drain_all(e);
    lws_sul_schedule(e->ctx, 0, &e->drain_sul, drain_deadline,
                     (lws_usec_t)e->cfg->drain_timeout * LWS_US_PER_SEC);
    edge_check_drained(e);
}

/* Every connection is a file descriptor: take what the hard limit allows,
 * at most EDGE_MAX_FDS, and derive the connection limit from it.
 * libwebsockets sizes its fd table from the soft limit, and Debian's 4.1.6
 * (built with assertions) scans that whole table each time it closes one of
 * its sockets (about 1 ns per entry): visitors are in our epoll set instead
 * (evset.h), but tunnels, peer links and admin connections pay it. Given a
 * smaller fd_limit_per_thread instead, it scans the table on every event,
 * which is worse. docs/operations.md, "Open files". */
#define EDGE_MAX_FDS 65536

static int setup_limits(struct edge *e)
{
    unsigned long before, after;
    int r = fdlimit_raise(EDGE_MAX_FDS, &before, &after);
    if (r < 0)
        log_warnx("open files: could not raise the limit from %lu: %s", before, strerror(-r));
    else if (after != before)
        log_info("open files: limit %s from %lu to %lu", after > before ? "raised" : "lowered",
                 before, after);
    else
        log_info("open files: limit %lu", after);
    e->quota = quota_new(e->cfg, after);
    if (!e->quota)
        return -1;
    unsigned maxc = quota_max_connections(e->quota);
    log_info("at most %u public connections at once (--max-connections%s)", maxc,
             e->cfg->max_connections ? "" : " 0: open-files limit minus 256");
    if (maxc + 64 > after)
        log_warnx("--max-connections %u leaves fewer than 64 of the %lu open files for "
                  "listeners, peers and the admin endpoint: accept() may fail first",
                  maxc, after);
    return 0;
}

static int setup_signals(struct edge *e)
{
    if (pipe2(e->sigpipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    signal_pipe_w = e->sigpipe[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    e->sigobj.kind = RAW_SIGNAL;
    if (!lwsraw_adopt(e->vh, e->sigpipe[0], WARREN_RAW_PROTOCOL, &e->sigobj)) {
        e->sigpipe[0] = -1;
        return -1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &set, NULL); /* pending ones arrive now, as events */
    return 0;
}

static void peers_changed(void *ud)
{
    peerlink_sync(ud);
}

/* Discovery, peer links and the fleet logic (docs/fleet.md). */
static int start_fleet(struct edge *e)
{
    const struct config *c = e->cfg;
    static const struct peers_ops ops = {peers_changed};
    if (fleet_new(e) < 0 || peerlink_start(e) < 0)
        return -1;
    e->peers = peers_new(e->ctx, e->vh, c->peers_dns, c->dns_server,
                         (uint16_t)addr_port((const struct sockaddr *)&c->peer_listen.ss),
                         &c->peer_listen.ss, 1, &ops, e, &e->fleet);
    if (!e->peers) {
        log_errx("could not start peer discovery for %s", c->peers_dns);
        return -1;
    }
    log_info("fleet: peers from DNS name %s (%s)", c->peers_dns,
             c->dns_server[0] ? c->dns_server : "resolv.conf");
    return 0;
}

struct edge *edge_new(const struct config *cfg)
{
    struct edge *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->cfg = cfg;
    e->sigpipe[0] = e->sigpipe[1] = -1;
    e->reg = registry_new();
    e->txbuf = malloc(EDGE_TXBUF);
    e->rxbuf = malloc(EDGE_RXBUF);
    if (!e->reg || !e->txbuf || !e->rxbuf)
        goto fail;
    if (setup_limits(e) < 0)
        goto fail;

    lws_set_log_level(log_level >= LOG_DEBUG ? (LLL_ERR | LLL_WARN) : 0, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.pt_serv_buf_size = 64 * 1024;
    info.max_http_header_data = 16384;
    e->ctx = lws_create_context(&info);
    if (!e->ctx) {
        log_errx("could not create the event loop");
        goto fail;
    }
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vi.protocols = protocols;
    vi.vhost_name = "edge";
    vi.user = e;
    vi.max_http_header_data = 16384;
    e->vh = lws_create_vhost(e->ctx, &vi);
    if (!e->vh) {
        log_errx("could not create the vhost");
        goto fail;
    }
    e->evset_obj.kind = RAW_EVSET;
    e->evset = evset_new(e->ctx, e->vh, WARREN_RAW_PROTOCOL, &e->evset_obj);
    if (!e->evset) {
        log_errx("could not set up the visitors' epoll set");
        goto fail;
    }
    evset_on_turn_end(e->evset, turn_end, e);
    for (unsigned i = 0; i < cfg->nlisten; i++) {
        e->listeners[i] = listener_new(e, &cfg->listen[i]);
        if (!e->listeners[i])
            goto fail;
        e->nlisteners++;
    }
    for (unsigned i = 0; i < e->nlisteners; i++)
        if (listener_start(e->listeners[i]) < 0)
            goto fail;
    if (cfg->admin_enabled && !(e->admin = admin_new(e, &cfg->admin)))
        goto fail;
    if (cfg->fleet && start_fleet(e) < 0)
        goto fail;
    if (setup_signals(e) < 0) {
        log_errx("could not set up signal handling");
        goto fail;
    }
    lws_sul_schedule(e->ctx, 0, &e->sweep_sul, sweep, SWEEP_US);
    return e;
fail:
    edge_free(e);
    return NULL;
}

int edge_run(struct edge *e)
{
    while (!e->stopping)
        if (lws_service(e->ctx, 0) < 0)
            return -1;
    return 0;
}

void edge_free(struct edge *e)
{
    if (!e)
        return;
    if (e->ctx) {
        lws_sul_cancel(&e->sweep_sul);
        lws_sul_cancel(&e->drain_sul);
        /* fleet timers go before the loop does; memory after its close callbacks */
        peers_free(e->peers);
        e->peers = NULL;
        peerlink_stop(e);
        fleet_quiesce(e);
        e->stopping = true;
        lws_context_destroy(e->ctx);
    }
    for (unsigned i = 0; i < e->nlisteners; i++)
        listener_free(e->listeners[i]);
    admin_free(e->admin);
    evset_free(e->evset);
    peerlink_free(e);
    fleet_free(e);
    if (e->sigpipe[1] >= 0)
        close(e->sigpipe[1]);
    signal_pipe_w = -1;
    registry_free(e->reg);
    quota_free(e->quota);
    auth_free(e->auth);
    free(e->txbuf);
    free(e->rxbuf);
    free(e);
}
