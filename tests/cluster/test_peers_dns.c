/*
 * test_peers_dns: peer discovery (server/peers.c) against a real DNS server,
 * dnsmasq on 127.0.0.1, in an lws loop like the edge's. The fleet's records
 * (127.0.0.2-5, fdaa::2-7) are only resolved, never dialled. Covers: the
 * A+AAAA union with the port set and our own addresses left out, TTLs (30 s
 * honoured, 1 s raised to 2 s), refresh after a record is added or removed,
 * refresh coalescing and rate limit, a dead server (closed port) and a silent
 * one (failure within ~3 s, the previous set kept, retry after 2 s, recovery),
 * an AAAA-only name, NXDOMAIN, and freeing with queries in flight. dnsmasq is
 * stopped by PID at the end and dies with this process if it crashes.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <libwebsockets.h>

#include "addr.h"
#include "check.h"
#include "edge.h"
#include "log.h"
#include "peers.h"

#define PEER_PORT 7000
#define NAME "fleet.example.test"

struct dns {
    pid_t pid;
    uint16_t port;
    int ttl;
    char log[300];
};

/* A minimal DNS server in this process: A -> 127.0.0.8, AAAA -> fdaa::8 (TTL
 * 30), AAAA answered only while `aaaa` is set. It owns the raw kind
 * RAW_ADMIN, which nothing else uses in this program. */
#define RAW_RESPONDER RAW_ADMIN
struct responder {
    struct raw_obj obj;
    struct lws *wsi;
    int fd;
    uint16_t port;
    bool aaaa;
    unsigned queries;
};

struct env {
    struct lws_context *ctx;
    struct lws_vhost *vh;
    lws_sorted_usec_list_t tick;
    char dir[64];
    char hosts[200];
    struct responder rsp;
};

/* One peers object under observation. */
struct obs {
    struct peers *p;
    struct fleet_stats st;
    unsigned changes;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Answer one query in q[0..n) into out; its length, 0 to stay silent. */
static size_t responder_answer(struct responder *r, const uint8_t *q, size_t n, uint8_t *out,
                               size_t cap)
{
    size_t i = 12;
    if (n < 12 || n > 512)
        return 0;
    while (i < n && q[i] != 0) {
        if (q[i] > 63)
            return 0;
        i += (size_t)q[i] + 1;
    }
    if (i + 5 > n)
        return 0;
    size_t qend = i + 5; /* root label, type, class */
    unsigned type = (unsigned)q[i + 1] << 8 | q[i + 2];
    static const uint8_t a[4] = {127, 0, 0, 8};
    static const uint8_t aaaa[16] = {0xfd, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8};
    const uint8_t *rd = type == 1 ? a : type == 28 ? aaaa : NULL;
    size_t rdlen = type == 1 ? 4 : 16;
    if (type == 28 && !r->aaaa)
        return 0;
    if (qend + 12 + rdlen > cap)
        return 0;
    memcpy(out, q, qend);
    out[2] = 0x80 | (q[2] & 0x01); /* QR, RD copied */
    out[3] = 0x80;                 /* RA, NOERROR */
    out[4] = 0, out[5] = 1;        /* QDCOUNT */
    out[6] = 0, out[7] = rd ? 1 : 0;
    memset(out + 8, 0, 4);
    if (!rd)
        return qend;
    uint8_t *p = out + qend;
    const uint8_t rr[12] = {0xc0, 12, 0, (uint8_t)type, 0, 1, 0, 0, 0, 30, 0, (uint8_t)rdlen};
    memcpy(p, rr, sizeof rr);
    memcpy(p + sizeof rr, rd, rdlen);
    return qend + sizeof rr + rdlen;
}

static int responder_cb(struct lws *wsi, enum lws_callback_reasons reason, struct responder *r)
{
    if (reason == LWS_CALLBACK_RAW_CLOSE_FILE) {
        lws_set_opaque_user_data(wsi, NULL);
        r->wsi = NULL;
        return 0;
    }
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    for (int k = 0; k < 16; k++) {
        uint8_t q[600], out[700];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(r->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            break;
        r->queries++;
        size_t len = responder_answer(r, q, (size_t)n, out, sizeof out);
        if (len)
            sendto(r->fd, out, len, 0, (struct sockaddr *)&from, fl);
    }
    return 0;
}

static bool responder_start(struct env *e)
{
    struct responder *r = &e->rsp;
    r->obj.kind = RAW_RESPONDER;
    r->aaaa = true;
    r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        getsockname(r->fd, (struct sockaddr *)&sin, &sl) < 0)
        return false;
    r->port = ntohs(sin.sin_port);
    lws_adopt_desc_t ad;
    memset(&ad, 0, sizeof ad);
    ad.vh = e->vh;
    ad.type = LWS_ADOPT_RAW_FILE_DESC;
    ad.fd.filefd = r->fd;
    ad.vh_prot_name = WARREN_RAW_PROTOCOL;
    ad.opaque = r;
    r->wsi = lws_adopt_descriptor_vhost_via_info(&ad);
    return r->wsi != NULL;
}

static int raw_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    struct raw_obj *o = lws_get_opaque_user_data(wsi);
    if (o && o->kind == RAW_DNS)
        return peers_callback(wsi, reason, o);
    if (o && o->kind == RAW_RESPONDER)
        return responder_cb(wsi, reason, (struct responder *)o);
    return 0;
}

