/*
 * fuzz_mux: one mux driven by a hostile peer (the fuzzer's frames, raw or
 * structured) interleaved with application actions (open, produce, consume,
 * shutdown, release, also from inside callbacks). Aborts on a broken
 * invariant: an emitted frame that does not decode, DATA beyond the credit
 * the peer granted, a frame after our FIN/RST for a stream, a buffer over its
 * cap, a callback for a stream the app released.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mux.h"

#define HELD_MAX 16
#define IDS 512

struct app {
    mux *m;
    mux_stream *held[HELD_MAX];
    unsigned nheld;
    struct mux_config cfg;
    int verdict;
    int cb_action; /* 0 none, 1 release in on_readable, 2 free mux in on_readable */
    /* tap of what we send, per id */
    int64_t credit[IDS];
    bool fin[IDS], rst[IDS], known[IDS];
    bool dead;
};

static void drop_held(struct app *a, mux_stream *s)
{
    for (unsigned i = 0; i < a->nheld; i++)
        if (a->held[i] == s) {
            a->held[i] = a->held[--a->nheld];
            return;
        }
    abort(); /* callback for a stream the app does not hold */
}

static bool is_held(struct app *a, mux_stream *s)
{
    for (unsigned i = 0; i < a->nheld; i++)
        if (a->held[i] == s)
            return true;
    return false;
}

static void check_stream(struct app *a, mux_stream *s)
{
    if (buf_len(mux_stream_rx(s)) > a->cfg.window || buf_len(mux_stream_tx(s)) > a->cfg.tx_buf)
        abort();
}

static void want_write(void *ud)
{
    (void)ud;
}

static int on_open(void *ud, mux_stream *s, const struct frame_open *o)
{
    struct app *a = ud;
    if (a->verdict || a->nheld == HELD_MAX)
        return a->verdict ? a->verdict : RST_TOO_MANY;
    a->held[a->nheld++] = s;
    mux_stream_set_ud(s, a);
    uint32_t id = mux_stream_id(s);
    if (id < IDS) {
        a->known[id] = true;
        a->credit[id] = a->cfg.window;
    }
    return 0;
}

static void on_readable(void *ud, mux_stream *s)
{
    struct app *a = ud;
    if (!is_held(a, s))
        abort();
    check_stream(a, s);
    if (a->cb_action == 1) {
        drop_held(a, s);
        mux_stream_release(s, mux_stream_rx_fin(s) ? 0 : RST_CANCEL);
    } else if (a->cb_action == 2 && !a->dead) {
        a->dead = true;
        mux_free(a->m);
    }
}

static void on_writable(void *ud, mux_stream *s)
{
    struct app *a = ud;
    if (!is_held(a, s))
        abort();
}

static void on_closed(void *ud, mux_stream *s, uint16_t code)
{
    struct app *a = ud;
    if (code == 0)
        abort();
    drop_held(a, s);
}

static const struct mux_ops ops = {want_write, on_open, on_readable, on_writable, on_closed};

static void tap(struct app *a, const uint8_t *f, size_t n)
{
    struct frame fr;
    if (n > FRAME_MAX_LEN || frame_decode(f, n, &fr) < 0)
        abort();
    uint32_t id = fr.stream;
    if (id >= IDS)
        return;
    switch (fr.type) {
    case FRAME_OPEN:
        if (a->known[id] || (id & 1) != (a->cfg.odd_ids ? 1u : 0u))
            abort();
        a->known[id] = true;
        a->credit[id] = a->cfg.window;
        break;
    case FRAME_DATA:
        if (!a->known[id] || a->fin[id] || a->rst[id])
            abort();
        a->credit[id] -= (int64_t)fr.len;
        if (a->credit[id] < 0)
            abort();
        break;
    case FRAME_FIN:
        if (!a->known[id] || a->fin[id] || a->rst[id])
            abort();
        a->fin[id] = true;
        break;
    case FRAME_RST:
        if (a->rst[id])
            abort();
        a->rst[id] = true;
        break;
    case FRAME_WINDOW:
        if (!a->known[id] || a->rst[id])
            abort();
        break;
    }
}

static size_t put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

struct in {
    const uint8_t *p;
    size_t len;
};

static uint8_t get(struct in *in)
{
    if (!in->len)
        return 0;
    in->len--;
    return *in->p++;
}

static mux_stream *pick(struct app *a, uint8_t b)
{
    return a->nheld ? a->held[b % a->nheld] : NULL;
}

