/*
 * peerlink: TCP links between edges.
 *
 * Records on a link are length-prefixed frames (common/frame.h: u32 length |
 * frame). Before authentication only one CTL frame each way is allowed: the
 * dialer's peer_hello and the acceptor's peer_welcome, each carrying the
 * sender's instance id, a timestamp, a fresh nonce and an HMAC over them with
 * the fleet key (the welcome's also covers the dialer's nonce, so it cannot be
 * replayed either). The acceptor refuses stale timestamps (over 30 s off) and
 * nonces it has seen; either side refuses a bad MAC or a link to itself.
 * After that: CTL frames go to fleet.c, mux frames to the link's mux. Every
 * byte a peer sends is parsed by common/peermsg (records, sealing, the JSON
 * messages); this file keeps the sockets and the handshake's state.
 *
 * Invariants: every buffer is bounded (read buffer, write buffer, control
 * queue); a link is freed only from its close callback (or, for a link with no
 * socket, by its owner); outbound links exist exactly for the addresses
 * discovery reports.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "lwsraw.h"
#include "addr.h"
#include "config.h"
#include "edge.h"
#include "fleet.h"
#include "frame.h"
#include "log.h"
#include "lwswake.h"
#include "peerlink.h"
#include "peermsg.h"
#include "peers.h"
#include "session.h"
#include "visitor.h"

#define RBUF_CAP (256 * 1024)
#define WBUF_CAP (256 * 1024)
#define PREAUTH_CAP (8 * 1024) /* buffers of a link before it authenticated */
#define CTLQ_MAX 4096
#define MAX_INBOUND 256
#define HANDSHAKE_MS 3000
#define TS_SKEW_MS 30000
#define NONCE_LEN PEERMSG_NONCE_LEN
#define SEAL_TAG PEERMSG_SEAL_TAG
#define REPLAY_SLOTS 1024
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000

enum role { ROLE_LISTENER, ROLE_OUT, ROLE_IN };

struct link {
    struct raw_obj obj; /* RAW_PEER */
    enum role role;
    struct edge *e;
    struct lws *wsi;
    int fd;
    enum link_state state;
    bool tcp_up, hello_done, kill, present, reading;
    struct lwswake wake; /* see want_write() */
    bool self;           /* the address leads back to this edge: never dialled again */
    bool leaving;        /* left DNS with forwarded streams open: closes when they end */
    uint64_t leave_by_ms;
    struct sockaddr_storage addr;
    socklen_t alen;
    char addr_text[ADDR_TEXT_MAX];
    char instance[64];
    uint8_t nonce[NONCE_LEN]; /* our nonce of the handshake, and its text */
    char nonce_text[PEERMSG_NONCE_TEXT];
    mux *mux;
    uint8_t *rbuf, *wbuf;
    size_t rlen, wlen, woff;
    size_t rcap, wcap; /* PREAUTH_CAP until authenticated, then RBUF_CAP / WBUF_CAP */
    /* after the handshake every record is sealed (ChaCha20-Poly1305, a key per
     * direction derived from the fleet key and both handshake nonces, the
     * record counter as nonce): nothing can be injected, replayed, reordered */
    uint8_t na[NONCE_LEN], nd[NONCE_LEN]; /* acceptor's and dialer's nonces */
    uint8_t ktx[32], krx[32];
    uint64_t seq_tx, seq_rx;
    bool tx_seal, rx_seal;
    char *ctlq[CTLQ_MAX];
    unsigned ctl_head, nctl;
    unsigned backoff_ms;
    struct link *next; /* inbound list */
    lws_sorted_usec_list_t retry_sul, hs_sul;
};

struct peerlinks {
    struct link listener;
    struct link **out;
    unsigned nout;
    struct link *in;
    unsigned nin;
    uint8_t seen[REPLAY_SLOTS][NONCE_LEN];
    unsigned seen_next;
    uint8_t issued[64][NONCE_LEN]; /* our recent challenges: a dial that meets one is a self-link */
    unsigned issued_next;
    struct link *leaving; /* outbound links that left DNS, finishing their streams */
    lws_sorted_usec_list_t leave_sul;
    bool stopping;
};