static const struct lws_protocols protocols[] = {
    {WARREN_RAW_PROTOCOL, raw_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    (void)sul;
}

/* Run the loop until *counter >= target or ms passed; true if reached. */
static bool run_until(struct env *e, const uint64_t *counter, uint64_t target, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    for (;;) {
        if (counter && *counter >= target)
            break;
        if (now_ms() >= end)
            break;
        lws_sul_schedule(e->ctx, 0, &e->tick, tick_cb, 10 * LWS_US_PER_MS);
        lws_service(e->ctx, 0);
    }
    lws_sul_cancel(&e->tick);
    return counter && *counter >= target;
}

static void run_for(struct env *e, unsigned ms)
{
    run_until(e, NULL, 0, ms);
}

static void on_change(void *ud)
{
    ((struct obs *)ud)->changes++;
}

static const struct peers_ops ops = {on_change};

static bool obs_start(struct env *e, struct obs *o, const char *name, const char *server,
                      const struct sockaddr_storage *self, unsigned nself)
{
    memset(o, 0, sizeof *o);
    o->p = peers_new(e->ctx, e->vh, name, server, PEER_PORT, self, nself, &ops, o, &o->st);
    return o->p != NULL;
}

/* Wait for the next completed resolution; its duration in ms, or -1. */
static long next_resolution(struct env *e, struct obs *o, unsigned ms)
{
    uint64_t t0 = now_ms();
    if (!run_until(e, &o->st.dns_resolutions, o->st.dns_resolutions + 1, ms))
        return -1;
    return (long)(now_ms() - t0);
}

/* "a b c" of the current set, every address with its port. */
static const char *set_text(const struct peers *p, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < peers_count(p); i++) {
        char a[ADDR_TEXT_MAX];
        addr_format((const struct sockaddr *)peers_addr(p, i), a, sizeof a);
        int n = snprintf(buf + len, cap - len, "%s%s", i ? " " : "", a);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
    return buf;
}

static void ss_of(struct sockaddr_storage *ss, const char *text)
{
    socklen_t len;
    memset(ss, 0, sizeof *ss);
    if (addr_parse(text, strlen(text), ss, &len, 0) < 0)
        abort();
}

/* ---- dnsmasq ---- */

static bool write_hosts(struct env *e, const char *text)
{
    char tmp[220];
    snprintf(tmp, sizeof tmp, "%s.new", e->hosts);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return false;
    fputs(text, f);
    if (fclose(f) != 0)
        return false;
    return rename(tmp, e->hosts) == 0;
}

/* A port on 127.0.0.1 free for both UDP and TCP right now. */
static uint16_t free_port(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t sl = sizeof sin;
        if (u < 0 || bind(u, (struct sockaddr *)&sin, sizeof sin) < 0 ||
            getsockname(u, (struct sockaddr *)&sin, &sl) < 0) {
            if (u >= 0)
                close(u);
            continue;
        }
        int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok = t >= 0 && bind(t, (struct sockaddr *)&sin, sizeof sin) == 0;
        if (t >= 0)
            close(t);
        close(u);
        if (ok)
            return ntohs(sin.sin_port);
    }
    return 0;
}

