/*
 * mux: many byte streams over one ordered message transport, with per-stream
 * credit windows. The contract is mux.h; the wire rules are docs/protocol.md.
 *
 * Data structures:
 *   - an open-addressing table (linear probing, backward-shift deletion) maps
 *     stream id -> stream; it is allocated with the first stream, grows at
 *     load 1/2 and is freed again when the last stream goes, so an idle mux
 *     costs only its struct;
 *   - the ready list (doubly linked, round robin) holds exactly the streams
 *     that have an OPEN, DATA within credit, or a FIN to send; a stream goes
 *     to the tail after each frame it emits;
 *   - the urgent list holds streams with a WINDOW increment or an RST to send;
 *     it is served before the ready list (WINDOW and RST may overtake);
 *   - the refusal ring holds (id, code) RSTs for peer OPENs that never got a
 *     stream (no on_open, too many streams, no memory). It is bounded by
 *     max_streams: a peer that keeps more refused OPENs unanswered than it
 *     may have streams open ignores the limit and the session fails.
 *
 * Invariants:
 *   - A stream occupies a slot (counts toward max_streams) from OPEN until it
 *     is forgotten; a stream that must still send RST ("zombie") or its
 *     remaining DATA and FIN (released gracefully) keeps its slot until then.
 *   - rx: rx_avail is the credit the peer may still use, including credit
 *     queued in wnd_pending but not yet sent; rx_avail + buf_len(rx) +
 *     (consumed but not yet returned) == window, so rx never exceeds window.
 *     A DATA frame larger than rx_avail - wnd_pending (credit actually sent)
 *     is a flow-control violation.
 *   - tx: DATA is cut only while tx_credit > 0 and never beyond it.
 *   - Callbacks are made only from mux_input(), mux_next_frame() and
 *     mux_free(). While any of those runs (depth > 0) no stream memory is
 *     freed: forgotten streams go to the gone list and are freed when the
 *     outermost call returns; mux_free() called from a callback is deferred
 *     the same way. After every callback the caller re-checks the stream's
 *     flags (it may have been released) and m->freeing.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mux.h"

#define MUX_CREDIT_MAX (UINT64_C(1) << 31) /* more tx credit than this: peer bug */
#define MUX_WINDOW_MAX (UINT32_C(1) << 30) /* largest WINDOW increment on the wire */
#define MUX_STREAMS_MAX (1u << 24)
#define MUX_TAB_MIN_BITS 3

struct mux_stream {
    mux *m;
    void *ud;
    buf *tx;
    buf *rx;
    mux_stream *rd_prev, *rd_next; /* ready list */
    mux_stream *ur_prev, *ur_next; /* urgent list (WINDOW / RST) */
    mux_stream *gone_next;         /* gone list, awaiting free */
    uint64_t tx_credit;            /* bytes we may still send */
    uint32_t id;
    uint32_t rx_avail;    /* credit the peer holds, incl. wnd_pending */
    uint32_t wnd_pending; /* credit to send in the next WINDOW */
    uint16_t rst_code;    /* zombie: the RST to send */
    bool in_ready;
    bool in_urgent;
    bool open_pending; /* local stream whose OPEN is not sent yet */
    bool fin_wanted;   /* mux_stream_shutdown() called */
    bool fin_sent;
    bool rx_fin;   /* peer's FIN arrived */
    bool released; /* the app no longer holds the handle */
    bool closing;  /* on_closed() for it is running */
    bool zombie;   /* only an RST remains to be sent */
    bool gone;     /* forgotten: not in the table, waiting to be freed */
    bool tx_full;  /* the app saw tx without room */
    struct frame_open open;
};

struct rst_entry {
    uint32_t id;
    uint16_t code;
};

