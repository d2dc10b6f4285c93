/*
 * fleet: lookups, claims and bridged streams between edges.
 *
 * A request (lookup or claim) snapshots the outbound links when it starts and
 * tracks one answer per link: sent, yes, no. A link that refuses connections
 * has nothing running behind it and counts as "no"; a link that is still
 * connecting gets the request when it comes up, if that is before the
 * deadline. Results are always delivered from a timer callback, never from
 * inside fleet_lookup()/fleet_claim(). Lookups of one name share one request.
 *
 * Claims, answered by each peer:
 *   owner claim (valid reconnect token)  -> yes; the peer lets the name go
 *       (closes a live session that still holds it, drops a reservation);
 *   the name is live or reserved on the peer -> no;
 *   the peer has its own claim of the name in flight -> the earlier claim
 *       (timestamp, then instance id) wins; the loser is told no / marked lost;
 *   otherwise yes.
 * A claim succeeds when every peer said yes before the deadline; silence is a
 * refusal ("unavailable", retryable), except for owners (their token proves the
 * name is theirs: a silent peer can only hold their own old session).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "edge.h"
#include "fleet.h"
#include "log.h"
#include "names.h"
#include "peerlink.h"
#include "peers.h"
#include "registry.h"
#include "session.h"

#define LOOKUP_DEADLINE_MS 1000
#define CLAIM_DEADLINE_MS 2000
#define CACHE_SLOTS 1024
#define CACHE_TTL_MS 5000

enum req_kind { REQ_LOOKUP, REQ_CLAIM };
/* A_ABSENT: a connect made for this request was refused, or the address is
 * this edge itself: nothing runs there, so it holds no name (a "no" for
 * lookups, a "yes" for claims). */
enum answer { A_UNSENT, A_SENT, A_NO, A_YES, A_RESERVED, A_ABSENT };

struct fleet_wait {
    struct fleet_wait *next;
    struct req *req;
    fleet_lookup_cb lcb;
    fleet_claim_cb ccb;
    void *ud;
};

struct req {
    struct req *next, *prev;
    struct fleet *f;
    enum req_kind kind;
    uint32_t id;
    char name[NAME_MAX_LEN + 1];
    bool owner, lost, finished;
    uint64_t ts;
    struct link **links;
    uint8_t *ans;
    unsigned n;
    struct link *found;
    struct fleet_wait *waiters;
    uint64_t start_us;
    int result;
    lws_sorted_usec_list_t deadline, deliver;
};

struct cache_ent {
    char name[NAME_MAX_LEN + 1];
    struct link *l;
    uint64_t until;
};

struct fleet {
    struct edge *e;
    struct req *reqs;
    uint32_t next_id;
    struct cache_ent cache[CACHE_SLOTS];
};

struct bridge;
struct bside {
    struct raw_obj obj; /* RAW_PEER: tells the mux glue this is not a visitor */
    struct bridge *b;
    mux_stream *st;
    struct bside *other;
    bool fin_fwd;
};
struct bridge {
    struct bside p, t; /* p: the peer link's stream, t: the tunnel session's stream */
};

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static unsigned cache_slot(const char *name)
{
    uint32_t h = 2166136261u;
    for (; *name; name++)
        h = (h ^ (uint8_t)*name) * 16777619u;
    return h % CACHE_SLOTS;
}

int fleet_new(struct edge *e)
{
    struct fleet *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->e = e;
    e->fl = f;
    return 0;
}

static void req_free(struct req *r)
{
    struct fleet *f = r->f;
    lws_sul_cancel(&r->deadline);
    lws_sul_cancel(&r->deliver);
    if (r->prev)
        r->prev->next = r->next;
    else
        f->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    while (r->waiters) {
        struct fleet_wait *w = r->waiters;
        r->waiters = w->next;
        free(w);
    }
    free(r->links);
    free(r->ans);
    free(r);
}

void fleet_quiesce(struct edge *e)
{
    if (!e->fl)
        return;
    for (struct req *r = e->fl->reqs; r; r = r->next) {
        lws_sul_cancel(&r->deadline);
        lws_sul_cancel(&r->deliver);
        r->finished = true;
    }
}

void fleet_free(struct edge *e)
{
    struct fleet *f = e->fl;
    if (!f)
        return;
    while (f->reqs)
        req_free(f->reqs);
    free(f);
    e->fl = NULL;
}

void fleet_forget(struct edge *e, const char *name)
{
    if (!e->fl)
        return;
    struct cache_ent *c = &e->fl->cache[cache_slot(name)];
    if (strcmp(c->name, name) == 0)
        c->l = NULL;
}

