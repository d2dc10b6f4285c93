/*
 * frame: the mux frame codec (docs/protocol.md, "Frames").
 *
 * One frame is `type (u8) | stream id (u32, big endian) | payload`. Over a
 * WebSocket one binary message carries exactly one frame; over a byte stream
 * (a TCP peer link) each frame is preceded by its length as a u32 big endian
 * (frame_split). Transport-independent, allocation-free, never needs a NUL,
 * and treats every input as untrusted.
 */
#ifndef WARREN_FRAME_H
#define WARREN_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR_LEN 5
#define FRAME_MAX_PAYLOAD (32 * 1024)
#define FRAME_MAX_LEN (FRAME_HDR_LEN + FRAME_MAX_PAYLOAD)
#define FRAME_LEN_PREFIX 4 /* length prefix used by frame_split */

enum frame_type {
    FRAME_OPEN = 1,   /* payload: frame_open */
    FRAME_DATA = 2,   /* payload: 1..FRAME_MAX_PAYLOAD bytes */
    FRAME_FIN = 3,    /* empty payload: sender will send no more DATA (half-close) */
    FRAME_RST = 4,    /* payload: u16 reason code, then optional UTF-8 text (<= 256) */
    FRAME_WINDOW = 5, /* payload: u32 credit increment (1 .. 2^30) */
    FRAME_CTL = 6,    /* stream 0 only; payload: a JSON control message (1 .. 4096 bytes).
                         Used on byte-stream transports (peer links), where there are no
                         WebSocket text messages; never inside a mux. */
};
#define FRAME_CTL_MAX 4096

/* RST reason codes (docs/protocol.md). */
enum frame_rst_code {
    RST_CANCEL = 1,       /* the other side gave up (visitor left, Ctrl-C) */
    RST_REFUSED = 2,      /* local service refused the connection / not reachable */
    RST_PROTOCOL = 3,     /* frame out of order, bad stream state */
    RST_FLOW_CONTROL = 4, /* DATA beyond the credit granted */
    RST_TOO_MANY = 5,     /* too many concurrent streams */
    RST_SESSION_GONE = 6, /* the session ended with the stream open */
    RST_TIMEOUT = 7,      /* a deadline expired */
    RST_INTERNAL = 8,     /* out of memory or a bug */
    RST_NOT_HERE = 9,     /* peer link: the name is not served by this edge (any more) */
    RST_LOOP = 10,        /* peer link: the stream was already forwarded once */
};

enum frame_proto {
    FRAME_PROTO_HTTP = 1,
    FRAME_PROTO_TCP = 2,
};

/* A decoded frame; payload points into the decoded buffer. */
struct frame {
    uint8_t type;
    uint32_t stream;
    const uint8_t *payload;
    size_t len;
};

/* OPEN payload: u8 proto | u8 n | n bytes of visitor address text ("ip:port",
 * "[v6]:port") | extensions. Each extension is u8 tag | u8 len | len bytes;
 * unknown tags are skipped and a truncated extension ends the list (forward
 * compatibility: older decoders ignore all of them). Known tags:
 *   1 name: the tunnel name the stream is for (peer links), a valid name;
 *   2 hops: u8, how many times the stream was forwarded between edges. */
#define FRAME_ADDR_MAX 63
#define FRAME_OPEN_EXT_NAME 1
#define FRAME_OPEN_EXT_HOPS 2
struct frame_open {
    uint8_t proto;                   /* enum frame_proto */
    char remote[FRAME_ADDR_MAX + 1]; /* NUL-terminated visitor address */
    char name[64];                   /* "" when absent */
    uint8_t hops;                    /* 0 when absent */
};

/* Decode one whole frame (one WebSocket message). Returns 0 and fills *out, or
 * -EINVAL (shorter than the header, unknown type, stream id 0 (other than for
 * CTL, which must have stream 0 and 1..FRAME_CTL_MAX bytes), payload not
 * valid for its type: DATA empty, FIN non-empty, WINDOW not 4 bytes or out of
 * range, RST shorter than 2 or longer than 2+256), -EMSGSIZE (payload over
 * FRAME_MAX_PAYLOAD). *out is written only on success. OPEN payload is checked
 * with frame_open_parse. */
int frame_decode(const uint8_t *p, size_t len, struct frame *out);

/* Write the 5-byte header into dst. Returns FRAME_HDR_LEN. */
size_t frame_put_header(uint8_t *dst, uint8_t type, uint32_t stream);

/* Encode helpers: write a complete frame into dst (cap bytes). Return the
 * frame length, or 0 if cap is too small or an argument is out of range. */
size_t frame_encode_open(uint8_t *dst, size_t cap, uint32_t stream, const struct frame_open *o);
size_t frame_encode_fin(uint8_t *dst, size_t cap, uint32_t stream);
size_t frame_encode_rst(uint8_t *dst, size_t cap, uint32_t stream, uint16_t code, const char *text);
size_t frame_encode_window(uint8_t *dst, size_t cap, uint32_t stream, uint32_t incr);
size_t frame_encode_ctl(uint8_t *dst, size_t cap, const void *json, size_t len);

/* Payload parsers for decoded frames. 0 or -EINVAL; outputs written on success only. */
int frame_open_parse(const uint8_t *p, size_t len, struct frame_open *out);
int frame_rst_parse(const uint8_t *p, size_t len, uint16_t *code);
int frame_window_parse(const uint8_t *p, size_t len, uint32_t *incr);

/* Name of a frame type / RST code for logs ("DATA", "refused"); never NULL. */
const char *frame_type_name(uint8_t type);
const char *frame_rst_name(uint16_t code);

/* Byte-stream transport: find the first length-prefixed frame in p[0..len).
 * Returns the total bytes it occupies (prefix + frame) and fills *out, 0 when
 * more bytes are needed, or a negative errno as frame_decode (a prefix larger
 * than FRAME_MAX_LEN is -EMSGSIZE at once, without waiting for the bytes). */
long frame_split(const uint8_t *p, size_t len, struct frame *out);
/* Write the u32 length prefix for a frame of frame_len bytes. Returns 4. */
size_t frame_put_prefix(uint8_t *dst, size_t frame_len);

#endif
