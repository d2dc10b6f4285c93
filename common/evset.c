/*
 * evset: see evset.h. Level-triggered epoll: EPOLLIN is registered while the
 * owner reads, EPOLLOUT only while a write waits for room, so a socket that
 * is written without blocking costs no epoll_ctl at all.
 *
 * A turn: the set's descriptor is readable in the lws loop -> one
 * epoll_wait -> EV_WRITE / EV_READ for each ready member -> the queue runs
 * (EV_WRITE asked for meanwhile, closes). Members ask for EV_WRITE from
 * outside a turn too (a tunnel delivered bytes): the queue then runs on the
 * next lws turn, from a timer due at once, for all of them together.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "evset.h"
#include "log.h"
#include "lwsraw.h"

#define EVSET_BATCH 128

struct evset {
    int efd;
    struct lws *wsi;
    struct lws_context *ctx;
    struct evfd *all;
    unsigned n;
    struct evfd *qhead, *qtail;
    bool in_turn, sul_armed, closed;
    lws_sorted_usec_list_t sul;
    void (*turn_end)(void *ud);
    void *turn_end_ud;
};

static void run_queue(struct evset *s);

static void on_sul(lws_sorted_usec_list_t *sul)
{
    struct evset *s = lws_container_of(sul, struct evset, sul);
    s->sul_armed = false;
    run_queue(s);
}

static void queue(struct evfd *f)
{
    struct evset *s = f->set;
    if (!f->queued) {
        f->queued = true;
        f->qnext = NULL;
        if (s->qtail)
            s->qtail->qnext = f;
        else
            s->qhead = f;
        s->qtail = f;
    }
    if (!s->in_turn && !s->sul_armed && !s->closed) {
        s->sul_armed = true;
        lws_sul_schedule(s->ctx, 0, &s->sul, on_sul, 1);
    }
}

/* Register what f waits for. EPOLLIN stays registered after reading was
 * turned off (lazy) unless EPOLLOUT changes anyway: dispatch() drops it the
 * first time it fires unwanted. */
static void rearm(struct evfd *f, bool lazy)
{
    if (f->fd < 0 || f->dead)
        return;
    uint32_t want = (f->reading ? EPOLLIN : 0) | (f->wait_out ? EPOLLOUT : 0);
    if (lazy && (f->armed & EPOLLIN) && (want | EPOLLIN) == f->armed)
        return;
    if (want == f->armed)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = f};
    if (epoll_ctl(f->set->efd, EPOLL_CTL_MOD, f->fd, &ev) < 0) {
        log_warnx("epoll_ctl(MOD, fd %d): %s: closing it", f->fd, strerror(errno));
        evset_close(f);
        return;
    }
    f->armed = want;
}

static void do_close(struct evfd *f)
{
    struct evset *s = f->set;
    if (f->prev)
        f->prev->next = f->next;
    else
        s->all = f->next;
    if (f->next)
        f->next->prev = f->prev;
    s->n--;
    if (f->fd >= 0)
        close(f->fd); /* leaves the epoll set with its last descriptor */
    f->fd = -1;
    f->in_set = false;
    f->cb(f, EV_CLOSE); /* the owner may free f */
}

/* Every member, now (the set is going). */
static void close_all(struct evset *s)
{
    s->qhead = s->qtail = NULL;
    while (s->all) {
        s->all->queued = false;
        s->all->dead = true;
        do_close(s->all);
    }
}

static void run_queue(struct evset *s)
{
    s->in_turn = true;
    /* only what is queued now: what this asks for (closes too) runs on the
     * next turn, so a member that keeps asking cannot hold the loop */
    struct evfd *q = s->qhead;
    s->qhead = s->qtail = NULL;
    while (q) {
        struct evfd *f = q;
        q = f->qnext;
        f->qnext = NULL;
        f->queued = false;
        if (f->dead) {
            do_close(f);
            continue;
        }
        if (f->write_due) {
            f->write_due = false;
            if (f->fd >= 0 && f->cb(f, EV_WRITE) < 0)
                evset_close(f);
        }
    }
    s->in_turn = false;
    if (!s->qhead && s->sul_armed) {
        /* asked for from outside a turn and run by evset_flush(): no wake-up */
        lws_sul_cancel(&s->sul);
        s->sul_armed = false;
    }
    if (s->qhead && !s->sul_armed && !s->closed) {
        s->sul_armed = true;
        lws_sul_schedule(s->ctx, 0, &s->sul, on_sul, 1);
    }
    if (s->turn_end && !s->closed)
        s->turn_end(s->turn_end_ud);
}