struct mux {
    struct mux_config cfg;
    struct mux_ops ops;
    void *ud;
    mux_stream **tab;
    unsigned tab_bits; /* 0 when tab is NULL */
    unsigned nstreams; /* entries in tab */
    uint64_t next_id;  /* next local id; > UINT32_MAX when exhausted */
    uint32_t peer_max; /* highest id the peer opened */
    mux_stream *rd_head, *rd_tail;
    mux_stream *ur_head, *ur_tail;
    mux_stream *gone;
    struct rst_entry *rq;
    unsigned rq_cap, rq_head, rq_len;
    unsigned depth;     /* nesting of mux_input/mux_next_frame/mux_free */
    bool ww_signalled;  /* want_write called, mux_next_frame not yet */
    bool freeing;       /* mux_free() started */
    bool free_deferred; /* mux_free() called from a callback */
};

/* ---- id table ---------------------------------------------------------- */

static uint32_t tab_home(const mux *m, uint32_t id)
{
    return (uint32_t)(id * UINT32_C(0x9E3779B1)) >> (32 - m->tab_bits);
}

static uint32_t tab_mask(const mux *m)
{
    return (UINT32_C(1) << m->tab_bits) - 1;
}

static mux_stream *tab_find(const mux *m, uint32_t id)
{
    if (!m->tab)
        return NULL;
    uint32_t mask = tab_mask(m);
    for (uint32_t i = tab_home(m, id);; i = (i + 1) & mask) {
        mux_stream *s = m->tab[i];
        if (!s || s->id == id)
            return s;
    }
}

static void tab_place(mux *m, mux_stream *s)
{
    uint32_t mask = tab_mask(m), i = tab_home(m, s->id);
    while (m->tab[i])
        i = (i + 1) & mask;
    m->tab[i] = s;
}

static int tab_resize(mux *m, unsigned bits)
{
    mux_stream **old = m->tab;
    size_t oldn = old ? (size_t)1 << m->tab_bits : 0;
    if (bits == 0) {
        assert(m->nstreams == 0);
        free(old);
        m->tab = NULL;
        m->tab_bits = 0;
        return 0;
    }
    mux_stream **t = calloc((size_t)1 << bits, sizeof(*t));
    if (!t)
        return -ENOMEM;
    m->tab = t;
    m->tab_bits = bits;
    for (size_t i = 0; i < oldn; i++)
        if (old[i])
            tab_place(m, old[i]);
    free(old);
    return 0;
}

static int tab_insert(mux *m, mux_stream *s)
{
    size_t size = m->tab ? (size_t)1 << m->tab_bits : 0;
    if (((size_t)m->nstreams + 1) * 2 > size) {
        unsigned bits = m->tab ? m->tab_bits + 1 : MUX_TAB_MIN_BITS;
        if (tab_resize(m, bits) < 0)
            return -ENOMEM;
    }
    tab_place(m, s);
    m->nstreams++;
    return 0;
}

static void tab_remove(mux *m, mux_stream *s)
{
    uint32_t mask = tab_mask(m), i = tab_home(m, s->id);
    while (m->tab[i] != s)
        i = (i + 1) & mask;
    /* Backward shift: pull later entries of the probe run into the hole. */
    m->tab[i] = NULL;
    for (uint32_t j = (i + 1) & mask; m->tab[j]; j = (j + 1) & mask) {
        uint32_t home = tab_home(m, m->tab[j]->id);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->tab[i] = m->tab[j];
            m->tab[j] = NULL;
            i = j;
        }
    }
    m->nstreams--;
    if (m->nstreams == 0)
        tab_resize(m, 0);
    else if (m->tab_bits > MUX_TAB_MIN_BITS && (size_t)m->nstreams * 8 < (size_t)1 << m->tab_bits)
        tab_resize(m, m->tab_bits - 1); /* failure keeps the bigger table */
}

/* ---- lists --------------------------------------------------------------- */

static void ready_remove(mux_stream *s)
{
    mux *m = s->m;
    if (!s->in_ready)
        return;
    if (s->rd_prev)
        s->rd_prev->rd_next = s->rd_next;
    else
        m->rd_head = s->rd_next;
    if (s->rd_next)
        s->rd_next->rd_prev = s->rd_prev;
    else
        m->rd_tail = s->rd_prev;
    s->rd_prev = s->rd_next = NULL;
    s->in_ready = false;
}