static void link_dial(struct link *l);
static void fill_wbuf(struct link *l);

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* WRITEABLE on request, also from inside the WRITEABLE callback (lwswake.h). */
static void want_write(struct link *l)
{
    lwswake_request(&l->wake, l->wsi);
}

static void kill_link(struct link *l, const char *why)
{
    if (!l->kill)
        log_info("peer %s%s%s: link closed: %s", l->addr_text, l->instance[0] ? " " : "",
                 l->instance, why);
    l->kill = true;
    want_write(l);
}

static int queue_ctl_text(struct link *l, char *text)
{
    if (!text)
        return -ENOMEM;
    if (strlen(text) > FRAME_CTL_MAX || l->nctl == CTLQ_MAX) {
        free(text);
        return -ENOBUFS;
    }
    l->ctlq[(l->ctl_head + l->nctl++) % CTLQ_MAX] = text;
    want_write(l);
    return 0;
}

int peerlink_send(struct link *l, const struct peermsg *msg)
{
    if (l->state != LINK_UP || l->kill)
        return -ENOTCONN;
    return queue_ctl_text(l, peermsg_encode(msg));
}

/* --- mux glue: streams on outbound links belong to visitors, on inbound
 * links to bridges; both user-data structs start with a struct raw_obj --- */

static void mux_want_write(void *ud)
{
    want_write(ud);
}

static void st_readable(void *ud, mux_stream *s)
{
    if (((struct raw_obj *)ud)->kind == RAW_VISITOR)
        visitor_stream_readable(ud);
    else
        fleet_bridge_readable(ud);
}

static void st_writable(void *ud, mux_stream *s)
{
    if (((struct raw_obj *)ud)->kind == RAW_VISITOR)
        visitor_stream_writable(ud);
    else
        fleet_bridge_writable(ud);
}

static void st_closed(void *ud, mux_stream *s, uint16_t code)
{
    if (((struct raw_obj *)ud)->kind == RAW_VISITOR)
        visitor_stream_closed(ud, code);
    else
        fleet_bridge_closed(ud, code);
}

static int st_open(void *ud, mux_stream *s, const struct frame_open *o)
{
    struct link *l = ud;
    return fleet_stream_open(l->e, s, o);
}

static const struct mux_ops out_ops = {mux_want_write, NULL, st_readable, st_writable, st_closed};
static const struct mux_ops in_ops = {mux_want_write, st_open, st_readable, st_writable, st_closed};

/* --- handshake --- */

static char *make_auth(struct link *l, enum peermsg_type kind, const char *peer_nonce)
{
    const struct config *c = l->e->cfg;
    struct peermsg m;
    memset(&m, 0, sizeof m);
    m.type = kind;
    snprintf(m.instance, sizeof m.instance, "%s", c->instance_id);
    m.ts = wall_ms();
    peermsg_nonce_new(l->nonce, l->nonce_text);
    memcpy(m.nonce, l->nonce, NONCE_LEN);
    memcpy(m.nonce_text, l->nonce_text, sizeof m.nonce_text);
    peermsg_auth_sign(&m, peer_nonce, c->fleet_key);
    return peermsg_encode(&m);
}

/* Check a peer_hello / peer_welcome. 0 or -EACCES (why in *why). */
static int check_auth(struct link *l, const struct peermsg *m, enum peermsg_type kind,
                      const char **why)
{
    struct peerlinks *pl = l->e->links;
    *why = "malformed handshake";
    if (m->type != kind)
        return -EACCES;
    uint64_t ts = m->ts, now = wall_ms();
    if (peermsg_auth_verify(m, l->nonce_text, l->e->cfg->fleet_key) != 0) {
        *why = "bad MAC (another fleet secret?)";
        return -EACCES;
    }
    if (ts + TS_SKEW_MS < now || ts > now + TS_SKEW_MS) {
        *why = "stale or future timestamp (replay, or clocks more than 30 s apart)";
        return -EACCES;
    }
    for (unsigned i = 0; i < REPLAY_SLOTS; i++) {
        if (sodium_memcmp(pl->seen[i], m->nonce, NONCE_LEN) == 0) {
            *why = "replayed nonce";
            return -EACCES;
        }
    }
    memcpy(pl->seen[pl->seen_next], m->nonce, NONCE_LEN);
    pl->seen_next = (pl->seen_next + 1) % REPLAY_SLOTS;
    if (strcmp(m->instance, l->e->cfg->instance_id) == 0) {
        *why = "this is a link to ourselves";
        return -EACCES;
    }
    snprintf(l->instance, sizeof l->instance, "%s", m->instance);
    return 0;
}