static void record_latency(struct edge *e, uint64_t us)
{
    unsigned i = 0;
    while (i < FLEET_LAT_BUCKETS - 1 && us > fleet_lat_bounds_us[i])
        i++;
    e->fleet.lat_buckets[i]++;
    e->fleet.lat_sum_us += us;
}

static void deliver_cb(lws_sorted_usec_list_t *sul)
{
    struct req *r = lws_container_of(sul, struct req, deliver);
    struct fleet_wait *w = r->waiters;
    r->waiters = NULL;
    while (w) {
        struct fleet_wait *next = w->next;
        if (r->kind == REQ_LOOKUP && w->lcb)
            w->lcb(w->ud, (enum fleet_result)r->result, r->found);
        else if (r->kind == REQ_CLAIM && w->ccb)
            w->ccb(w->ud, r->result);
        free(w);
        w = next;
    }
    req_free(r);
}

/* Decide the request and deliver on the next loop turn. */
static void finish(struct req *r, int result)
{
    struct edge *e = r->f->e;
    if (r->finished)
        return;
    r->finished = true;
    r->result = result;
    lws_sul_cancel(&r->deadline);
    uint64_t us = now_us() - r->start_us;
    if (r->kind == REQ_LOOKUP) {
        record_latency(e, us);
        switch (result) {
        case FLEET_FOUND: {
            e->fleet.lookup_found++;
            struct cache_ent *c = &r->f->cache[cache_slot(r->name)];
            snprintf(c->name, sizeof c->name, "%s", r->name);
            c->l = r->found;
            c->until = now_us() / 1000 + CACHE_TTL_MS;
            break;
        }
        case FLEET_UNANSWERED:
            e->fleet.lookup_unanswered++;
            break;
        default:
            e->fleet.lookup_not_found++;
            if (e->peers)
                peers_refresh(e->peers); /* maybe an edge we do not know yet has it */
            break;
        }
        log_debug("fleet: lookup %s: %s in %llu us", r->name,
                  result == FLEET_FOUND        ? peerlink_instance(r->found)
                  : result == FLEET_UNANSWERED ? "unanswered"
                                               : "nobody",
                  (unsigned long long)us);
    } else {
        if (result == 0)
            e->fleet.claims_granted++;
        else if (result == -EADDRINUSE)
            e->fleet.claims_refused++;
        else if (result == -EAGAIN)
            e->fleet.claims_unanswered++;
        log_debug("fleet: claim %s: %s in %llu us", r->name,
                  result == 0         ? "granted"
                  : result == -EAGAIN ? "unanswered"
                                      : "refused",
                  (unsigned long long)us);
    }
    lws_sul_schedule(e->ctx, 0, &r->deliver, deliver_cb, 1);
}

/* Re-evaluate after an answer. */
static void evaluate(struct req *r)
{
    unsigned pending = 0;
    bool reserved = false, no = false;
    for (unsigned i = 0; i < r->n; i++) {
        switch (r->ans[i]) {
        case A_UNSENT:
        case A_SENT:
            pending++;
            break;
        case A_YES:
            if (r->kind == REQ_LOOKUP) {
                r->found = r->links[i];
                finish(r, FLEET_FOUND);
                return;
            }
            break;
        case A_RESERVED:
            reserved = true;
            break;
        case A_NO:
            no = true;
            break;
        case A_ABSENT:
            break;
        }
    }
    if (r->kind == REQ_CLAIM && (no || r->lost)) {
        finish(r, -EADDRINUSE);
        return;
    }
    if (pending)
        return;
    if (r->kind == REQ_LOOKUP)
        finish(r, reserved ? FLEET_RESERVED : FLEET_NOT_FOUND);
    else
        finish(r, 0);
}

static void deadline_cb(lws_sorted_usec_list_t *sul)
{
    struct req *r = lws_container_of(sul, struct req, deadline);
    if (r->kind == REQ_LOOKUP)
        finish(r, FLEET_UNANSWERED);
    else if (r->lost)
        finish(r, -EADDRINUSE);
    else
        finish(r, r->owner ? 0 : -EAGAIN);
}

static int send_req(struct req *r, unsigned i)
{
    struct peermsg m;
    memset(&m, 0, sizeof m);
    m.type = r->kind == REQ_LOOKUP ? PEERMSG_LOOKUP : PEERMSG_CLAIM;
    m.id = r->id;
    snprintf(m.name, sizeof m.name, "%s", r->name);
    if (r->kind == REQ_CLAIM) {
        m.owner = r->owner;
        m.ts = r->ts;
        snprintf(m.instance, sizeof m.instance, "%s", r->f->e->cfg->instance_id);
    }
    int rc = peerlink_send(r->links[i], &m);
    if (rc == 0) {
        r->ans[i] = A_SENT;
        r->f->e->fleet.peers_asked++;
    }
    return rc;
}

