/*
 * test_evset: the epoll set inside a real libwebsockets loop, over socket
 * pairs and loopback TCP. EV_READ comes while reading is on and bytes wait,
 * not while it is off (nor does the loop spin); EV_WRITE comes once per
 * write_soon (at once after evset_flush), and after
 * write_when_ready only once the peer made room; -1 closes the descriptor
 * (the peer sees EOF) and EV_CLOSE follows once; a hang-up while not reading
 * closes; a detached descriptor stays open and silent; a connect reports
 * through EV_WRITE; members that keep asking cannot hold the loop; the
 * context's end closes every member.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "check.h"
#include "evset.h"

#define PROTO "evset-test"

static struct evset *set;
static int set_obj; /* the set's opaque user data */
static lws_sorted_usec_list_t tick_sul;
static struct lws_context *ctx;
static unsigned ticks;

struct member {
    struct evfd ev;
    unsigned reads, writes, closes;
    char got[256];
    size_t got_len;
    bool refill;      /* EV_WRITE asks for the next one at once */
    bool fail_read;   /* EV_READ returns -1 */
    bool drain_reads; /* EV_READ reads what waits */
};

static int on_event(struct evfd *f, enum ev_event ev)
{
    struct member *m = lws_container_of(f, struct member, ev);
    switch (ev) {
    case EV_READ:
        m->reads++;
        if (m->fail_read)
            return -1;
        if (m->drain_reads) {
            ssize_t n = read(f->fd, m->got + m->got_len, sizeof m->got - 1 - m->got_len);
            if (n > 0)
                m->got_len += (size_t)n;
        }
        return 0;
    case EV_WRITE:
        m->writes++;
        if (m->refill)
            evset_write_soon(f);
        return 0;
    case EV_CLOSE:
        m->closes++;
        return 0;
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    (void)user, (void)in, (void)len;
    if (lws_get_opaque_user_data(wsi) == &set_obj && set)
        return evset_callback(set, reason);
    return 0;
}

static const struct lws_protocols protocols[] = {
    {PROTO, callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* keeps every lws_service() short */
static void tick(lws_sorted_usec_list_t *sul)
{
    ticks++;
    lws_sul_schedule(ctx, 0, sul, tick, 2 * LWS_US_PER_MS);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop for ms milliseconds, or until *flag is nonzero. */
static void run(unsigned ms, const unsigned *flag)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end && !(flag && *flag))
        lws_service(ctx, 0);
}

/* Run the loop until cond holds, for at most ms milliseconds. */
#define RUN_UNTIL(ms, cond)                                                                        \
    do {                                                                                           \
        uint64_t end_ = now_ms() + (ms);                                                           \
        while (now_ms() < end_ && !(cond))                                                         \
            lws_service(ctx, 0);                                                                   \
    } while (0)

static void pair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
}

static void test_read_and_flow_control(void)
{
    int sv[2];
    pair(sv);
    struct member m = {.drain_reads = true};
    CHECK_EQ(evset_add(set, &m.ev, sv[0], on_event, EVSET_READ), 0);
    CHECK_EQ(evset_count(set), 1);
    CHECK_EQ(write(sv[1], "hello", 5), 5);
    run(500, &m.reads);
    CHECK_EQ(m.reads, 1);
    CHECK_EQ(m.got_len, 5);
    CHECK(memcmp(m.got, "hello", 5) == 0);

    evset_read(&m.ev, false);
    CHECK_EQ(write(sv[1], " world", 6), 6);
    double cpu0 = cpu_seconds();
    run(200, NULL);
    CHECK_EQ(m.reads, 1);              /* reading is off: the bytes wait */
    CHECK(cpu_seconds() - cpu0 < 0.1); /* without waking the loop over and over */
    evset_read(&m.ev, true);
    RUN_UNTIL(500, m.got_len == 11);
    CHECK_EQ(m.got_len, 11);
    CHECK(memcmp(m.got, "hello world", 11) == 0);

    /* -1 from EV_READ closes: the peer sees EOF, EV_CLOSE comes once */
    m.fail_read = true;
    CHECK_EQ(write(sv[1], "x", 1), 1);
    run(500, &m.closes);
    CHECK_EQ(m.closes, 1);
    CHECK_EQ(m.ev.fd, -1);
    char c;
    ssize_t r = read(sv[1], &c, 1); /* EOF, or a reset: "x" was never read */
    CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    run(20, NULL);
    CHECK_EQ(m.closes, 1);
    CHECK_EQ(evset_count(set), 0);
    close(sv[1]);
}

static void test_write_soon_and_when_ready(void)
{
    int sv[2];
    pair(sv);
    struct member m = {0};
    CHECK_EQ(evset_add(set, &m.ev, sv[0], on_event, 0), 0);
    run(20, NULL);
    CHECK_EQ(m.writes, 0); /* nothing asked */
    evset_write_soon(&m.ev);
    evset_write_soon(&m.ev); /* twice before the turn: once */
    run(500, &m.writes);
    run(20, NULL);
    CHECK_EQ(m.writes, 1);
    evset_write_soon(&m.ev);
    evset_flush(set); /* now, not on the next turn */
    CHECK_EQ(m.writes, 2);
    run(20, NULL);
    CHECK_EQ(m.writes, 2);

    /* fill the socket, then wait for room */
    static char junk[65536];
    size_t filled = 0;
    for (;;) {
        ssize_t n = write(sv[0], junk, sizeof junk);
        if (n <= 0)
            break;
        filled += (size_t)n;
    }
    CHECK(filled > 0);
    evset_write_when_ready(&m.ev);
    evset_write_soon(&m.ev); /* no effect while waiting for room */
    run(50, NULL);
    CHECK_EQ(m.writes, 2);
    while (filled > 0) {
        ssize_t n = read(sv[1], junk, sizeof junk);
        if (n <= 0)
            break;
        filled -= (size_t)n;
    }
    unsigned before = m.writes;
    RUN_UNTIL(500, m.writes > before);
    run(30, NULL);
    CHECK_EQ(m.writes, before + 1); /* once, not on every turn it stays writable */

    evset_close(&m.ev);
    evset_close(&m.ev);
    run(500, &m.closes);
    CHECK_EQ(m.closes, 1);
    close(sv[1]);
}

static void test_hangup_and_detach(void)
{
    int sv[2];
    pair(sv);
    struct member m = {0};
    CHECK_EQ(evset_add(set, &m.ev, sv[0], on_event, 0), 0);
    close(sv[1]); /* hang-up while not reading: closed */
    run(500, &m.closes);
    CHECK_EQ(m.closes, 1);
    CHECK_EQ(m.reads, 0);

    pair(sv);
    struct member d = {.drain_reads = true};
    CHECK_EQ(evset_add(set, &d.ev, sv[0], on_event, EVSET_READ), 0);
    int fd = evset_detach(&d.ev);
    CHECK_EQ(fd, sv[0]);
    CHECK_EQ(write(sv[1], "abc", 3), 3);
    run(50, NULL);
    CHECK_EQ(d.reads, 0); /* out of the set */
    evset_close(&d.ev);
    run(500, &d.closes);
    CHECK_EQ(d.closes, 1);
    char b[4];
    CHECK_EQ(read(fd, b, sizeof b), 3); /* and still open */
    CHECK_EQ(write(fd, "z", 1), 1);
    close(fd);
    close(sv[1]);
}

static void test_connect(void)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    CHECK_EQ(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    CHECK_EQ(listen(ls, 4), 0);
    CHECK_EQ(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    CHECK(r == 0 || errno == EINPROGRESS);
    struct member m = {0};
    CHECK_EQ(evset_add(set, &m.ev, fd, on_event, EVSET_CONNECT), 0);
    run(1000, &m.writes);
    CHECK_EQ(m.writes, 1);
    int err = -1;
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    CHECK_EQ(err, 0);
    evset_close(&m.ev);
    run(500, &m.closes);
    CHECK_EQ(m.closes, 1);
    close(ls);
}

/* Two members that ask for EV_WRITE again from EV_WRITE: both are served
 * turn after turn and the loop's timers still run. */
static void test_no_starvation(void)
{
    int a[2], b[2];
    pair(a);
    pair(b);
    struct member x = {.refill = true}, y = {.refill = true};
    CHECK_EQ(evset_add(set, &x.ev, a[0], on_event, 0), 0);
    CHECK_EQ(evset_add(set, &y.ev, b[0], on_event, 0), 0);
    evset_write_soon(&x.ev);
    evset_write_soon(&y.ev);
    unsigned t0 = ticks;
    run(100, NULL);
    CHECK(x.writes > 10);
    CHECK(y.writes + 1 >= x.writes && x.writes + 1 >= y.writes);
    CHECK(ticks > t0); /* the 2 ms timer ran meanwhile */
    x.refill = y.refill = false;
    evset_close(&x.ev);
    evset_close(&y.ev);
    run(500, &y.closes);
    CHECK_EQ(x.closes, 1);
    CHECK_EQ(y.closes, 1);
    close(a[1]);
    close(b[1]);
}

int main(void)
{
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    ctx = lws_create_context(&info);
    if (!ctx)
        return 1;
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
    set = evset_new(ctx, vh, PROTO, &set_obj);
    CHECK(set != NULL);
    if (!set)
        return check_done();
    lws_sul_schedule(ctx, 0, &tick_sul, tick, 2 * LWS_US_PER_MS);

    test_read_and_flow_control();
    test_write_soon_and_when_ready();
    test_hangup_and_detach();
    test_connect();
    test_no_starvation();

    /* the context's end closes what is still in the set */
    int sv[2];
    pair(sv);
    struct member m = {0};
    CHECK_EQ(evset_add(set, &m.ev, sv[0], on_event, EVSET_READ), 0);
    lws_sul_cancel(&tick_sul);
    lws_context_destroy(ctx);
    CHECK_EQ(m.closes, 1);
    char c;
    CHECK_EQ(read(sv[1], &c, 1), 0); /* closed: EOF */
    close(sv[1]);
    evset_free(set);
    return check_done();
}