static void derive_link_keys(struct link *l)
{
    bool dialer = l->role == ROLE_OUT;
    const uint8_t *k = l->e->cfg->fleet_key;
    peermsg_link_key(k, dialer ? "d2a" : "a2d", l->nd, l->na, l->ktx);
    peermsg_link_key(k, dialer ? "a2d" : "d2a", l->nd, l->na, l->krx);
    l->seq_tx = l->seq_rx = 0;
}

/* The acceptor speaks first: a fresh nonce the dialer's MAC must cover, so
 * a recorded hello is worth nothing on any other connection. */
static char *make_challenge(struct link *l)
{
    struct peerlinks *pl = l->e->links;
    struct peermsg m;
    memset(&m, 0, sizeof m);
    m.type = PEERMSG_CHALLENGE;
    peermsg_nonce_new(l->nonce, l->nonce_text);
    memcpy(pl->issued[pl->issued_next], l->nonce, NONCE_LEN);
    pl->issued_next = (pl->issued_next + 1) % 64;
    memcpy(m.nonce, l->nonce, NONCE_LEN);
    memcpy(m.nonce_text, l->nonce_text, sizeof m.nonce_text);
    return peermsg_encode(&m);
}

/* Dialer: answer the challenge with our hello (or notice we dialled ourselves). */
static void handle_challenge(struct link *l, const struct peermsg *m)
{
    struct peerlinks *pl = l->e->links;
    if (m->type != PEERMSG_CHALLENGE) {
        kill_link(l, "malformed challenge");
        return;
    }
    for (unsigned i = 0; i < 64; i++) {
        if (sodium_memcmp(pl->issued[i], m->nonce, NONCE_LEN) == 0) {
            l->self = true;
            kill_link(l, "this address leads back to this edge; not dialling it again");
            return;
        }
    }
    memcpy(l->na, m->nonce, NONCE_LEN);
    l->hello_done = true; /* for the dialer: hello sent */
    if (queue_ctl_text(l, make_auth(l, PEERMSG_HELLO, m->nonce_text)) < 0)
        kill_link(l, "out of memory");
    memcpy(l->nd, l->nonce, NONCE_LEN);
}

static void link_up(struct link *l)
{
    uint8_t *rb = realloc(l->rbuf, RBUF_CAP);
    if (rb)
        l->rbuf = rb;
    uint8_t *wb = rb ? realloc(l->wbuf, WBUF_CAP) : NULL;
    if (wb)
        l->wbuf = wb;
    if (!rb || !wb) {
        kill_link(l, "out of memory");
        return;
    }
    l->rcap = RBUF_CAP;
    l->wcap = WBUF_CAP;
    derive_link_keys(l);
    l->tx_seal = true;
    struct mux_config mc = {.window = 256 * 1024,
                            .tx_buf = 64 * 1024,
                            .max_streams = 65536,
                            .odd_ids = l->role == ROLE_OUT};
    l->mux = mux_new(&mc, l->role == ROLE_OUT ? &out_ops : &in_ops, l);
    if (!l->mux) {
        kill_link(l, "out of memory");
        return;
    }
    l->state = LINK_UP;
    l->backoff_ms = 0;
    lws_sul_cancel(&l->hs_sul);
    log_info("peer %s %s: link up (%s)", l->addr_text, l->instance,
             l->role == ROLE_OUT ? "outbound" : "inbound");
    if (l->role == ROLE_OUT)
        l->e->fleet.peers_connected++;
    fleet_link_up(l->e, l, l->role == ROLE_OUT);
}

