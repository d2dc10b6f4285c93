/*
 * wsframe: WebSocket framing (RFC 6455 section 5) done by the application,
 * in bulk.
 *
 * Why: Debian's libwebsockets 4.1.6 masks client frames byte by byte and
 * parses every received byte on the client side in a per-byte state machine
 * (docs/benchmarks.md). Both ends of a tunnel therefore build their binary
 * messages themselves and hand several whole frames to one raw write
 * (wsframe_batch), and the CLI parses what the edge sends with wsparse,
 * which delivers unfragmented frames as pointers into the input, without a
 * copy.
 *
 * Invariants: a batch holds only whole frames; length fields use the minimal
 * encoding; client frames are masked with a fresh unpredictable key each
 * (keys come from a pool of libsodium random bytes refilled 1 KiB at a time).
 * The parser treats every byte as untrusted: reserved bits, unknown opcodes,
 * masking in the wrong direction, fragmented or oversized control frames,
 * non-minimal lengths, interleaving errors and messages above the configured
 * maximum are errors with the close code to send; it never needs a NUL and
 * allocates at most one reassembly buffer of the configured maximum, only
 * while a message is incomplete (unless told to keep it).
 */
#ifndef WARREN_WSFRAME_H
#define WARREN_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
    WS_CONT = 0x0,
    WS_TEXT = 0x1,
    WS_BINARY = 0x2,
    WS_CLOSE = 0x8,
    WS_PING = 0x9,
    WS_PONG = 0xa,
};

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009

/* Largest header: 2 + 8 (length) + 4 (mask). */
#define WS_HDR_MAX 14

/* Pool of mask keys. Zero-initialise before use. */
struct wsmask {
    uint8_t pool[1024];
    size_t used; /* bytes of pool consumed; refilled when exhausted */
    bool filled;
};

/* Write one frame header for a payload of len bytes into h (>= WS_HDR_MAX
 * bytes). When mask is not NULL the frame is masked with it (client to
 * server). Returns the header length. */
size_t wsframe_header(uint8_t *h, uint8_t opcode, uint64_t len, const uint8_t *mask);

/* XOR p[0..len) with the 4-byte key, the key's phase starting at 0. */
void wsframe_mask(uint8_t *p, size_t len, const uint8_t key[4]);

/* Produces the next payload into out (at most cap bytes); 0 = nothing more. */
typedef size_t (*wsframe_next_fn)(void *ud, uint8_t *out, size_t cap);

/*
 * Fill out[0..cap) with whole binary frames, one per payload that next()
 * produces, asking for payloads of at most max_payload (< 65536) bytes while
 * at least max_payload plus a header still fits. masks != NULL: client frames,
 * each masked with a fresh key. Returns the bytes written (0: nothing to send).
 */
size_t wsframe_batch(uint8_t *out, size_t cap, size_t max_payload, struct wsmask *masks,
                     wsframe_next_fn next, void *ud);

/* Build a single frame (text, close, ping, pong: payload <= cap - WS_HDR_MAX)
 * into out; returns its length. */
size_t wsframe_build(uint8_t *out, size_t cap, uint8_t opcode, const uint8_t *payload, size_t len,
                     struct wsmask *masks);

/* Incremental parser of a received byte stream. */
typedef struct wsparse wsparse;

/* One complete message (WS_TEXT, WS_BINARY) or control frame (WS_CLOSE,
 * WS_PING, WS_PONG). p is valid only during the call. Return 0 to go on, or
 * nonzero to stop parsing (wsparse_feed then returns that value). */
typedef int (*wsparse_msg_fn)(void *ud, uint8_t opcode, const uint8_t *p, size_t len);

/* expect_masked: frames must be masked (a server reading a client) or must
 * not be (a client reading a server). max_message bounds a message. NULL on
 * allocation failure. */
wsparse *wsparse_new(bool expect_masked, size_t max_message);
void wsparse_free(wsparse *w);

/*
 * Parse p[0..len), calling on_msg for each message. Returns 0 when all bytes
 * were consumed; a negative WebSocket close code (-WS_CLOSE_PROTOCOL,
 * -WS_CLOSE_TOO_BIG) on a violation (the stream is then unusable); or what
 * on_msg returned when it stopped the parse. The reassembly buffer is freed
 * as soon as a message that needed it is complete (see wsparse_keep_buffer).
 */
int wsparse_feed(wsparse *w, const uint8_t *p, size_t len, wsparse_msg_fn on_msg, void *ud);
/* The same, allowed to unmask p in place, so that masked frames that arrive
 * whole are delivered without a copy too. */
int wsparse_feed_inplace(wsparse *w, uint8_t *p, size_t len, wsparse_msg_fn on_msg, void *ud);
/* Keep the reassembly buffer between messages (one busy connection) instead
 * of freeing it after each reassembled message (many idle ones). */
void wsparse_keep_buffer(wsparse *w, bool keep);

/* --- The opening handshake, client side (RFC 6455 section 4.1) --- */

#define WSHS_KEY_LEN 24    /* base64 of 16 random bytes */
#define WSHS_HEAD_MAX 8192 /* a longer response head is refused */

/* A fresh Sec-WebSocket-Key (NUL-terminated, WSHS_KEY_LEN chars). */
void wshs_new_key(char key[WSHS_KEY_LEN + 1]);

/* Write the upgrade request into out; returns its length, 0 if it does not fit.
 * host is the Host header value (with the port when not the default). */
size_t wshs_request(char *out, size_t cap, const char *path, const char *host, const char *key,
                    const char *protocol);

/* The Sec-WebSocket-Accept value for a client's key: base64(SHA-1(key GUID)),
 * NUL-terminated in out (>= 29 bytes). 0, or -EINVAL for an empty or
 * oversized key. */
int wshs_accept(const char *key, size_t klen, char out[29]);

/* Does the comma-separated header value v[0..n) list token t (any case)? */
bool wshs_list_has(const char *v, size_t n, const char *t);

/*
 * Look for the end of the response head in p[0..len). Returns the head's
 * length (through the blank line) when complete, 0 when more bytes are needed,
 * -EMSGSIZE when no head ends within WSHS_HEAD_MAX.
 */
long wshs_head_end(const uint8_t *p, size_t len);

/*
 * Check a complete response head: status 101, `Upgrade: websocket`,
 * `Connection` naming upgrade, the right Sec-WebSocket-Accept, and the
 * protocol, when one is returned, equal to ours. Returns 0, or -EPROTO with
 * the reason in err (naming the status when it is not 101); *status gets the
 * status code (0 when the status line is unreadable).
 */
int wshs_check_response(const uint8_t *p, size_t len, const char *key, const char *protocol,
                        int *status, char *err, size_t errcap);

#endif