static int feed(struct app *a, const uint8_t *f, size_t n)
{
    struct frame fr;
    uint32_t incr;
    bool window_ok = frame_decode(f, n, &fr) == 0 && fr.type == FRAME_WINDOW && fr.stream < IDS &&
                     frame_window_parse(fr.payload, fr.len, &incr) == 0;
    int rc = mux_input(a->m, f, n);
    if (a->dead)
        return -1;
    if (rc != 0 && rc != -EPROTO && rc != -ENOMEM)
        abort();
    if (rc == 0 && window_ok)
        a->credit[fr.stream] += incr; /* may be for a closed stream: harmless */
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t f[FRAME_MAX_LEN + 64];
    static uint8_t pay[FRAME_MAX_PAYLOAD];
    struct in in = {data, size};
    struct app *a = calloc(1, sizeof(*a));
    uint8_t c0 = get(&in);
    a->cfg.window = 1 + (c0 & 3) * 3000;
    a->cfg.tx_buf = 1 + (c0 >> 2 & 3) * 700;
    a->cfg.max_streams = 1 + (get(&in) & 7);
    a->cfg.odd_ids = c0 & 0x80;
    a->m = mux_new(&a->cfg, &ops, a);
    if (!a->m)
        abort();
    uint32_t peer_base = a->cfg.odd_ids ? 2 : 1;

    while (in.len && !a->dead) {
        uint8_t op = get(&in), b = get(&in);
        mux_stream *s;
        size_t n;
        int rc = 0;
        switch (op % 12) {
        case 0: { /* raw frame */
            n = b;
            if (n > in.len)
                n = in.len;
            rc = feed(a, in.p, n);
            in.p += n;
            in.len -= n;
            break;
        }
        case 1: { /* structured peer frame on a small id space */
            uint8_t t = get(&in);
            uint32_t id = (uint32_t)(b % 24) + 1;
            f[0] = (uint8_t)(1 + t % 5);
            put_u32(f + 1, id);
            n = FRAME_HDR_LEN;
            switch (f[0]) {
            case FRAME_OPEN:
                f[n++] = FRAME_PROTO_HTTP;
                f[n++] = 3;
                memcpy(f + n, "a:1", 3);
                n += 3;
                break;
            case FRAME_DATA: {
                size_t l = 1 + (size_t)get(&in) * (get(&in) % 64 + 1);
                memset(f + n, 'x', l);
                n += l;
                break;
            }
            case FRAME_RST:
                f[n++] = 0;
                f[n++] = (uint8_t)(t >> 3);
                break;
            case FRAME_WINDOW:
                n += put_u32(f + n, 1 + (uint32_t)get(&in) * (1u << (get(&in) % 23)));
                break;
            }
            rc = feed(a, f, n);
            break;
        }
        case 2: /* one frame out */
            n = mux_next_frame(a->m, f, sizeof(f));
            if (n)
                tap(a, f, n);
            else if (mux_wants_write(a->m))
                abort();
            break;
        case 3: { /* open */
            struct frame_open o = {.proto = FRAME_PROTO_TCP};
            memcpy(o.remote, "1.2.3.4:5", 10);
            if (a->nheld < HELD_MAX && (s = mux_open(a->m, &o, a)) != NULL)
                a->held[a->nheld++] = s;
            break;
        }
        case 4: /* produce */
            if ((s = pick(a, b)) != NULL) {
                size_t l = (size_t)get(&in) * 8;
                if (l > buf_room(mux_stream_tx(s)))
                    l = buf_room(mux_stream_tx(s));
                memset(pay, 'y', l < sizeof(pay) ? l : sizeof(pay));
                if (l && buf_append(mux_stream_tx(s), pay, l < sizeof(pay) ? l : sizeof(pay)) != 0)
                    abort();
                mux_stream_tx_kick(s);
                check_stream(a, s);
            }
            break;
        case 5: /* consume */
            if ((s = pick(a, b)) != NULL) {
                size_t l = (size_t)get(&in) * 64;
                buf *rx = mux_stream_rx(s);
                if (l > buf_len(rx))
                    l = buf_len(rx);
                buf_consume(rx, l);
                mux_stream_rx_consumed(s, l);
            }
            break;
        case 6:
            if ((s = pick(a, b)) != NULL)
                mux_stream_shutdown(s);
            break;
        case 7:
            if ((s = pick(a, b)) != NULL) {
                uint8_t code = get(&in) % 10;
                drop_held(a, s);
                mux_stream_release(s, code);
            }
            break;
        case 8:
            a->verdict = b % 4 == 0 ? RST_REFUSED : 0;
            break;
        case 9:
            a->cb_action = b % 5 == 0 ? 2 : b % 2;
            break;
        case 10: /* drain */
            while ((n = mux_next_frame(a->m, f, sizeof(f))) > 0)
                tap(a, f, n);
            if (mux_wants_write(a->m))
                abort();
            break;
        case 11: { /* a valid OPEN for the next peer id */
            f[0] = FRAME_OPEN;
            put_u32(f + 1, peer_base);
            peer_base += 2 * (1 + b % 3);
            f[5] = FRAME_PROTO_HTTP;
            f[6] = 0;
            rc = feed(a, f, 7);
            break;
        }
        }
        if (rc < 0)
            break; /* the owner closes the session */
        for (unsigned i = 0; i < a->nheld && !a->dead; i++)
            check_stream(a, a->held[i]);
        if (!a->dead && mux_stream_count(a->m) > a->cfg.max_streams)
            abort();
    }
    if (!a->dead) {
        mux_free(a->m);
        if (a->nheld != 0)
            abort(); /* every held stream got on_closed */
    }
    free(a);
    return 0;
}