static void handle_ctl(struct link *l, const uint8_t *p, size_t n)
{
    struct peermsg msg;
    int r = peermsg_parse(p, n, &msg);
    if (r == -EINVAL) {
        kill_link(l, "malformed control message");
        return;
    }
    if (l->state == LINK_UP) {
        if (r == 0) /* a message the fleet cannot use is ignored, like an unknown one */
            fleet_ctl(l->e, l, l->role == ROLE_OUT, &msg);
        return;
    }
    const struct peermsg *m = r == 0 ? &msg : NULL; /* NULL: an object of the wrong shape */
    const char *why = "malformed handshake";
    if (l->role == ROLE_IN && !l->hello_done) {
        if (!m || check_auth(l, m, PEERMSG_HELLO, &why) < 0) {
            l->e->fleet.peer_auth_failures++;
            kill_link(l, why);
            return;
        }
        l->hello_done = true;
        memcpy(l->na, l->nonce, NONCE_LEN);
        memcpy(l->nd, m->nonce, NONCE_LEN);
        /* the welcome is the last plain record: queue it, then seal the rest */
        queue_ctl_text(l, make_auth(l, PEERMSG_WELCOME, m->nonce_text));
        fill_wbuf(l);
        l->rx_seal = true;
        link_up(l);
        return;
    }
    if (l->role == ROLE_OUT && !l->hello_done) {
        if (!m)
            kill_link(l, "malformed challenge");
        else
            handle_challenge(l, m);
        return;
    }
    if (l->role == ROLE_OUT && l->hello_done) {
        if (!m || check_auth(l, m, PEERMSG_WELCOME, &why) < 0) {
            l->e->fleet.peer_auth_failures++;
            kill_link(l, why);
            return;
        }
        l->rx_seal = true;
        link_up(l);
        return;
    }
    kill_link(l, "unexpected message during the handshake");
}

/* --- reading --- */

static int on_readable(struct link *l)
{
    if (l->rlen < l->rcap) {
        ssize_t n = read(l->fd, l->rbuf + l->rlen, l->rcap - l->rlen);
        if (n == 0) {
            kill_link(l, "closed by the peer");
            return -1;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            kill_link(l, strerror(errno));
            return -1;
        }
        l->rlen += (size_t)n;
    }
    size_t off = 0;
    while (!l->kill) {
        struct frame f;
        uint8_t *rec = l->rbuf + off + FRAME_LEN_PREFIX;
        size_t flen;
        /* plain u32 length | frame during the handshake, sealed records after it */
        long r = peermsg_record_take(l->rbuf + off, l->rlen - off, l->rx_seal ? l->krx : NULL,
                                     &l->seq_rx, &f, &flen);
        if (r == 0)
            break;
        if (r == -EBADMSG) {
            l->e->fleet.peer_auth_failures++;
            kill_link(l, "a record failed authentication (injected, replayed or reordered)");
            return -1;
        }
        if (r < 0) {
            kill_link(l,
                      r == -EMSGSIZE && l->rx_seal ? "malformed sealed record" : "malformed frame");
            return -1;
        }
        if (f.type == FRAME_CTL) {
            handle_ctl(l, f.payload, f.len);
        } else if (l->state != LINK_UP) {
            kill_link(l, "frame before the handshake");
            return -1;
        } else if (mux_input(l->mux, rec, flen) < 0) {
            kill_link(l, "mux protocol error");
            return -1;
        }
        off += (size_t)r;
    }
    memmove(l->rbuf, l->rbuf + off, l->rlen - off);
    l->rlen -= off;
    return l->kill ? -1 : 0;
}

/* --- writing --- */

/* A frame of n bytes was written at wbuf + wlen + 4: seal it if the
 * handshake is done, then add its length prefix. */
static void commit_record(struct link *l, size_t n)
{
    uint8_t *rec = l->wbuf + l->wlen + FRAME_LEN_PREFIX;
    if (l->tx_seal && !(n = peermsg_seal(rec, n, l->ktx, &l->seq_tx))) {
        kill_link(l, "out of memory sealing a record");
        return;
    }
    frame_put_prefix(l->wbuf + l->wlen, n);
    l->wlen += FRAME_LEN_PREFIX + n;
}

