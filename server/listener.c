/*
 * listener: our own listening sockets. Accepting is bounded per wakeup so a
 * connection flood cannot starve established connections. Over
 * --max-connections a new connection is accepted, answered 503 and closed at
 * once (it costs no state). When accept() fails for lack of file descriptors
 * or memory the listener stops asking for a while (50 ms doubling to 1 s)
 * instead of waking up again at once for the same pending connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lwsraw.h"
#include "edge.h"
#include "quota.h"
#include "listener.h"
#include "log.h"
#include "visitor.h"

#define ACCEPT_BATCH 64
/* a reconnect storm waits here, not in SYN retries (the kernel caps it at somaxconn) */
#define LISTEN_BACKLOG 4096
#define PAUSE_MIN_MS 50
#define PAUSE_MAX_MS 1000
#define WARN_EVERY_MS 10000

struct listener {
    struct raw_obj obj;
    struct edge *e;
    int fd;
    struct lws *wsi;
    struct listen_addr la;
    lws_sorted_usec_list_t pause_sul; /* accepting again after a pause */
    unsigned pause_ms;                /* current pause; 0 while accept() works */
};

#define OVER_LIMIT_BODY "503 Service Unavailable: this edge is at its connection limit; retry.\n"
_Static_assert(sizeof OVER_LIMIT_BODY - 1 == 70, "Content-Length below");
static const char over_limit[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 70\r\nRetry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\n"
    "\r\n" OVER_LIMIT_BODY;

static bool is_any6(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    return ss->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
}

struct listener *listener_new(struct edge *e, const struct listen_addr *la)
{
    struct listener *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->obj.kind = RAW_LISTENER;
    l->e = e;
    l->la = *la;
    l->fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        log_err("listen %s: socket", la->text);
        free(l);
        return NULL;
    }
    int one = 1, v6only = is_any6(&la->ss) ? 0 : 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (la->ss.ss_family == AF_INET6)
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    if (bind(l->fd, (const struct sockaddr *)&la->ss, la->len) < 0) {
        log_err("listen %s: bind", la->text);
        close(l->fd);
        free(l);
        return NULL;
    }
    if (listen(l->fd, LISTEN_BACKLOG) < 0) {
        log_err("listen %s: listen", la->text);
        close(l->fd);
        free(l);
        return NULL;
    }
    return l;
}

int listener_start(struct listener *l)
{
    l->wsi = lwsraw_adopt(l->e->vh, l->fd, WARREN_RAW_PROTOCOL, l);
    if (!l->wsi) {
        log_errx("listen %s: could not add the socket to the event loop", l->la.text);
        l->fd = -1; /* lws closed it */
        return -1;
    }
    log_info("listening on %s", l->la.text);
    return 0;
}

void listener_stop(struct listener *l)
{
    if (l->wsi)
        lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    if (!l->wsi && l->fd >= 0)
        close(l->fd);
    free(l);
}

static void resume(lws_sorted_usec_list_t *sul)
{
    struct listener *l = lws_container_of(sul, struct listener, pause_sul);
    if (l->wsi && !l->e->draining)
        lws_rx_flow_control(l->wsi, 1);
}

/* accept() failed for lack of resources: the pending connection stays in the
 * backlog and the socket stays readable, so stop polling it for a while. */
static void pause_accepting(struct listener *l, int err)
{
    struct quota *lim = l->e->quota;
    l->pause_ms = l->pause_ms ? l->pause_ms * 2 : PAUSE_MIN_MS;
    if (l->pause_ms > PAUSE_MAX_MS)
        l->pause_ms = PAUSE_MAX_MS;
    quota_stats(lim)->accept_pauses++;
    if (quota_warn_due(lim, QUOTA_WARN_ACCEPT, edge_now_ms(), WARN_EVERY_MS))
        log_warnx("listen %s: accept: %s (%u visitors, %u tunnel connections): pausing accepts "
                  "for up to %u ms at a time",
                  l->la.text, strerror(err), l->e->nvisitors, l->e->nsessions, PAUSE_MAX_MS);
    lws_rx_flow_control(l->wsi, 0);
    lws_sul_schedule(l->e->ctx, 0, &l->pause_sul, resume, (lws_usec_t)l->pause_ms * 1000);
}

/* Over --max-connections: a short answer and close, without any state. Input
 * already there is read first so that the close is a FIN, not a reset. */
static void refuse(struct listener *l, int fd)
{
    struct edge *e = l->e;
    struct quota *lim = e->quota;
    char junk[4096];
    ssize_t r = recv(fd, junk, sizeof junk, MSG_DONTWAIT);
    (void)r;
    r = send(fd, over_limit, sizeof over_limit - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
    quota_stats(lim)->conn_refused++;
    if (quota_warn_due(lim, QUOTA_WARN_CONNECTIONS, edge_now_ms(), WARN_EVERY_MS))
        log_warnx("at the connection limit (--max-connections %u: %u visitors, %u tunnel "
                  "connections): new connections get 503 (%llu so far)",
                  quota_max_connections(lim), e->nvisitors, e->nsessions,
                  (unsigned long long)quota_stats(lim)->conn_refused);
}

static void accept_batch(struct listener *l)
{
    struct edge *e = l->e;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(l, errno);
            return;
        }
        l->pause_ms = 0;
        if (e->nvisitors + e->nsessions >= quota_max_connections(e->quota)) {
            refuse(l, fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        visitor_accept(l->e, fd, (struct sockaddr *)&ss, len);
    }
}

int listener_callback(struct lws *wsi, enum lws_callback_reasons reason, struct listener *l)
{
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (l->e->draining)
            return -1;
        accept_batch(l);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        lws_sul_cancel(&l->pause_sul);
        l->wsi = NULL;
        l->fd = -1;
        return 0;
    default:
        return 0;
    }
}