static struct req *req_new(struct edge *e, enum req_kind kind, const char *name)
{
    struct fleet *f = e->fl;
    struct req *r = calloc(1, sizeof *r);
    unsigned n = peerlink_count(e);
    if (!r)
        return NULL;
    r->links = calloc(n ? n : 1, sizeof *r->links);
    r->ans = calloc(n ? n : 1, 1);
    if (!r->links || !r->ans) {
        free(r->links);
        free(r->ans);
        free(r);
        return NULL;
    }
    r->f = f;
    r->kind = kind;
    r->id = ++f->next_id;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->start_us = now_us();
    r->n = n;
    r->next = f->reqs;
    if (f->reqs)
        f->reqs->prev = r;
    f->reqs = r;
    return r;
}

static void req_start(struct req *r, unsigned deadline_ms)
{
    struct edge *e = r->f->e;
    lws_sul_schedule(e->ctx, 0, &r->deadline, deadline_cb, (lws_usec_t)deadline_ms * 1000);
    if (e->peers && !peers_ready(e->peers)) {
        /* DNS has not answered yet: the fleet is unknown, so nothing is granted */
        finish(r, r->kind == REQ_LOOKUP ? FLEET_UNANSWERED : -EAGAIN);
        return;
    }
    for (unsigned i = 0; i < r->n; i++)
        r->links[i] = peerlink_get(e, i);
    for (unsigned i = 0; i < r->n && !r->finished; i++) {
        struct link *l = r->links[i];
        if (!l || r->ans[i] != A_UNSENT)
            continue;
        enum link_state st = peerlink_state(l);
        if (st == LINK_SELF)
            r->ans[i] = A_ABSENT;
        else if (st == LINK_UP)
            send_req(r, i);
        else
            peerlink_kick(l); /* answers come as link up (then sent) or refused */
    }
    if (!r->finished)
        evaluate(r);
}

static struct fleet_wait *add_waiter(struct req *r, fleet_lookup_cb lcb, fleet_claim_cb ccb,
                                     void *ud)
{
    struct fleet_wait *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->req = r;
    w->lcb = lcb;
    w->ccb = ccb;
    w->ud = ud;
    w->next = r->waiters;
    r->waiters = w;
    return w;
}

struct fleet_wait *fleet_lookup(struct edge *e, const char *name, fleet_lookup_cb cb, void *ud)
{
    struct fleet *f = e->fl;
    e->fleet.lookups++;
    struct cache_ent *c = &f->cache[cache_slot(name)];
    bool cached = c->l && strcmp(c->name, name) == 0 && c->until > now_us() / 1000 &&
                  peerlink_state(c->l) == LINK_UP;
    for (struct req *r = f->reqs; r && !cached; r = r->next)
        if (r->kind == REQ_LOOKUP && !r->finished && strcmp(r->name, name) == 0)
            return add_waiter(r, cb, NULL, ud);
    struct req *r = req_new(e, REQ_LOOKUP, name);
    if (!r)
        return NULL;
    struct fleet_wait *w = add_waiter(r, cb, NULL, ud);
    if (!w) {
        req_free(r);
        return NULL;
    }
    if (cached) {
        e->fleet.lookup_cache_hits++;
        r->found = c->l;
        r->finished = true;
        r->result = FLEET_FOUND;
        lws_sul_schedule(e->ctx, 0, &r->deliver, deliver_cb, 1);
        return w;
    }
    req_start(r, LOOKUP_DEADLINE_MS);
    return w;
}

struct fleet_wait *fleet_claim(struct edge *e, const char *name, bool owner, uint64_t ts_ms,
                               fleet_claim_cb cb, void *ud)
{
    struct req *r = req_new(e, REQ_CLAIM, name);
    if (!r)
        return NULL;
    r->owner = owner;
    r->ts = ts_ms;
    struct fleet_wait *w = add_waiter(r, NULL, cb, ud);
    if (!w) {
        req_free(r);
        return NULL;
    }
    e->fleet.claims++;
    req_start(r, CLAIM_DEADLINE_MS);
    return w;
}

void fleet_cancel(struct fleet_wait *w)
{
    struct req *r = w->req;
    for (struct fleet_wait **pp = &r->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            free(w);
            break;
        }
    }
    if (!r->waiters && !r->finished) {
        /* nobody waits: end it (delivers to nobody); an abandoned claim stops
         * competing with other edges' claims at once */
        r->lost = true;
        finish(r, r->kind == REQ_LOOKUP ? FLEET_UNANSWERED : -EADDRINUSE);
    }
}

