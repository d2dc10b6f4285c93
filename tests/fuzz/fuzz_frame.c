/*
 * fuzz_frame: the mux frame codec on untrusted bytes.
 *
 * The input is decoded as one frame (a WebSocket message) and then walked as
 * a length-prefixed byte stream with frame_split. Invariants checked with
 * abort(): a decoded frame lies inside the input, stream 0 carries CTL frames
 * and nothing else, its payload parses with the matching parser, and
 * OPEN (with its name and hop extensions), RST, WINDOW and CTL re-encode to
 * frames that decode to the same values.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

static void check_roundtrip(const struct frame *f)
{
    uint8_t out[FRAME_MAX_LEN];
    struct frame g;
    size_t n = 0;

    switch (f->type) {
    case FRAME_OPEN: {
        struct frame_open o, o2;
        if (frame_open_parse(f->payload, f->len, &o) != 0)
            abort();
        n = frame_encode_open(out, sizeof out, f->stream, &o);
        if (n == 0 || frame_decode(out, n, &g) != 0 || g.type != FRAME_OPEN)
            abort();
        if (frame_open_parse(g.payload, g.len, &o2) != 0)
            abort();
        if (o.proto != o2.proto || strcmp(o.remote, o2.remote) != 0 ||
            strcmp(o.name, o2.name) != 0 || o.hops != o2.hops)
            abort();
        break;
    }
    case FRAME_CTL:
        if (f->stream != 0 || f->len == 0 || f->len > FRAME_CTL_MAX)
            abort();
        n = frame_encode_ctl(out, sizeof out, f->payload, f->len);
        if (n != FRAME_HDR_LEN + f->len || frame_decode(out, n, &g) != 0 || g.type != FRAME_CTL ||
            g.len != f->len || memcmp(g.payload, f->payload, f->len) != 0)
            abort();
        break;
    case FRAME_DATA:
        if (f->len == 0 || f->len > FRAME_MAX_PAYLOAD)
            abort();
        return;
    case FRAME_FIN:
        if (f->len != 0)
            abort();
        n = frame_encode_fin(out, sizeof out, f->stream);
        if (n == 0 || frame_decode(out, n, &g) != 0 || g.type != FRAME_FIN)
            abort();
        break;
    case FRAME_RST: {
        uint16_t code, code2;
        if (frame_rst_parse(f->payload, f->len, &code) != 0)
            abort();
        char text[257];
        size_t tlen = f->len - 2;
        if (tlen >= sizeof text)
            abort();
        memcpy(text, f->payload + 2, tlen);
        text[tlen] = '\0';
        n = frame_encode_rst(out, sizeof out, f->stream, code, text);
        if (n == 0 || frame_decode(out, n, &g) != 0 || g.type != FRAME_RST)
            abort();
        if (frame_rst_parse(g.payload, g.len, &code2) != 0 || code2 != code)
            abort();
        /* text up to the first NUL survives */
        size_t keep = strlen(text);
        if (g.len != 2 + keep || memcmp(g.payload + 2, text, keep) != 0)
            abort();
        break;
    }
    case FRAME_WINDOW: {
        uint32_t incr, incr2;
        if (frame_window_parse(f->payload, f->len, &incr) != 0)
            abort();
        n = frame_encode_window(out, sizeof out, f->stream, incr);
        if (n == 0 || frame_decode(out, n, &g) != 0 || g.type != FRAME_WINDOW)
            abort();
        if (frame_window_parse(g.payload, g.len, &incr2) != 0 || incr2 != incr)
            abort();
        break;
    }
    default:
        abort(); /* decode accepted an unknown type */
    }
    if (g.stream != f->stream)
        abort();
    /* names are always printable strings */
    if (!frame_type_name(f->type)[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct frame f;
    int rc = frame_decode(data, size, &f);
    if (rc == 0) {
        if (f.payload != data + FRAME_HDR_LEN || f.len != size - FRAME_HDR_LEN ||
            (f.stream == 0) != (f.type == FRAME_CTL))
            abort();
        check_roundtrip(&f);
    }

    /* Payload parsers on raw bytes. */
    struct frame_open o;
    if (frame_open_parse(data, size, &o) == 0 && strlen(o.remote) > FRAME_ADDR_MAX)
        abort();
    uint16_t code;
    if (frame_rst_parse(data, size, &code) == 0)
        (void)frame_rst_name(code);
    uint32_t incr;
    if (frame_window_parse(data, size, &incr) == 0 && (incr == 0 || incr > (1u << 30)))
        abort();

    /* Byte stream: split frames until the input is used up or invalid. */
    size_t off = 0;
    while (off < size) {
        long r = frame_split(data + off, size - off, &f);
        if (r <= 0)
            break;
        if ((size_t)r > size - off || (size_t)r < FRAME_LEN_PREFIX + FRAME_HDR_LEN)
            abort();
        check_roundtrip(&f);
        off += (size_t)r;
    }
    return 0;
}