static bool dns_ready(uint16_t port)
{
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = t >= 0 && connect(t, (struct sockaddr *)&sin, sizeof sin) == 0;
    if (t >= 0)
        close(t);
    return ok;
}

static bool dns_start(struct env *e, struct dns *d)
{
    char port[32], ttl[32], hosts[240];
    snprintf(port, sizeof port, "--port=%u", d->port);
    snprintf(ttl, sizeof ttl, "--local-ttl=%d", d->ttl);
    snprintf(hosts, sizeof hosts, "--addn-hosts=%s", e->hosts);
    snprintf(d->log, sizeof d->log, "%s/dnsmasq-%u.log", e->dir, d->port);
    bool root = geteuid() == 0;
    const char *argv[] = {"dnsmasq", "--keep-in-foreground", port, "--listen-address=127.0.0.1",
                          "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                          "--local=/example.test/", "--local=/#/", /* NXDOMAIN, not REFUSED */
                          hosts, ttl, "--pid-file=", "--log-facility=-", "--log-queries",
                          /* as root: keep user and group, a change would clear PDEATHSIG */
                          root ? "--user=root" : NULL, root ? "--group=root" : NULL, NULL};
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test */
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp("dnsmasq", (char *const *)argv);
        execv("/usr/sbin/dnsmasq", (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
    for (int i = 0; i < 250; i++) {
        if (dns_ready(d->port))
            return true;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            d->pid = 0;
            return false;
        }
        usleep(20000);
    }
    return false;
}

static void dns_stop(struct dns *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

static void dns_show_log(const struct dns *d)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "tail -n 30 '%s' >&2", d->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no dnsmasq log)\n");
}

/* Ask dnsmasq to reread the hosts file, then refresh until `want` shows. */
static bool reload_until(struct env *e, struct dns *d, struct obs *o, const char *want)
{
    char buf[512];
    kill(d->pid, SIGHUP);
    for (int i = 0; i < 6; i++) {
        peers_refresh(o->p);
        if (next_resolution(e, o, 3000) < 0)
            return false;
        if (strcmp(set_text(o->p, buf, sizeof buf), want) == 0)
            return true;
    }
    fprintf(stderr, "set is \"%s\", wanted \"%s\"\n", buf, want);
    return false;
}

/* ---- scenarios ---- */

#define HOSTS6                                                                                     \
    "127.0.0.2 " NAME "\n127.0.0.3 " NAME "\n127.0.0.4 " NAME "\n"                                 \
    "fdaa::2 " NAME "\nfdaa::3 " NAME "\nfdaa::4 " NAME "\n"                                       \
    "fdaa::7 v6only.example.test\n"
static const char *ALL6 = "127.0.0.2:7000 127.0.0.3:7000 127.0.0.4:7000 "
                          "[fdaa::2]:7000 [fdaa::3]:7000 [fdaa::4]:7000";