/* --- link events --- */

void fleet_link_up(struct edge *e, struct link *l, bool outbound)
{
    if (!outbound || !e->fl)
        return;
    for (struct req *r = e->fl->reqs; r; r = r->next)
        for (unsigned i = 0; i < r->n; i++)
            if (r->links[i] == l && r->ans[i] == A_UNSENT && !r->finished)
                send_req(r, i);
}

void fleet_link_refused(struct edge *e, struct link *l)
{
    if (!e->fl)
        return;
    for (struct req *r = e->fl->reqs; r; r = r->next) {
        if (r->finished)
            continue;
        bool changed = false;
        for (unsigned i = 0; i < r->n; i++)
            if (r->links[i] == l && r->ans[i] == A_UNSENT) {
                r->ans[i] = A_ABSENT;
                changed = true;
            }
        if (changed)
            evaluate(r);
    }
}

void fleet_link_gone(struct edge *e, struct link *l)
{
    if (!e->fl)
        return;
    for (unsigned i = 0; i < CACHE_SLOTS; i++)
        if (e->fl->cache[i].l == l)
            e->fl->cache[i].l = NULL;
    for (struct req *r = e->fl->reqs; r; r = r->next) {
        if (r->found == l)
            r->found = NULL; /* delivered as FOUND with no link: the visitor answers 502 */
        for (unsigned i = 0; i < r->n; i++)
            if (r->links[i] == l) {
                r->links[i] = NULL;
                if (r->ans[i] == A_UNSENT || r->ans[i] == A_SENT)
                    r->ans[i] = A_ABSENT; /* it left the fleet */
            }
        if (!r->finished)
            evaluate(r);
    }
}

void fleet_link_down(struct edge *e, struct link *l, bool outbound)
{
    if (!outbound || !e->fl)
        return;
    for (unsigned i = 0; i < CACHE_SLOTS; i++)
        if (e->fl->cache[i].l == l)
            e->fl->cache[i].l = NULL;
    for (struct req *r = e->fl->reqs; r; r = r->next) {
        for (unsigned i = 0; i < r->n; i++) {
            if (r->links[i] != l)
                continue;
            if (r->found == l && !r->finished)
                r->found = NULL;
            if (r->ans[i] == A_SENT)
                r->ans[i] = A_UNSENT; /* lost with the link: resent if it returns in time */
        }
    }
}

/* --- answering the peers --- */

static struct req *pending_claim(struct fleet *f, const char *name)
{
    for (struct req *r = f->reqs; r; r = r->next)
        if (r->kind == REQ_CLAIM && !r->finished && strcmp(r->name, name) == 0)
            return r;
    return NULL;
}

static bool answer_claim(struct edge *e, const char *name, bool owner, uint64_t ts,
                         const char *inst)
{
    uint64_t now = edge_now_ms();
    struct req *mine = pending_claim(e->fl, name);
    struct session *s = registry_find(e->reg, name);
    for (struct req *r = e->fl->reqs; r; r = r->next)
        if (r->kind == REQ_CLAIM && r->finished && r->result != 0 && strcmp(r->name, name) == 0)
            return true; /* our claim already failed: its hold is going away */
    if (owner) {
        if (mine && mine->owner) {
            /* two owner claims crossing (one client on two edges): earlier wins */
            const char *me = e->cfg->instance_id;
            if (!(ts < mine->ts || (ts == mine->ts && strcmp(inst, me) < 0)))
                return false;
        }
        if (mine)
            mine->lost = true; /* the owner's claim beats ours */
        else if (s)
            session_displace(s, "its owner reconnected to another edge");
        else if (registry_taken(e->reg, name, now))
            registry_release(e->reg, name, NULL, now);
        if (mine)
            evaluate(mine);
        return true;
    }
    if (mine) {
        const char *me = e->cfg->instance_id;
        bool theirs_first = ts < mine->ts || (ts == mine->ts && strcmp(inst, me) < 0);
        if (mine->owner || !theirs_first)
            return false;
        mine->lost = true;
        evaluate(mine);
        return true;
    }
    return !s && !registry_taken(e->reg, name, now);
}

static void reply(struct link *l, const struct peermsg *m)
{
    peerlink_send(l, m);
}