static void ready_append(mux_stream *s)
{
    mux *m = s->m;
    assert(!s->in_ready);
    s->rd_prev = m->rd_tail;
    s->rd_next = NULL;
    if (m->rd_tail)
        m->rd_tail->rd_next = s;
    else
        m->rd_head = s;
    m->rd_tail = s;
    s->in_ready = true;
}

static void urgent_remove(mux_stream *s)
{
    mux *m = s->m;
    if (!s->in_urgent)
        return;
    if (s->ur_prev)
        s->ur_prev->ur_next = s->ur_next;
    else
        m->ur_head = s->ur_next;
    if (s->ur_next)
        s->ur_next->ur_prev = s->ur_prev;
    else
        m->ur_tail = s->ur_prev;
    s->ur_prev = s->ur_next = NULL;
    s->in_urgent = false;
}

static void urgent_append(mux_stream *s)
{
    mux *m = s->m;
    if (s->in_urgent)
        return;
    s->ur_prev = m->ur_tail;
    s->ur_next = NULL;
    if (m->ur_tail)
        m->ur_tail->ur_next = s;
    else
        m->ur_head = s;
    m->ur_tail = s;
    s->in_urgent = true;
}

/* ---- helpers ------------------------------------------------------------- */

static void signal_write(mux *m)
{
    if (m->freeing || m->ww_signalled)
        return;
    m->ww_signalled = true;
    if (m->ops.want_write)
        m->ops.want_write(m->ud);
}

static bool stream_ready(const mux_stream *s)
{
    if (s->zombie || s->gone)
        return false;
    if (s->open_pending)
        return true;
    if (s->fin_sent)
        return false;
    if (!buf_empty(s->tx))
        return s->tx_credit > 0;
    return s->fin_wanted;
}

/* Put s on the ready list iff it has something to send. */
static void stream_update(mux_stream *s)
{
    if (stream_ready(s)) {
        if (!s->in_ready) {
            ready_append(s);
            signal_write(s->m);
        }
    } else {
        ready_remove(s);
    }
}

static void stream_free(mux_stream *s)
{
    buf_free(s->tx);
    buf_free(s->rx);
    free(s);
}

static mux_stream *stream_new(mux *m, uint32_t id)
{
    mux_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->m = m;
    s->id = id;
    s->tx_credit = m->cfg.window;
    s->rx_avail = m->cfg.window;
    s->tx = buf_new(m->cfg.tx_buf, 0);
    s->rx = buf_new(m->cfg.window, 0);
    if (!s->tx || !s->rx || tab_insert(m, s) < 0) {
        stream_free(s);
        return NULL;
    }
    return s;
}

/* Forget s: out of the table and all lists; freed now or, inside a mux
 * call, when the outermost one returns. */
static void stream_destroy(mux_stream *s)
{
    mux *m = s->m;
    assert(!s->gone);
    tab_remove(m, s);
    ready_remove(s);
    urgent_remove(s);
    s->gone = true;
    if (m->depth > 0) {
        s->gone_next = m->gone;
        m->gone = s;
    } else {
        stream_free(s);
    }
}

/* End s abruptly from our side: RST(code) unless the peer never heard of it. */
static void stream_reset(mux_stream *s, uint16_t code)
{
    if (s->open_pending) {
        stream_destroy(s);
        return;
    }
    s->zombie = true;
    s->rst_code = code;
    s->wnd_pending = 0;
    ready_remove(s);
    buf_clear(s->tx);
    buf_clear(s->rx);
    urgent_append(s);
    signal_write(s->m);
}

/* The app's last callback for s; afterwards the app holds no handle. */
static void stream_closed_cb(mux_stream *s, uint16_t code)
{
    mux *m = s->m;
    s->closing = true;
    if (m->ops.on_closed)
        m->ops.on_closed(s->ud, s, code);
    s->closing = false;
    s->released = true;
}

/* The peer broke a stream-level rule: tell the app, send RST(code). */
static void stream_fault(mux_stream *s, uint16_t code)
{
    if (!s->released)
        stream_closed_cb(s, code);
    if (!s->m->freeing)
        stream_reset(s, code);
}

