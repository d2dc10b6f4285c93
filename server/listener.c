/*
 * listener: our own listening sockets. Accepting is bounded per wakeup so a
 * connection flood cannot starve established connections.
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
#include "listener.h"
#include "log.h"
#include "visitor.h"

#define ACCEPT_BATCH 64

struct listener {
    struct raw_obj obj;
    struct edge *e;
    int fd;
    struct lws *wsi;
    struct listen_addr la;
};

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
    if (listen(l->fd, 1024) < 0) {
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

static void accept_batch(struct listener *l)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                log_warn("listen %s: accept", l->la.text);
            return;
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
        l->wsi = NULL;
        l->fd = -1;
        return 0;
    default:
        return 0;
    }
}