static void answer(struct edge *e, struct link *l, const struct peermsg *m)
{
    struct peermsg out;
    memset(&out, 0, sizeof out);
    out.id = m->id;
    if (m->type == PEERMSG_LOOKUP) {
        struct session *s = registry_find(e->reg, m->name);
        out.type = PEERMSG_LOOKUP_REPLY;
        out.have = s && session_is_active(s);
        out.reserved = !out.have && registry_taken(e->reg, m->name, edge_now_ms());
        reply(l, &out);
        return;
    }
    out.type = PEERMSG_CLAIM_REPLY;
    out.ok = answer_claim(e, m->name, m->owner, m->ts, m->instance);
    log_debug("fleet: claim of %s by %s: %s", m->name, m->instance, out.ok ? "yes" : "no");
    reply(l, &out);
}

static void take_reply(struct edge *e, struct link *l, const struct peermsg *m)
{
    uint32_t id = (uint32_t)m->id;
    for (struct req *r = e->fl->reqs; r; r = r->next) {
        if (r->id != id || r->finished)
            continue;
        for (unsigned i = 0; i < r->n; i++) {
            if (r->links[i] != l)
                continue;
            if (m->type == PEERMSG_LOOKUP_REPLY)
                r->ans[i] = m->have ? A_YES : m->reserved ? A_RESERVED : A_NO;
            else
                r->ans[i] = m->ok ? A_YES : A_NO;
        }
        evaluate(r);
        return;
    }
}

void fleet_ctl(struct edge *e, struct link *l, bool outbound, const struct peermsg *m)
{
    if (!e->fl)
        return;
    if (!outbound && (m->type == PEERMSG_LOOKUP || m->type == PEERMSG_CLAIM))
        answer(e, l, m);
    else if (outbound && (m->type == PEERMSG_LOOKUP_REPLY || m->type == PEERMSG_CLAIM_REPLY))
        take_reply(e, l, m);
    else
        log_debug("fleet: ignoring \"%s\" from %s", m->type_text, peerlink_addr(l));
}

/* --- bridged streams: peer link stream <-> tunnel session stream --- */

static void bridge_end(struct bridge *b)
{
    free(b);
}

static void pump(struct bside *from)
{
    struct bside *to = from->other;
    if (!from->st || !to->st)
        return;
    buf *rx = mux_stream_rx(from->st), *tx = mux_stream_tx(to->st);
    size_t moved = buf_move(tx, rx, 0); /* whole chunks change hands, uncopied */
    if (moved) {
        mux_stream_rx_consumed(from->st, moved);
        mux_stream_tx_kick(to->st);
    }
    if (!from->fin_fwd && mux_stream_rx_done(from->st)) {
        from->fin_fwd = true;
        mux_stream_shutdown(to->st);
        mux_stream_tx_kick(to->st);
    }
    if (from->fin_fwd && to->fin_fwd) {
        /* both directions ended: queued bytes and FINs still go out */
        mux_stream_release(from->st, 0);
        mux_stream_release(to->st, 0);
        from->st = to->st = NULL;
        bridge_end(from->b);
    }
}

void fleet_bridge_readable(void *side)
{
    pump(side);
}

void fleet_bridge_writable(void *side)
{
    struct bside *s = side;
    pump(s->other);
}

void fleet_bridge_closed(void *side, uint16_t code)
{
    struct bside *s = side;
    s->st = NULL;
    if (s->other->st)
        mux_stream_release(s->other->st, code ? code : RST_CANCEL);
    s->other->st = NULL;
    bridge_end(s->b);
}

int fleet_stream_open(struct edge *e, mux_stream *st, const struct frame_open *o)
{
    if (o->hops != 1 || !o->name[0]) {
        e->fleet.loops_refused++;
        log_info("fleet: refused a stream forwarded %u times for \"%s\"", o->hops, o->name);
        return RST_LOOP;
    }
    struct session *s = registry_find(e->reg, o->name);
    if (!s || !session_is_active(s))
        return RST_NOT_HERE;
    struct bridge *b = calloc(1, sizeof *b);
    if (!b)
        return RST_INTERNAL;
    b->p.obj.kind = b->t.obj.kind = RAW_PEER;
    b->p.b = b->t.b = b;
    b->p.other = &b->t;
    b->t.other = &b->p;
    struct frame_open to = {.proto = o->proto};
    snprintf(to.remote, sizeof to.remote, "%s", o->remote);
    b->t.st = session_open_stream(s, &to, &b->t);
    if (!b->t.st) {
        int err = errno;
        free(b);
        return err == EBUSY ? RST_TOO_MANY : RST_REFUSED;
    }
    b->p.st = st;
    mux_stream_set_ud(st, &b->p);
    e->fleet.forwards++;
    log_debug("fleet: bridging a visitor of %s forwarded from a peer", o->name);
    return 0;
}