static void fill_wbuf(struct link *l)
{
    if (l->woff == l->wlen)
        l->woff = l->wlen = 0;
    while (l->nctl && !l->kill &&
           l->wcap - l->wlen >= FRAME_LEN_PREFIX + FRAME_HDR_LEN + FRAME_CTL_MAX + SEAL_TAG) {
        char *t = l->ctlq[l->ctl_head];
        l->ctl_head = (l->ctl_head + 1) % CTLQ_MAX;
        l->nctl--;
        size_t n = frame_encode_ctl(l->wbuf + l->wlen + FRAME_LEN_PREFIX,
                                    l->wcap - l->wlen - FRAME_LEN_PREFIX - SEAL_TAG, t, strlen(t));
        free(t);
        if (n)
            commit_record(l, n);
    }
    while (l->mux && l->state == LINK_UP && !l->kill &&
           l->wcap - l->wlen >= FRAME_LEN_PREFIX + FRAME_MAX_LEN + SEAL_TAG) {
        size_t n = mux_next_frame(l->mux, l->wbuf + l->wlen + FRAME_LEN_PREFIX, FRAME_MAX_LEN);
        if (!n)
            break;
        commit_record(l, n);
    }
}

static int on_connected(struct link *l)
{
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        l->state = err == ECONNREFUSED ? LINK_REFUSED : LINK_DOWN;
        log_debug("peer %s: connect: %s", l->addr_text, strerror(err));
        l->kill = true;
        if (err == ECONNREFUSED)
            fleet_link_refused(l->e, l);
        return -1;
    }
    l->tcp_up = true;
    int one = 1;
    setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0; /* the acceptor speaks first (peer_challenge) */
}

static int on_writeable(struct link *l)
{
    if (l->kill)
        return -1;
    if (l->role == ROLE_OUT && !l->tcp_up && on_connected(l) < 0)
        return -1;
    for (int round = 0; round < 4; round++) {
        if (l->woff == l->wlen)
            fill_wbuf(l);
        if (l->kill)
            return -1;
        if (l->woff == l->wlen)
            return 0;
        ssize_t w = write(l->fd, l->wbuf + l->woff, l->wlen - l->woff);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                want_write(l);
                return 0;
            }
            kill_link(l, strerror(errno));
            return -1;
        }
        l->woff += (size_t)w;
        if (l->woff < l->wlen) {
            want_write(l);
            return 0;
        }
    }
    want_write(l);
    return 0;
}

/* --- lifecycle --- */

static struct link *link_alloc(struct edge *e, enum role role)
{
    struct link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->obj.kind = RAW_PEER;
    l->role = role;
    l->e = e;
    l->fd = -1;
    l->state = LINK_DOWN;
    l->rcap = l->wcap = PREAUTH_CAP; /* unauthenticated connections stay cheap */
    l->rbuf = malloc(l->rcap);
    l->wbuf = malloc(l->wcap);
    if (!l->rbuf || !l->wbuf) {
        free(l->rbuf);
        free(l->wbuf);
        free(l);
        return NULL;
    }
    return l;
}

static void link_reset(struct link *l)
{
    struct edge *e = l->e;
    bool was_up = l->state == LINK_UP;
    lws_sul_cancel(&l->hs_sul);
    lwswake_cancel(&l->wake);
    if (was_up && l->role == ROLE_OUT && e->fleet.peers_connected)
        e->fleet.peers_connected--;
    if (was_up)
        fleet_link_down(e, l, l->role == ROLE_OUT);
    mux_free(l->mux); /* visitors / bridges learn RST_SESSION_GONE */
    l->mux = NULL;
    for (; l->nctl; l->nctl--) {
        free(l->ctlq[l->ctl_head]);
        l->ctl_head = (l->ctl_head + 1) % CTLQ_MAX;
    }
    l->ctl_head = 0;
    l->rlen = l->wlen = l->woff = 0;
    l->tcp_up = l->hello_done = l->kill = false;
    l->tx_seal = l->rx_seal = false;
    sodium_memzero(l->ktx, sizeof l->ktx);
    sodium_memzero(l->krx, sizeof l->krx);
    l->instance[0] = 0;
    l->wsi = NULL;
    l->fd = -1;
}