/* The union of A and AAAA, the port, TTL 30 honoured, refresh, add, remove. */
static void test_fleet(struct env *e, struct dns *d, const char *server)
{
    char buf[512];
    struct obs o;
    CHECK(obs_start(e, &o, NAME, server, NULL, 0));
    if (!o.p)
        return;
    CHECK(peers_count(o.p) == 0); /* nothing resolved inside peers_new */
    CHECK(next_resolution(e, &o, 3000) >= 0);
    CHECK_STR(set_text(o.p, buf, sizeof buf), ALL6);
    CHECK_EQ(o.st.peers_known, 6);
    CHECK_EQ(o.st.dns_failures, 0);
    run_for(e, 50);
    CHECK_EQ(o.changes, 1);
    for (unsigned i = 0; i < peers_count(o.p); i++)
        CHECK_EQ(addr_port((const struct sockaddr *)peers_addr(o.p, i)), PEER_PORT);
    CHECK(peers_addr(o.p, peers_count(o.p)) == NULL);

    /* TTL 30: no new query within 3 s */
    run_for(e, 3000);
    CHECK_EQ(o.st.dns_resolutions, 1);

    /* five refreshes at once make one query */
    for (int i = 0; i < 5; i++)
        peers_refresh(o.p);
    run_for(e, 1500);
    CHECK_EQ(o.st.dns_resolutions, 2);
    CHECK_EQ(o.changes, 1); /* same answer: no change reported */

    /* two refreshes in a row start >= 1 s apart */
    peers_refresh(o.p);
    CHECK(next_resolution(e, &o, 3000) >= 0);
    peers_refresh(o.p);
    long ms = next_resolution(e, &o, 3000);
    CHECK(ms >= 900);
    CHECK(ms < 1500);

    /* a record added appears after a refresh */
    unsigned ch = o.changes;
    CHECK(write_hosts(e, HOSTS6 "127.0.0.5 " NAME "\n"));
    CHECK(reload_until(e, d, &o,
                       "127.0.0.2:7000 127.0.0.3:7000 127.0.0.4:7000 127.0.0.5:7000 "
                       "[fdaa::2]:7000 [fdaa::3]:7000 [fdaa::4]:7000"));
    CHECK_EQ(o.st.peers_known, 7);
    run_for(e, 50);
    CHECK_EQ(o.changes, ch + 1);

    /* removed ones disappear */
    CHECK(write_hosts(e, "127.0.0.3 " NAME "\n127.0.0.4 " NAME "\n127.0.0.5 " NAME "\n"
                         "fdaa::3 " NAME "\nfdaa::4 " NAME "\n"));
    CHECK(reload_until(e, d, &o,
                       "127.0.0.3:7000 127.0.0.4:7000 127.0.0.5:7000 [fdaa::3]:7000 "
                       "[fdaa::4]:7000"));
    CHECK_EQ(o.st.peers_known, 5);
    CHECK_EQ(o.st.dns_failures, 0);
    peers_free(o.p);
    CHECK(write_hosts(e, HOSTS6));
    kill(d->pid, SIGHUP);
    run_for(e, 200);
}

/* Our own addresses are left out, whatever their port or v4-mapped form. */
static void test_self(struct env *e, const char *server)
{
    char buf[512];
    struct sockaddr_storage self[3];
    ss_of(&self[0], "127.0.0.3:7000");
    ss_of(&self[1], "[fdaa::3]:9999");
    ss_of(&self[2], "[::ffff:127.0.0.4]:7000");
    struct obs o;
    CHECK(obs_start(e, &o, NAME, server, self, 3));
    if (!o.p)
        return;
    CHECK(next_resolution(e, &o, 3000) >= 0);
    CHECK_STR(set_text(o.p, buf, sizeof buf), "127.0.0.2:7000 [fdaa::2]:7000 [fdaa::4]:7000");
    CHECK_EQ(o.st.peers_known, 3);
    peers_free(o.p);
}

/* A TTL under 2 s is raised to 2 s: the next query comes 2 s later. */
static void test_ttl_floor(struct env *e, const char *server)
{
    struct obs o;
    CHECK(obs_start(e, &o, NAME, server, NULL, 0));
    if (!o.p)
        return;
    CHECK(next_resolution(e, &o, 3000) >= 0);
    long ms = next_resolution(e, &o, 4000);
    CHECK(ms >= 1800);
    CHECK(ms <= 2600);
    CHECK_EQ(peers_count(o.p), 6);
    peers_free(o.p);
}

static void test_v6_only(struct env *e, const char *server)
{
    char buf[512];
    struct obs o;
    CHECK(obs_start(e, &o, "v6only.example.test", server, NULL, 0));
    if (!o.p)
        return;
    CHECK(next_resolution(e, &o, 3000) >= 0);
    CHECK_STR(set_text(o.p, buf, sizeof buf), "[fdaa::7]:7000");
    CHECK_EQ(o.st.dns_failures, 0); /* "no A records" is an answer, not a failure */
    run_for(e, 50);
    CHECK_EQ(o.changes, 1);
    peers_free(o.p);
}