static void enter(mux *m)
{
    m->depth++;
}

static void mux_destroy(mux *m);

/* Leave a mux call; the outermost one frees forgotten streams, or the whole
 * mux if mux_free() was called meanwhile. Returns false if m is gone. */
static bool leave(mux *m)
{
    if (--m->depth > 0)
        return true;
    if (m->free_deferred) {
        mux_destroy(m);
        return false;
    }
    while (m->gone) {
        mux_stream *s = m->gone;
        m->gone = s->gone_next;
        stream_free(s);
    }
    return true;
}

/* ---- refusal ring --------------------------------------------------------- */

static int rq_push(mux *m, uint32_t id, uint16_t code)
{
    if (m->rq_len == m->rq_cap) {
        if (m->rq_cap >= m->cfg.max_streams)
            return -EPROTO;
        unsigned ncap = m->rq_cap ? m->rq_cap * 2 : 4;
        if (ncap > m->cfg.max_streams)
            ncap = m->cfg.max_streams;
        struct rst_entry *n = malloc(ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        for (unsigned i = 0; i < m->rq_len; i++)
            n[i] = m->rq[(m->rq_head + i) % m->rq_cap];
        free(m->rq);
        m->rq = n;
        m->rq_cap = ncap;
        m->rq_head = 0;
    }
    struct rst_entry *e = &m->rq[(m->rq_head + m->rq_len) % m->rq_cap];
    e->id = id;
    e->code = code;
    m->rq_len++;
    signal_write(m);
    return 0;
}

static void rq_drop_if_empty(mux *m)
{
    if (m->rq_len == 0 && m->rq) {
        free(m->rq);
        m->rq = NULL;
        m->rq_cap = m->rq_head = 0;
    }
}

/* The peer reset id itself: our refusal of it need not be sent. */
static void rq_forget(mux *m, uint32_t id)
{
    unsigned w = 0;
    for (unsigned r = 0; r < m->rq_len; r++) {
        struct rst_entry e = m->rq[(m->rq_head + r) % m->rq_cap];
        if (e.id != id)
            m->rq[(m->rq_head + w++) % m->rq_cap] = e;
    }
    m->rq_len = w;
    rq_drop_if_empty(m);
}

/* ---- construction -------------------------------------------------------- */

mux *mux_new(const struct mux_config *cfg, const struct mux_ops *ops, void *mux_ud)
{
    if (cfg->window == 0 || cfg->window > MUX_WINDOW_MAX || cfg->tx_buf == 0 ||
        cfg->max_streams == 0 || cfg->max_streams > MUX_STREAMS_MAX) {
        errno = EINVAL;
        return NULL;
    }
    mux *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cfg = *cfg;
    m->ops = *ops;
    m->ud = mux_ud;
    m->next_id = cfg->odd_ids ? 1 : 2;
    return m;
}

static void mux_destroy(mux *m)
{
    size_t n = m->tab ? (size_t)1 << m->tab_bits : 0;
    for (size_t i = 0; i < n; i++)
        if (m->tab[i])
            stream_free(m->tab[i]);
    while (m->gone) {
        mux_stream *s = m->gone;
        m->gone = s->gone_next;
        stream_free(s);
    }
    free(m->tab);
    free(m->rq);
    free(m);
}

void mux_free(mux *m)
{
    if (!m || m->freeing)
        return;
    m->freeing = true;
    /* No stream leaves the table while freeing (release only marks), so the
     * table can be walked while callbacks run. */
    enter(m);
    size_t n = m->tab ? (size_t)1 << m->tab_bits : 0;
    for (size_t i = 0; i < n; i++) {
        mux_stream *s = m->tab[i];
        if (s && !s->released && !s->closing && !s->zombie)
            stream_closed_cb(s, RST_SESSION_GONE);
    }
    m->depth--;
    if (m->depth > 0)
        m->free_deferred = true;
    else
        mux_destroy(m);
}

/* ---- input ----------------------------------------------------------------- */

static bool is_peer_id(const mux *m, uint32_t id)
{
    return ((id & 1) != 0) != m->cfg.odd_ids;
}

/* An id that was opened once (by either side) and is no longer in the table. */
static bool id_is_past(const mux *m, uint32_t id)
{
    if (is_peer_id(m, id))
        return id <= m->peer_max;
    return id < m->next_id;
}

static int input_open(mux *m, const struct frame *f)
{
    struct frame_open o;
    if (!is_peer_id(m, f->stream) || f->stream <= m->peer_max)
        return -EPROTO;
    if (frame_open_parse(f->payload, f->len, &o) < 0)
        return -EPROTO;
    m->peer_max = f->stream;
    if (!m->ops.on_open)
        return rq_push(m, f->stream, RST_REFUSED);
    if (m->nstreams >= m->cfg.max_streams)
        return rq_push(m, f->stream, RST_TOO_MANY);
    mux_stream *s = stream_new(m, f->stream);
    if (!s)
        return rq_push(m, f->stream, RST_INTERNAL);
    int code = m->ops.on_open(m->ud, s, &o);
    if (!s->released && !m->freeing && code != 0) {
        s->released = true;
        stream_reset(s, code > 0 && code <= UINT16_MAX ? (uint16_t)code : RST_INTERNAL);
    }
    return 0;
}

static void input_data(mux_stream *s, const struct frame *f)
{
    mux *m = s->m;
    if (s->zombie)
        return;
    if (s->rx_fin) {
        stream_fault(s, RST_PROTOCOL);
        return;
    }
    if (f->len > s->rx_avail - s->wnd_pending) {
        stream_fault(s, RST_FLOW_CONTROL);
        return;
    }
    if (buf_append(s->rx, f->payload, f->len) < 0) {
        stream_fault(s, RST_INTERNAL);
        return;
    }
    s->rx_avail -= (uint32_t)f->len;
    if (!s->released && m->ops.on_readable)
        m->ops.on_readable(s->ud, s);
}

static void input_fin(mux_stream *s)
{
    mux *m = s->m;
    if (s->zombie)
        return;
    if (s->rx_fin) {
        stream_fault(s, RST_PROTOCOL);
        return;
    }
    s->rx_fin = true;
    /* The peer sends no more DATA: credit it has not been sent is moot. */
    s->wnd_pending = 0;
    urgent_remove(s);
    if (!s->released && m->ops.on_readable)
        m->ops.on_readable(s->ud, s);
}

static int input_rst(mux_stream *s, const struct frame *f)
{
    uint16_t code;
    if (frame_rst_parse(f->payload, f->len, &code) < 0)
        return -EPROTO;
    if (code == 0)
        code = RST_PROTOCOL;
    if (!s->released && !s->zombie)
        stream_closed_cb(s, code);
    if (!s->m->freeing && !s->gone)
        stream_destroy(s);
    return 0;
}

static int input_window(mux_stream *s, const struct frame *f)
{
    mux *m = s->m;
    uint32_t incr;
    if (frame_window_parse(f->payload, f->len, &incr) < 0)
        return -EPROTO;
    if (s->zombie)
        return 0;
    if (s->tx_credit + incr > MUX_CREDIT_MAX)
        return -EPROTO;
    s->tx_credit += incr;
    if (!s->released && !s->fin_sent && !buf_empty(s->tx) && m->ops.on_writable) {
        m->ops.on_writable(s->ud, s);
        if (m->freeing)
            return 0;
    }
    stream_update(s);
    return 0;
}

int mux_input(mux *m, const uint8_t *p, size_t len)
{
    struct frame f;
    int rc = 0;
    if (m->freeing)
        return -EPROTO;
    if (frame_decode(p, len, &f) < 0)
        return -EPROTO;
    enter(m);
    if (f.type == FRAME_OPEN) {
        rc = input_open(m, &f);
        goto out;
    }
    mux_stream *s = tab_find(m, f.stream);
    if (!s || s->open_pending) {
        /* A frame for a stream that ended is expected (it crossed our RST);
         * one for an id nobody opened is a protocol violation. */
        if (!s && id_is_past(m, f.stream)) {
            if (f.type == FRAME_RST)
                rq_forget(m, f.stream);
        } else {
            rc = -EPROTO;
        }
        goto out;
    }
    switch (f.type) {
    case FRAME_DATA:
        input_data(s, &f);
        break;
    case FRAME_FIN:
        input_fin(s);
        break;
    case FRAME_RST:
        rc = input_rst(s, &f);
        break;
    case FRAME_WINDOW:
        rc = input_window(s, &f);
        break;
    default:
        rc = -EPROTO;
        break;
    }
out:
    leave(m);
    return rc;
}

/* ---- output ---------------------------------------------------------------- */

static size_t emit_refusal(mux *m, uint8_t *out, size_t cap)
{
    struct rst_entry e = m->rq[m->rq_head];
    m->rq_head = (m->rq_head + 1) % m->rq_cap;
    m->rq_len--;
    rq_drop_if_empty(m);
    return frame_encode_rst(out, cap, e.id, e.code, NULL);
}

static size_t emit_urgent(mux_stream *s, uint8_t *out, size_t cap)
{
    urgent_remove(s);
    if (s->zombie) {
        size_t n = frame_encode_rst(out, cap, s->id, s->rst_code, NULL);
        stream_destroy(s);
        return n;
    }
    uint32_t incr = s->wnd_pending;
    s->wnd_pending = 0;
    if (incr == 0)
        return 0;
    return frame_encode_window(out, cap, s->id, incr);
}

static size_t emit_data(mux_stream *s, uint8_t *out, size_t cap)
{
    mux *m = s->m;
    size_t n = buf_len(s->tx);
    if (n > FRAME_MAX_PAYLOAD)
        n = FRAME_MAX_PAYLOAD;
    if (n > s->tx_credit)
        n = (size_t)s->tx_credit;
    if (n > cap - FRAME_HDR_LEN)
        n = cap - FRAME_HDR_LEN;
    bool was_full = s->tx_full || buf_room(s->tx) == 0;
    frame_put_header(out, FRAME_DATA, s->id);
    size_t got = buf_copyout(s->tx, out + FRAME_HDR_LEN, n);
    assert(got == n);
    buf_consume(s->tx, got);
    s->tx_credit -= got;
    if (was_full && buf_room(s->tx) > 0) {
        s->tx_full = false;
        if (!s->released && m->ops.on_writable)
            m->ops.on_writable(s->ud, s);
    }
    return FRAME_HDR_LEN + got;
}

/* One frame for s, in stream order: OPEN, DATA, FIN. */
static size_t emit_stream(mux_stream *s, uint8_t *out, size_t cap)
{
    if (s->open_pending) {
        s->open_pending = false;
        return frame_encode_open(out, cap, s->id, &s->open);
    }
    if (s->fin_sent)
        return 0;
    if (!buf_empty(s->tx)) {
        if (s->tx_credit == 0)
            return 0;
        return emit_data(s, out, cap);
    }
    if (!s->fin_wanted)
        return 0;
    s->fin_sent = true;
    size_t n = frame_encode_fin(out, cap, s->id);
    if (s->released)
        stream_destroy(s); /* graceful release completed */
    return n;
}

size_t mux_next_frame(mux *m, uint8_t *out, size_t cap)
{
    size_t n = 0;
    assert(cap >= FRAME_MAX_LEN);
    if (m->freeing || cap < FRAME_MAX_LEN)
        return 0;
    m->ww_signalled = true; /* the caller is writing now: no want_write meanwhile */
    enter(m);
    while (n == 0 && !m->freeing) {
        if (m->rq_len) {
            n = emit_refusal(m, out, cap);
        } else if (m->ur_head) {
            n = emit_urgent(m->ur_head, out, cap);
        } else if (m->rd_head) {
            mux_stream *s = m->rd_head;
            ready_remove(s);
            n = emit_stream(s, out, cap);
            if (n && !m->freeing)
                stream_update(s); /* to the tail if it has more */
        } else {
            break;
        }
    }
    bool more = !m->freeing && mux_wants_write(m);
    m->ww_signalled = false;
    if (more)
        signal_write(m);
    leave(m);
    return n;
}

bool mux_wants_write(const mux *m)
{
    return m->rq_len > 0 || m->ur_head != NULL || m->rd_head != NULL;
}

/* ---- streams ------------------------------------------------------------- */

mux_stream *mux_open(mux *m, const struct frame_open *o, void *stream_ud)
{
    uint8_t probe[FRAME_HDR_LEN + 2 + FRAME_ADDR_MAX + 1];
    if (m->freeing || m->nstreams >= m->cfg.max_streams) {
        errno = EBUSY;
        return NULL;
    }
    if (m->next_id > UINT32_MAX) {
        errno = ENOSPC;
        return NULL;
    }
    if (frame_encode_open(probe, sizeof(probe), 1, o) == 0) {
        errno = EINVAL;
        return NULL;
    }
    mux_stream *s = stream_new(m, (uint32_t)m->next_id);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    m->next_id += 2;
    s->ud = stream_ud;
    s->open = *o;
    s->open_pending = true;
    stream_update(s);
    return s;
}

unsigned mux_stream_count(const mux *m)
{
    return m->nstreams;
}

size_t mux_buffered(const mux *m)
{
    size_t n = m->tab ? (size_t)1 << m->tab_bits : 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        const mux_stream *s = m->tab[i];
        if (s)
            total += buf_len(s->tx) + buf_len(s->rx);
    }
    return total;
}

