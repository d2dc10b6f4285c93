/*
 * mux: many byte streams over one ordered message transport, with per-stream
 * credit windows (docs/protocol.md, "Streams" and "Flow control").
 *
 * Transport-independent: the owner feeds each received frame to mux_input()
 * and, whenever want_write was signalled and the transport can send, asks
 * mux_next_frame() for the next frame to send (one WebSocket message, or a
 * length-prefixed record on a TCP peer link).
 *
 * Per stream there are two bounded buffers:
 *   tx: bytes the application read from its socket, waiting to be framed;
 *       cap cfg.tx_buf; the app reads only while buf_room() > 0. DATA frames
 *       are cut from it only while the peer's credit allows.
 *   rx: bytes that arrived in DATA frames, waiting for the app to write them
 *       to its socket; cap cfg.window. A peer sending beyond the credit it was
 *       given gets RST(flow_control). Consumed bytes are returned to the peer
 *       as WINDOW credit (batched: once a quarter window has been consumed, or
 *       when the rx buffer becomes empty).
 * So memory per stream is bounded by tx_buf + window, a slow socket only stops
 * its own stream, and the shared transport is never paused.
 *
 * Stream ids: the side with cfg.odd_ids opens odd ids, the other even ids;
 * each side's ids strictly increase. Frames for an unknown id of a stream that
 * already ended are ignored; an OPEN that is out of order is a session error.
 *
 * Callbacks are never made from inside a mux_stream_*() call made by the
 * application (only from mux_input(), mux_next_frame() and mux_free()), so an
 * application may call mux_stream_*() from its own socket callbacks freely.
 * The only callback a mux_stream_*() call can cause is ops.want_write, which
 * must merely request a writable notification.
 */
#ifndef WARREN_MUX_H
#define WARREN_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "frame.h"

typedef struct mux mux;
typedef struct mux_stream mux_stream;

struct mux_config {
    uint32_t window;      /* initial credit per stream and direction; rx cap (e.g. 256 KiB) */
    size_t tx_buf;        /* tx buffer cap per stream (e.g. 64 KiB) */
    unsigned max_streams; /* concurrent streams, both directions together (e.g. 256) */
    bool odd_ids;         /* this side opens odd stream ids */
};

struct mux_ops {
    /* Arrange for mux_next_frame() to be called soon (request writable). */
    void (*want_write)(void *mux_ud);
    /* The peer opened stream s. Return 0 to accept (set user data with
     * mux_stream_set_ud before returning), or an RST code to refuse it (the
     * mux sends RST and forgets s). May be NULL: every OPEN is refused. */
    int (*on_open)(void *mux_ud, mux_stream *s, const struct frame_open *o);
    /* rx gained bytes, or the peer's FIN arrived (mux_stream_rx_fin). */
    void (*on_readable)(void *stream_ud, mux_stream *s);
    /* tx has room again after being full, or credit arrived: read the source again. */
    void (*on_writable)(void *stream_ud, mux_stream *s);
    /* The stream ended by the peer's RST (code > 0) or because the mux is being
     * freed (RST_SESSION_GONE). s is freed right after this returns: drop every
     * pointer to it. Not called for streams the app released. */
    void (*on_closed)(void *stream_ud, mux_stream *s, uint16_t code);
};

/* NULL on allocation failure. cfg and ops are copied. */
mux *mux_new(const struct mux_config *cfg, const struct mux_ops *ops, void *mux_ud);
/* Free the mux: on_closed(RST_SESSION_GONE) for every stream the app still
 * holds, then all memory. Accepts NULL. */
void mux_free(mux *m);

/* Handle one received frame (a whole WebSocket message / record). Returns 0,
 * or -EPROTO when the session must be closed (undecodable frame, OPEN with a
 * wrong or reused id, credit overflow). Stream-level faults (DATA beyond
 * credit, DATA after FIN) reset that stream only and return 0. */
int mux_input(mux *m, const uint8_t *p, size_t len);

/* Write the next frame to send into out (cap >= FRAME_MAX_LEN). Returns its
 * length, or 0 when there is nothing to send now. Order guarantees: a
 * stream's OPEN precedes its DATA, its FIN follows all its DATA; WINDOW and
 * RST may overtake. Streams with data take turns (round robin). */
size_t mux_next_frame(mux *m, uint8_t *out, size_t cap);
/* True if mux_next_frame() would return a frame now. */
bool mux_wants_write(const mux *m);

/* Open a stream from this side (queues OPEN). NULL with errno EBUSY when
 * max_streams are open, ENOMEM on allocation failure. */
mux_stream *mux_open(mux *m, const struct frame_open *o, void *stream_ud);

unsigned mux_stream_count(const mux *m);
/* Total bytes buffered in all streams' tx and rx buffers. */
size_t mux_buffered(const mux *m);

uint32_t mux_stream_id(const mux_stream *s);
void *mux_stream_ud(const mux_stream *s);
void mux_stream_set_ud(mux_stream *s, void *ud);

/* tx side (application -> peer). The app fills tx (buf_reserve/read/commit,
 * buf_read_fd or buf_append) then calls mux_stream_tx_kick(). */
buf *mux_stream_tx(mux_stream *s);
void mux_stream_tx_kick(mux_stream *s);
/* The app's source ended: send FIN after the tx buffer drained. Idempotent. */
void mux_stream_shutdown(mux_stream *s);

/* rx side (peer -> application). The app writes from rx (buf_write_fd or
 * peek/consume) and then reports how many bytes it consumed. */
buf *mux_stream_rx(mux_stream *s);
void mux_stream_rx_consumed(mux_stream *s, size_t n);
/* True once the peer's FIN arrived (more bytes may still be in rx). */
bool mux_stream_rx_fin(const mux_stream *s);
/* True once the peer's FIN arrived and rx is empty: shut the socket's write side. */
bool mux_stream_rx_done(const mux_stream *s);
/* True once our FIN was sent (tx flushed after mux_stream_shutdown). */
bool mux_stream_tx_done(const mux_stream *s);

/* The app is done with s; the handle is invalid after this call and no
 * callback names it again. code 0: graceful, valid only when the peer's FIN
 * arrived: remaining tx bytes and our FIN (if shutdown was called) are still
 * sent, then the stream is forgotten; if the peer's FIN has not arrived,
 * graceful release sends RST(cancel). code > 0: RST(code) is sent, buffered
 * bytes are dropped. */
void mux_stream_release(mux_stream *s, uint16_t code);

#endif