static void test_nxdomain(struct env *e, const char *server)
{
    struct obs o;
    CHECK(obs_start(e, &o, "nx.example.test", server, NULL, 0));
    if (!o.p)
        return;
    long ms = next_resolution(e, &o, 3000);
    CHECK(ms >= 0);
    CHECK(ms < 1000);
    CHECK_EQ(peers_count(o.p), 0);
    CHECK_EQ(o.st.dns_failures, 0);
    run_for(e, 50);
    CHECK_EQ(o.changes, 0);
    peers_free(o.p);
}

/* The server dies (closed port): failures come fast, the set stays, a retry
 * follows after 2 s, and the server's return is noticed without a refresh. */
static void test_dead_server(struct env *e, struct dns *d, const char *server)
{
    char buf[512];
    struct obs o;
    CHECK(obs_start(e, &o, NAME, server, NULL, 0));
    if (!o.p)
        return;
    CHECK(next_resolution(e, &o, 3000) >= 0);
    CHECK_STR(set_text(o.p, buf, sizeof buf), ALL6);
    run_for(e, 50);
    unsigned ch = o.changes;

    dns_stop(d);
    peers_refresh(o.p);
    long ms = next_resolution(e, &o, 5000);
    CHECK(ms >= 0);
    CHECK(ms <= 3500);
    CHECK_EQ(o.st.dns_failures, 1);
    CHECK_STR(set_text(o.p, buf, sizeof buf), ALL6);
    CHECK_EQ(o.st.peers_known, 6);

    ms = next_resolution(e, &o, 5000); /* the retry, without asking */
    CHECK(ms >= 1800);
    CHECK(ms <= 3500);
    CHECK_EQ(o.st.dns_failures, 2);
    CHECK_STR(set_text(o.p, buf, sizeof buf), ALL6);

    CHECK(dns_start(e, d));
    uint64_t failures = o.st.dns_failures;
    bool recovered = false;
    for (int i = 0; i < 3 && !recovered; i++) {
        if (next_resolution(e, &o, 4000) < 0)
            break;
        recovered = o.st.dns_failures == failures;
        failures = o.st.dns_failures;
    }
    CHECK(recovered);
    CHECK_STR(set_text(o.p, buf, sizeof buf), ALL6);
    run_for(e, 50);
    CHECK_EQ(o.changes, ch); /* the set never changed */
    peers_free(o.p);
}

/* A server that never answers: the first resolution fails within ~3 s
 * (1 s + 2 s), the set stays empty, nothing hangs; freeing with queries in
 * flight releases everything. */
static void test_silent_server(struct env *e)
{
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    CHECK(u >= 0 && bind(u, (struct sockaddr *)&sin, sizeof sin) == 0 &&
          getsockname(u, (struct sockaddr *)&sin, &sl) == 0);
    char server[64];
    snprintf(server, sizeof server, "127.0.0.1:%u", ntohs(sin.sin_port));

    struct obs o;
    CHECK(obs_start(e, &o, NAME, server, NULL, 0));
    if (o.p) {
        long ms = next_resolution(e, &o, 6000);
        CHECK(ms >= 2500);
        CHECK(ms <= 4000);
        CHECK_EQ(o.st.dns_failures, 1);
        CHECK_EQ(peers_count(o.p), 0);
        peers_free(o.p); /* the retry is scheduled: its timer is cancelled */
    }
    struct obs q;
    CHECK(obs_start(e, &q, NAME, server, NULL, 0));
    if (q.p) {
        run_for(e, 200); /* queries sent, sockets adopted, nothing answered */
        CHECK_EQ(q.st.dns_resolutions, 0);
        peers_free(q.p);
    }
    run_for(e, 100); /* lws closes the released sockets */
    close(u);
}

/* One family fails (AAAA unanswered), the other answers: the failed family's
 * addresses are kept, the failure is counted, the retry comes 2 s later. */