uint32_t mux_stream_id(const mux_stream *s)
{
    return s->id;
}

void *mux_stream_ud(const mux_stream *s)
{
    return s->ud;
}

void mux_stream_set_ud(mux_stream *s, void *ud)
{
    s->ud = ud;
}

buf *mux_stream_tx(mux_stream *s)
{
    return s->tx;
}

void mux_stream_tx_kick(mux_stream *s)
{
    if (s->released || s->zombie)
        return;
    if (buf_room(s->tx) == 0)
        s->tx_full = true;
    stream_update(s);
}

void mux_stream_shutdown(mux_stream *s)
{
    if (s->released || s->zombie || s->fin_wanted)
        return;
    s->fin_wanted = true;
    stream_update(s);
}

buf *mux_stream_rx(mux_stream *s)
{
    return s->rx;
}

void mux_stream_rx_consumed(mux_stream *s, size_t n)
{
    mux *m = s->m;
    (void)n; /* the buffer itself says how much is gone */
    if (s->released || s->zombie || s->rx_fin)
        return;
    uint64_t held = (uint64_t)s->rx_avail + buf_len(s->rx);
    if (held >= m->cfg.window)
        return;
    uint32_t unreturned = m->cfg.window - (uint32_t)held;
    /* A quarter of the window at a time: the sender keeps at least three
     * quarters in flight, and a bulk stream costs one WINDOW per 64 KiB
     * (with a 256 KiB window) instead of one per write that empties rx. */
    if (unreturned >= m->cfg.window / 4) {
        s->rx_avail += unreturned;
        s->wnd_pending += unreturned;
        urgent_append(s);
        signal_write(m);
    }
}

bool mux_stream_rx_fin(const mux_stream *s)
{
    return s->rx_fin;
}

bool mux_stream_rx_done(const mux_stream *s)
{
    return s->rx_fin && buf_empty(s->rx);
}

bool mux_stream_tx_done(const mux_stream *s)
{
    return s->fin_sent;
}

void mux_stream_release(mux_stream *s, uint16_t code)
{
    mux *m = s->m;
    if (s->released || s->closing || s->zombie)
        return;
    s->released = true;
    if (m->freeing)
        return;
    if (code == 0 && !s->rx_fin)
        code = RST_CANCEL;
    if (code != 0) {
        stream_reset(s, code);
        return;
    }
    /* Graceful: what is in tx still goes out, then our FIN (release implies
     * shutdown), then the stream is forgotten. Unread rx is dropped. */
    buf_clear(s->rx);
    s->wnd_pending = 0;
    urgent_remove(s);
    s->fin_wanted = true;
    if (s->fin_sent) {
        stream_destroy(s);
        return;
    }
    stream_update(s);
}