static void link_free(struct link *l)
{
    if (l->role == ROLE_OUT)
        fleet_link_gone(l->e, l);
    lws_sul_cancel(&l->retry_sul);
    lws_sul_cancel(&l->hs_sul);
    lwswake_cancel(&l->wake);
    free(l->rbuf);
    free(l->wbuf);
    free(l);
}

static void retry_cb(lws_sorted_usec_list_t *sul)
{
    struct link *l = lws_container_of(sul, struct link, retry_sul);
    link_dial(l);
}

static void schedule_retry(struct link *l)
{
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
    uint32_t d = l->backoff_ms / 2 + randombytes_uniform(l->backoff_ms / 2 + 1);
    lws_sul_schedule(l->e->ctx, 0, &l->retry_sul, retry_cb, (lws_usec_t)d * 1000);
}

static void handshake_deadline(lws_sorted_usec_list_t *sul)
{
    struct link *l = lws_container_of(sul, struct link, hs_sul);
    if (l->state != LINK_UP)
        kill_link(l, "no handshake in time");
}

static struct lws *adopt(struct edge *e, int fd, struct link *l)
{
    return lwsraw_adopt(e->vh, fd, WARREN_RAW_PROTOCOL, l);
}

static void link_dial(struct link *l)
{
    struct edge *e = l->e;
    if (e->stopping || e->links->stopping || l->wsi)
        return;
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        schedule_retry(l);
        return;
    }
    /* leave from our own peer address, so the link stays on the private network
     * and the peer sees who we are */
    struct sockaddr_storage src = e->cfg->peer_listen.ss;
    if (src.ss_family == l->addr.ss_family) {
        if (src.ss_family == AF_INET)
            ((struct sockaddr_in *)&src)->sin_port = 0;
        else
            ((struct sockaddr_in6 *)&src)->sin6_port = 0;
        bind(fd, (struct sockaddr *)&src, e->cfg->peer_listen.len);
    }
    if (connect(fd, (struct sockaddr *)&l->addr, l->alen) < 0 && errno != EINPROGRESS) {
        bool refused = errno == ECONNREFUSED;
        l->state = refused ? LINK_REFUSED : LINK_DOWN;
        close(fd);
        schedule_retry(l);
        if (refused)
            fleet_link_refused(e, l);
        return;
    }
    l->fd = fd;
    l->wsi = adopt(e, fd, l);
    if (!l->wsi) {
        l->fd = -1;
        schedule_retry(l);
        return;
    }
    if (l->state != LINK_REFUSED)
        l->state = LINK_CONNECTING;
    lws_callback_on_writable(l->wsi);
    lws_sul_schedule(e->ctx, 0, &l->hs_sul, handshake_deadline, (lws_usec_t)HANDSHAKE_MS * 1000);
}