static void test_partial_failure(struct env *e)
{
    char buf[512], server[64];
    snprintf(server, sizeof server, "127.0.0.1:%u", e->rsp.port);
    struct obs o;
    CHECK(obs_start(e, &o, "partial.example.test", server, NULL, 0));
    if (!o.p)
        return;
    CHECK(next_resolution(e, &o, 3000) >= 0);
    CHECK_STR(set_text(o.p, buf, sizeof buf), "127.0.0.8:7000 [fdaa::8]:7000");
    CHECK_EQ(o.st.dns_failures, 0);
    CHECK_EQ(e->rsp.queries, 2);

    e->rsp.aaaa = false;
    peers_refresh(o.p);
    long ms = next_resolution(e, &o, 6000);
    CHECK(ms >= 2500); /* 1 s refresh gap... */
    CHECK(ms <= 4500); /* ...+ 1 s + 2 s for the unanswered AAAA */
    CHECK_EQ(o.st.dns_failures, 1);
    CHECK_STR(set_text(o.p, buf, sizeof buf), "127.0.0.8:7000 [fdaa::8]:7000");
    CHECK_EQ(e->rsp.queries, 2 + 1 + 2); /* A once, AAAA twice (2 tries) */

    e->rsp.aaaa = true;
    ms = next_resolution(e, &o, 4000);
    CHECK(ms >= 1800);
    CHECK(ms <= 2600);
    CHECK_EQ(o.st.dns_failures, 1);
    run_for(e, 50);
    CHECK_EQ(o.changes, 1);
    peers_free(o.p);
}

static void test_bad_args(struct env *e)
{
    CHECK(peers_new(e->ctx, e->vh, "", "", PEER_PORT, NULL, 0, NULL, NULL, NULL) == NULL);
    CHECK(peers_new(e->ctx, e->vh, NAME, "not-an-address", PEER_PORT, NULL, 0, NULL, NULL, NULL) ==
          NULL);
    /* no stats, no ops: fine */
    struct peers *p =
        peers_new(e->ctx, e->vh, NAME, "127.0.0.1:1", PEER_PORT, NULL, 0, NULL, NULL, NULL);
    CHECK(p != NULL);
    peers_free(p);
    peers_free(NULL);
    peers_refresh(NULL);
    CHECK_EQ(peers_count(NULL), 0);
}

int main(void)
{
    if (system("command -v dnsmasq >/dev/null 2>&1 || test -x /usr/sbin/dnsmasq") != 0) {
        printf("dnsmasq is not installed (apt-get install dnsmasq-base): skipped\n");
        return 77;
    }
    log_init("test_peers_dns", getenv("TEST_VERBOSE") ? LOG_DEBUG : LOG_WARN);
    lws_set_log_level(0, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct env e;
    memset(&e, 0, sizeof e);
    snprintf(e.dir, sizeof e.dir, "/tmp/warren-peers-XXXXXX");
    if (!mkdtemp(e.dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(e.hosts, sizeof e.hosts, "%s/hosts", e.dir);
    CHECK(write_hosts(&e, HOSTS6));

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.fd_limit_per_thread = 1024;
    e.ctx = lws_create_context(&info);
    CHECK(e.ctx != NULL);
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vi.protocols = protocols;
    vi.vhost_name = "test";
    e.vh = e.ctx ? lws_create_vhost(e.ctx, &vi) : NULL;
    CHECK(e.vh != NULL);

    struct dns d = {.port = free_port(), .ttl = 30};
    struct dns d1 = {.port = free_port(), .ttl = 1};
    CHECK(d.port != 0 && d1.port != 0 && d.port != d1.port);
    bool up = e.vh && dns_start(&e, &d) && dns_start(&e, &d1) && responder_start(&e);
    CHECK(up);
    if (up) {
        char server[64], server1[64];
        snprintf(server, sizeof server, "127.0.0.1:%u", d.port);
        snprintf(server1, sizeof server1, "127.0.0.1:%u", d1.port);
        test_bad_args(&e);
        test_fleet(&e, &d, server);
        test_self(&e, server);
        test_ttl_floor(&e, server1);
        test_v6_only(&e, server);
        test_nxdomain(&e, server);
        test_dead_server(&e, &d, server);
        test_silent_server(&e);
        test_partial_failure(&e);
        if (check_failed)
            dns_show_log(&d);
    }
    dns_stop(&d);
    dns_stop(&d1);
    if (e.ctx)
        lws_context_destroy(e.ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", e.dir);
    return check_done();
}