static void dispatch(struct evset *s)
{
    struct epoll_event evs[EVSET_BATCH];
    int n = epoll_wait(s->efd, evs, EVSET_BATCH, 0);
    if (n < 0 && errno != EINTR)
        log_warnx("epoll_wait: %s", strerror(errno));
    s->in_turn = true;
    for (int i = 0; i < n; i++) {
        struct evfd *f = evs[i].data.ptr;
        uint32_t e = evs[i].events;
        if (f->dead || f->fd < 0)
            continue;
        if ((e & EPOLLOUT) && f->wait_out) {
            f->wait_out = false;
            int r = f->cb(f, EV_WRITE);
            rearm(f, true); /* nothing to change when it waits for room again */
            if (r < 0) {
                evset_close(f);
                continue;
            }
            if (f->dead || f->fd < 0)
                continue;
        }
        /* as lws's raw files: a hang-up closes unless bytes (or EOF) are read */
        if ((e & EPOLLIN) && f->reading) {
            if (f->cb(f, EV_READ) < 0)
                evset_close(f);
        } else if (e & (EPOLLHUP | EPOLLERR)) {
            evset_close(f);
        } else if (e & EPOLLIN) {
            rearm(f, false); /* reading was turned off: stop the wake-ups now */
        }
    }
    s->in_turn = false;
    run_queue(s);
}

struct evset *evset_new(struct lws_context *ctx, struct lws_vhost *vh, const char *protocol,
                        void *opaque)
{
    struct evset *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ctx = ctx;
    s->efd = epoll_create1(EPOLL_CLOEXEC);
    if (s->efd < 0) {
        log_warn("epoll_create1");
        free(s);
        return NULL;
    }
    s->wsi = lwsraw_adopt(vh, s->efd, protocol, opaque);
    if (!s->wsi) {
        free(s); /* lws closed efd */
        return NULL;
    }
    return s;
}

void evset_flush(struct evset *s)
{
    if (!s || s->in_turn || !s->qhead)
        return;
    run_queue(s); /* a timer already asked for finds the queue empty */
}

int evset_callback(struct evset *s, enum lws_callback_reasons reason)
{
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        dispatch(s);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        /* lws closes efd (its context is going): every member goes with it */
        s->closed = true;
        s->wsi = NULL;
        s->efd = -1;
        if (s->sul_armed)
            lws_sul_cancel(&s->sul);
        s->sul_armed = false;
        close_all(s);
        return 0;
    default:
        return 0;
    }
}

void evset_free(struct evset *s)
{
    if (!s)
        return;
    /* after lws_context_destroy(), which closed the set and its members */
    close_all(s);
    free(s);
}

unsigned evset_count(const struct evset *s)
{
    return s ? s->n : 0;
}

bool evset_in_turn(const struct evset *s)
{
    return s && s->in_turn;
}

void evset_on_turn_end(struct evset *s, void (*fn)(void *ud), void *ud)
{
    s->turn_end = fn;
    s->turn_end_ud = ud;
}

int evset_add(struct evset *s, struct evfd *f, int fd, evfd_cb cb, unsigned how)
{
    if (s->closed)
        return -ESHUTDOWN;
    memset(f, 0, sizeof *f);
    f->fd = fd;
    f->cb = cb;
    f->set = s;
    f->reading = (how & EVSET_READ) != 0;
    f->wait_out = (how & EVSET_CONNECT) != 0;
    f->armed = (f->reading ? EPOLLIN : 0) | (f->wait_out ? EPOLLOUT : 0);
    struct epoll_event ev = {.events = f->armed, .data.ptr = f};
    if (epoll_ctl(s->efd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int err = errno;
        f->fd = -1;
        return -err;
    }
    f->in_set = true;
    f->next = s->all;
    if (s->all)
        s->all->prev = f;
    s->all = f;
    s->n++;
    return 0;
}

void evset_read(struct evfd *f, bool on)
{
    f->reading = on;
    rearm(f, true);
}

void evset_write_soon(struct evfd *f)
{
    if (f->fd < 0 || f->dead || f->wait_out)
        return; /* closing, or EPOLLOUT will call */
    f->write_due = true;
    queue(f);
}

void evset_write_when_ready(struct evfd *f)
{
    if (f->fd < 0 || f->dead)
        return;
    f->write_due = false;
    f->wait_out = true;
    rearm(f, true);
}

void evset_close(struct evfd *f)
{
    if (f->dead || !f->set)
        return;
    f->dead = true;
    f->write_due = false;
    queue(f);
}

int evset_detach(struct evfd *f)
{
    int fd = f->fd;
    if (fd < 0)
        return -1;
    epoll_ctl(f->set->efd, EPOLL_CTL_DEL, fd, NULL);
    f->fd = -1;
    f->reading = f->wait_out = f->write_due = false;
    return fd;
}