static void accept_batch(struct edge *e)
{
    struct peerlinks *pl = e->links;
    for (int i = 0; i < 32; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd =
            accept4(pl->listener.fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct link *l = pl->nin < MAX_INBOUND ? link_alloc(e, ROLE_IN) : NULL;
        if (!l) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        l->fd = fd;
        l->addr = ss;
        l->alen = len;
        l->tcp_up = true;
        l->state = LINK_CONNECTING;
        addr_format((struct sockaddr *)&ss, l->addr_text, sizeof l->addr_text);
        l->wsi = adopt(e, fd, l);
        if (!l->wsi) {
            link_free(l);
            continue;
        }
        l->next = pl->in;
        pl->in = l;
        pl->nin++;
        queue_ctl_text(l, make_challenge(l));
        lws_sul_schedule(e->ctx, 0, &l->hs_sul, handshake_deadline,
                         (lws_usec_t)HANDSHAKE_MS * 1000);
    }
}

#define LEAVE_CHECK_US (1 * LWS_US_PER_SEC)
#define LEAVE_MAX_MS 60000

static void unlink_leaving(struct peerlinks *pl, struct link *l)
{
    for (struct link **pp = &pl->leaving; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    l->leaving = false;
}

/* Links that left DNS close once their forwarded streams are done (or after a
 * minute), so a DNS change never cuts a transfer in flight. */
static void leave_check(lws_sorted_usec_list_t *sul)
{
    struct peerlinks *pl = lws_container_of(sul, struct peerlinks, leave_sul);
    uint64_t now = edge_now_ms();
    for (struct link *l = pl->leaving; l; l = l->next)
        if (!l->kill && (!l->mux || mux_stream_count(l->mux) == 0 || now > l->leave_by_ms))
            kill_link(l, "left the fleet");
    if (pl->leaving && !pl->stopping)
        lws_sul_schedule(pl->listener.e->ctx, 0, &pl->leave_sul, leave_check, LEAVE_CHECK_US);
}

static void on_closed(struct link *l)
{
    struct edge *e = l->e;
    struct peerlinks *pl = e->links;
    if (l->leaving)
        unlink_leaving(pl, l);
    enum link_state st = l->state;
    link_reset(l);
    if (l->role == ROLE_IN) {
        for (struct link **pp = &pl->in; *pp; pp = &(*pp)->next)
            if (*pp == l) {
                *pp = l->next;
                break;
            }
        pl->nin--;
        link_free(l);
        return;
    }
    if (!l->present) { /* left the fleet: no longer in pl->out */
        link_free(l);
        return;
    }
    l->state = l->self ? LINK_SELF : st == LINK_REFUSED ? LINK_REFUSED : LINK_DOWN;
    if (!pl->stopping && !e->stopping && !l->self)
        schedule_retry(l);
}

int peerlink_callback(struct lws *wsi, enum lws_callback_reasons reason, void *obj)
{
    struct link *l = obj;
    if (l->role == ROLE_LISTENER) {
        if (reason == LWS_CALLBACK_RAW_RX_FILE)
            accept_batch(l->e); /* also while draining: peers still ask about our names */
        if (reason == LWS_CALLBACK_RAW_CLOSE_FILE) {
            l->wsi = NULL;
            l->fd = -1;
        }
        return 0;
    }
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (l->kill)
            return -1;
        if (l->role == ROLE_OUT && !l->tcp_up)
            return 0; /* wait for the connect to finish (writable) */
        return on_readable(l);
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        lwswake_enter(&l->wake);
        return lwswake_leave(&l->wake, l->e->ctx, on_writeable(l));
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        on_closed(l);
        return 0;
    default:
        return 0;
    }
}

int peerlink_start(struct edge *e)
{
    const struct config *c = e->cfg;
    struct peerlinks *pl = calloc(1, sizeof *pl);
    if (!pl)
        return -1;
    e->links = pl;
    struct link *ls = &pl->listener;
    ls->obj.kind = RAW_PEER;
    ls->role = ROLE_LISTENER;
    ls->e = e;
    snprintf(ls->addr_text, sizeof ls->addr_text, "%s", c->peer_listen.text);
    ls->fd = socket(c->peer_listen.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (ls->fd >= 0) {
        setsockopt(ls->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (c->peer_listen.ss.ss_family == AF_INET6)
            setsockopt(ls->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (ls->fd < 0 ||
        bind(ls->fd, (const struct sockaddr *)&c->peer_listen.ss, c->peer_listen.len) < 0 ||
        listen(ls->fd, 256) < 0) {
        log_err("peer listener %s", c->peer_listen.text);
        if (ls->fd >= 0)
            close(ls->fd);
        ls->fd = -1;
        return -1;
    }
    ls->wsi = adopt(e, ls->fd, ls);
    if (!ls->wsi) {
        ls->fd = -1;
        return -1;
    }
    log_info("peer listener on %s, instance %s", c->peer_listen.text, c->instance_id);
    return 0;
}

void peerlink_sync(struct edge *e)
{
    struct peerlinks *pl = e->links;
    if (!pl || !e->peers)
        return;
    for (unsigned i = 0; i < pl->nout; i++)
        pl->out[i]->present = false;
    unsigned n = peers_count(e->peers);
    struct link **out = calloc(n ? n : 1, sizeof *out);
    if (!out)
        return;
    unsigned nout = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct sockaddr_storage *a = peers_addr(e->peers, i);
        struct link *found = NULL;
        for (unsigned j = 0; j < pl->nout && !found; j++) {
            struct link *l = pl->out[j];
            if (l->addr.ss_family == a->ss_family &&
                memcmp(&l->addr, a,
                       a->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                               : sizeof(struct sockaddr_in6)) == 0)
                found = l;
        }
        if (!found) {
            found = link_alloc(e, ROLE_OUT);
            if (!found)
                continue;
            memcpy(&found->addr, a, sizeof *a);
            found->alen =
                a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
            addr_format((const struct sockaddr *)a, found->addr_text, sizeof found->addr_text);
            found->present = true;
            link_dial(found);
        }
        found->present = true;
        out[nout++] = found;
    }
    /* links to addresses that left: close (freed in their close callback) */
    for (unsigned j = 0; j < pl->nout; j++) {
        struct link *l = pl->out[j];
        if (l->present)
            continue;
        log_info("peer %s left the fleet", l->addr_text);
        if (l->wsi && l->mux && mux_stream_count(l->mux) > 0) {
            /* forwarded streams are in flight: no new work, close when done */
            fleet_link_gone(e, l);
            l->leaving = true;
            l->leave_by_ms = edge_now_ms() + LEAVE_MAX_MS;
            l->next = pl->leaving;
            pl->leaving = l;
            lws_sul_schedule(e->ctx, 0, &pl->leave_sul, leave_check, LEAVE_CHECK_US);
        } else if (l->wsi) {
            kill_link(l, "left the fleet");
        } else {
            link_reset(l);
            link_free(l);
        }
    }
    free(pl->out);
    pl->out = out;
    pl->nout = nout;
}

void peerlink_stop(struct edge *e)
{
    struct peerlinks *pl = e->links;
    if (!pl)
        return;
    pl->stopping = true;
    lws_sul_cancel(&pl->leave_sul);
    for (struct link *l = pl->leaving; l; l = l->next) {
        lws_sul_cancel(&l->hs_sul);
        lwswake_cancel(&l->wake);
        kill_link(l, "edge stopping");
    }
    if (pl->listener.wsi)
        lws_set_timeout(pl->listener.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    for (unsigned i = 0; i < pl->nout; i++) {
        struct link *l = pl->out[i];
        lws_sul_cancel(&l->retry_sul);
        lws_sul_cancel(&l->hs_sul);
        lwswake_cancel(&l->wake);
        if (l->wsi)
            kill_link(l, "edge stopping");
    }
    for (struct link *l = pl->in; l; l = l->next) {
        lws_sul_cancel(&l->hs_sul);
        lwswake_cancel(&l->wake);
        kill_link(l, "edge stopping");
    }
}

void peerlink_free(struct edge *e)
{
    struct peerlinks *pl = e->links;
    if (!pl)
        return;
    /* after lws_context_destroy: every link with a socket got its close callback */
    for (unsigned i = 0; i < pl->nout; i++) {
        link_reset(pl->out[i]);
        link_free(pl->out[i]);
    }
    free(pl->out);
    while (pl->in) {
        struct link *l = pl->in;
        pl->in = l->next;
        link_reset(l);
        link_free(l);
    }
    while (pl->leaving) {
        struct link *l = pl->leaving;
        pl->leaving = l->next;
        link_reset(l);
        link_free(l);
    }
    free(pl);
    e->links = NULL;
}

void peerlink_kick(struct link *l)
{
    if (l->wsi || l->self || l->e->links->stopping || l->e->stopping)
        return;
    lws_sul_cancel(&l->retry_sul);
    l->backoff_ms = 0;
    if (l->state == LINK_REFUSED)
        l->state = LINK_DOWN; /* it says nothing until this new attempt ends */
    link_dial(l);
}

unsigned peerlink_count(const struct edge *e)
{
    return e->links ? e->links->nout : 0;
}

struct link *peerlink_get(const struct edge *e, unsigned i)
{
    return e->links->out[i];
}

enum link_state peerlink_state(const struct link *l)
{
    return l->state;
}

const char *peerlink_addr(const struct link *l)
{
    return l->addr_text;
}

const char *peerlink_instance(const struct link *l)
{
    return l->instance;
}

mux_stream *peerlink_open_stream(struct link *l, const struct frame_open *o, void *ud)
{
    if (l->state != LINK_UP || !l->mux || l->kill) {
        errno = ENOTCONN;
        return NULL;
    }
    return mux_open(l->mux, o, ud);
}
