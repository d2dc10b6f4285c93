/*
 * test_frame: the mux frame codec: every frame type round-trips, every
 * invalid case listed in frame.h is rejected with the documented errno, and
 * frame_split handles partial, concatenated and oversized byte-stream input.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "frame.h"

static uint8_t fbuf[FRAME_MAX_LEN + 64];

static size_t make_frame(uint8_t *dst, uint8_t type, uint32_t stream, const void *payload,
                         size_t len)
{
    frame_put_header(dst, type, stream);
    if (len)
        memcpy(dst + FRAME_HDR_LEN, payload, len);
    return FRAME_HDR_LEN + len;
}

static void test_header(void)
{
    uint8_t h[FRAME_HDR_LEN];
    CHECK_EQ(frame_put_header(h, FRAME_DATA, 0x01020304), FRAME_HDR_LEN);
    CHECK_EQ(h[0], 2);
    CHECK_EQ(h[1], 1);
    CHECK_EQ(h[2], 2);
    CHECK_EQ(h[3], 3);
    CHECK_EQ(h[4], 4);
    uint8_t pre[4];
    CHECK_EQ(frame_put_prefix(pre, 0x00018005), 4);
    CHECK_EQ(pre[0], 0);
    CHECK_EQ(pre[1], 1);
    CHECK_EQ(pre[2], 0x80);
    CHECK_EQ(pre[3], 5);
}

static void test_open_roundtrip(void)
{
    struct frame_open o = {.proto = FRAME_PROTO_HTTP};
    memcpy(o.remote, "[2001:db8::1]:54321", 20);
    size_t n = frame_encode_open(fbuf, sizeof fbuf, 7, &o);
    CHECK_EQ(n, FRAME_HDR_LEN + 2 + 19);
    struct frame f;
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(f.type, FRAME_OPEN);
    CHECK_EQ(f.stream, 7);
    CHECK_EQ(f.len, 2 + 19);
    CHECK(f.payload == fbuf + FRAME_HDR_LEN);
    struct frame_open d;
    CHECK_EQ(frame_open_parse(f.payload, f.len, &d), 0);
    CHECK_EQ(d.proto, FRAME_PROTO_HTTP);
    CHECK_STR(d.remote, "[2001:db8::1]:54321");

    /* TCP, maximum address length, stream id with the top bit set */
    struct frame_open o2 = {.proto = FRAME_PROTO_TCP};
    memset(o2.remote, '9', FRAME_ADDR_MAX);
    o2.remote[FRAME_ADDR_MAX] = '\0';
    n = frame_encode_open(fbuf, sizeof fbuf, 0xffffffffu, &o2);
    CHECK_EQ(n, FRAME_HDR_LEN + 2 + FRAME_ADDR_MAX);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(f.stream, 0xffffffffu);
    CHECK_EQ(frame_open_parse(f.payload, f.len, &d), 0);
    CHECK_EQ(d.proto, FRAME_PROTO_TCP);
    CHECK_EQ(strlen(d.remote), FRAME_ADDR_MAX);

    /* empty address is allowed */
    struct frame_open o3 = {.proto = FRAME_PROTO_TCP};
    n = frame_encode_open(fbuf, sizeof fbuf, 2, &o3);
    CHECK_EQ(n, FRAME_HDR_LEN + 2);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(frame_open_parse(f.payload, f.len, &d), 0);
    CHECK_STR(d.remote, "");

    /* extension bytes after the address are ignored */
    uint8_t pl[] = {FRAME_PROTO_HTTP, 3, '1', ':', '2', 0xde, 0xad, 0x00};
    n = make_frame(fbuf, FRAME_OPEN, 9, pl, sizeof pl);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(frame_open_parse(f.payload, f.len, &d), 0);
    CHECK_STR(d.remote, "1:2");

    /* encoder refusals: cap, stream 0, proto, bad chars */
    n = frame_encode_open(fbuf, FRAME_HDR_LEN + 2 + 18, 7, &o);
    CHECK_EQ(n, 0);
    CHECK_EQ(frame_encode_open(fbuf, sizeof fbuf, 0, &o), 0);
    struct frame_open bad = {.proto = 3};
    CHECK_EQ(frame_encode_open(fbuf, sizeof fbuf, 1, &bad), 0);
    struct frame_open sp = {.proto = FRAME_PROTO_HTTP};
    memcpy(sp.remote, "1.2.3.4 :5", 11);
    CHECK_EQ(frame_encode_open(fbuf, sizeof fbuf, 1, &sp), 0);
    struct frame_open unterminated = {.proto = FRAME_PROTO_HTTP};
    memset(unterminated.remote, 'a', sizeof unterminated.remote);
    CHECK_EQ(frame_encode_open(fbuf, sizeof fbuf, 1, &unterminated), 0);
}

static void test_open_invalid(void)
{
    struct frame f = {.type = 99};
    struct frame_open d = {.proto = 77};
    size_t n;
    /* empty, 1 byte */
    n = make_frame(fbuf, FRAME_OPEN, 1, NULL, 0);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    uint8_t one[] = {FRAME_PROTO_HTTP};
    n = make_frame(fbuf, FRAME_OPEN, 1, one, 1);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    /* unknown proto */
    uint8_t p0[] = {0, 1, 'x'};
    CHECK_EQ(frame_open_parse(p0, sizeof p0, &d), -EINVAL);
    uint8_t p3[] = {3, 1, 'x'};
    CHECK_EQ(frame_open_parse(p3, sizeof p3, &d), -EINVAL);
    /* n past the end */
    uint8_t past[] = {FRAME_PROTO_TCP, 4, 'a', 'b', 'c'};
    CHECK_EQ(frame_open_parse(past, sizeof past, &d), -EINVAL);
    n = make_frame(fbuf, FRAME_OPEN, 1, past, sizeof past);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    /* n over FRAME_ADDR_MAX */
    uint8_t big[2 + 64];
    big[0] = FRAME_PROTO_TCP;
    big[1] = 64;
    memset(big + 2, '1', 64);
    CHECK_EQ(frame_open_parse(big, sizeof big, &d), -EINVAL);
    /* NUL, space, control and non-ASCII bytes in the address */
    uint8_t nul[] = {FRAME_PROTO_TCP, 3, 'a', 0, 'b'};
    CHECK_EQ(frame_open_parse(nul, sizeof nul, &d), -EINVAL);
    uint8_t ctl[] = {FRAME_PROTO_TCP, 2, 'a', '\n'};
    CHECK_EQ(frame_open_parse(ctl, sizeof ctl, &d), -EINVAL);
    uint8_t hi[] = {FRAME_PROTO_TCP, 2, 'a', 0xc3};
    CHECK_EQ(frame_open_parse(hi, sizeof hi, &d), -EINVAL);
    /* outputs untouched on failure */
    CHECK_EQ(f.type, 99);
    CHECK_EQ(d.proto, 77);
}

static void test_data(void)
{
    struct frame f;
    static uint8_t payload[FRAME_MAX_PAYLOAD + 1];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    size_t n = make_frame(fbuf, FRAME_DATA, 3, payload, 1);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(f.type, FRAME_DATA);
    CHECK_EQ(f.len, 1);
    n = make_frame(fbuf, FRAME_DATA, 3, payload, FRAME_MAX_PAYLOAD);
    CHECK_EQ(n, FRAME_MAX_LEN);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(f.len, FRAME_MAX_PAYLOAD);
    CHECK(memcmp(f.payload, payload, FRAME_MAX_PAYLOAD) == 0);
    /* one byte over */
    n = make_frame(fbuf, FRAME_DATA, 3, payload, FRAME_MAX_PAYLOAD + 1);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EMSGSIZE);
    /* oversize wins even for types that would be invalid anyway */
    fbuf[0] = FRAME_FIN;
    CHECK_EQ(frame_decode(fbuf, n, &f), -EMSGSIZE);
    /* empty DATA */
    n = make_frame(fbuf, FRAME_DATA, 3, NULL, 0);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
}

static void test_fin(void)
{
    struct frame f;
    size_t n = frame_encode_fin(fbuf, sizeof fbuf, 11);
    CHECK_EQ(n, FRAME_HDR_LEN);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(f.type, FRAME_FIN);
    CHECK_EQ(f.stream, 11);
    CHECK_EQ(f.len, 0);
    CHECK_EQ(frame_encode_fin(fbuf, FRAME_HDR_LEN - 1, 11), 0);
    CHECK_EQ(frame_encode_fin(fbuf, sizeof fbuf, 0), 0);
    uint8_t x = 0;
    n = make_frame(fbuf, FRAME_FIN, 11, &x, 1);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
}

static void test_rst(void)
{
    struct frame f;
    uint16_t code = 0;
    size_t n = frame_encode_rst(fbuf, sizeof fbuf, 5, RST_REFUSED, "connection refused");
    CHECK_EQ(n, FRAME_HDR_LEN + 2 + 18);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(f.type, FRAME_RST);
    CHECK_EQ(frame_rst_parse(f.payload, f.len, &code), 0);
    CHECK_EQ(code, RST_REFUSED);
    CHECK(memcmp(f.payload + 2, "connection refused", 18) == 0);

    n = frame_encode_rst(fbuf, sizeof fbuf, 5, 0xbeef, NULL);
    CHECK_EQ(n, FRAME_HDR_LEN + 2);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(frame_rst_parse(f.payload, f.len, &code), 0);
    CHECK_EQ(code, 0xbeef); /* unknown codes pass: forward compatible */

    char text[258];
    memset(text, 't', 256);
    text[256] = '\0';
    n = frame_encode_rst(fbuf, sizeof fbuf, 5, RST_CANCEL, text);
    CHECK_EQ(n, FRAME_HDR_LEN + 2 + 256);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    text[256] = 't';
    text[257] = '\0';
    CHECK_EQ(frame_encode_rst(fbuf, sizeof fbuf, 5, RST_CANCEL, text), 0);
    CHECK_EQ(frame_encode_rst(fbuf, sizeof fbuf, 0, RST_CANCEL, NULL), 0);
    CHECK_EQ(frame_encode_rst(fbuf, FRAME_HDR_LEN + 1, 5, RST_CANCEL, NULL), 0);

    /* decoder: shorter than 2, longer than 2 + 256 */
    uint8_t pl[2 + 257];
    memset(pl, 'a', sizeof pl);
    n = make_frame(fbuf, FRAME_RST, 5, pl, 0);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    n = make_frame(fbuf, FRAME_RST, 5, pl, 1);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    n = make_frame(fbuf, FRAME_RST, 5, pl, 2 + 257);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    code = 42;
    CHECK_EQ(frame_rst_parse(pl, 1, &code), -EINVAL);
    CHECK_EQ(frame_rst_parse(pl, 259, &code), -EINVAL);
    CHECK_EQ(code, 42);
}

static void test_window(void)
{
    struct frame f;
    uint32_t incr = 0;
    size_t n = frame_encode_window(fbuf, sizeof fbuf, 8, 256 * 1024);
    CHECK_EQ(n, FRAME_HDR_LEN + 4);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    CHECK_EQ(f.type, FRAME_WINDOW);
    CHECK_EQ(frame_window_parse(f.payload, f.len, &incr), 0);
    CHECK_EQ(incr, 256 * 1024);

    CHECK(frame_encode_window(fbuf, sizeof fbuf, 8, 1) > 0);
    CHECK_EQ(frame_decode(fbuf, FRAME_HDR_LEN + 4, &f), 0);
    CHECK(frame_encode_window(fbuf, sizeof fbuf, 8, 1u << 30) > 0);
    CHECK_EQ(frame_decode(fbuf, FRAME_HDR_LEN + 4, &f), 0);
    CHECK_EQ(frame_encode_window(fbuf, sizeof fbuf, 8, 0), 0);
    CHECK_EQ(frame_encode_window(fbuf, sizeof fbuf, 8, (1u << 30) + 1), 0);
    CHECK_EQ(frame_encode_window(fbuf, sizeof fbuf, 0, 1), 0);
    CHECK_EQ(frame_encode_window(fbuf, FRAME_HDR_LEN + 3, 8, 1), 0);

    uint8_t zero[4] = {0, 0, 0, 0};
    n = make_frame(fbuf, FRAME_WINDOW, 8, zero, 4);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    uint8_t over[4] = {0x40, 0, 0, 1};
    n = make_frame(fbuf, FRAME_WINDOW, 8, over, 4);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    uint8_t top[4] = {0x40, 0, 0, 0};
    n = make_frame(fbuf, FRAME_WINDOW, 8, top, 4);
    CHECK_EQ(frame_decode(fbuf, n, &f), 0);
    uint8_t five[5] = {0, 0, 0, 1, 0};
    n = make_frame(fbuf, FRAME_WINDOW, 8, five, 5);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    n = make_frame(fbuf, FRAME_WINDOW, 8, five, 3);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    incr = 9;
    CHECK_EQ(frame_window_parse(over, 4, &incr), -EINVAL);
    CHECK_EQ(frame_window_parse(five, 5, &incr), -EINVAL);
    CHECK_EQ(incr, 9);
}

static void test_header_invalid(void)
{
    struct frame f;
    uint8_t x = 1;
    /* shorter than the header */
    for (size_t len = 0; len < FRAME_HDR_LEN; len++) {
        make_frame(fbuf, FRAME_FIN, 1, NULL, 0);
        CHECK_EQ(frame_decode(fbuf, len, &f), -EINVAL);
    }
    /* stream 0 for every type */
    size_t n = make_frame(fbuf, FRAME_DATA, 0, &x, 1);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    n = make_frame(fbuf, FRAME_FIN, 0, NULL, 0);
    CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    /* unknown types */
    uint8_t types[] = {0, 6, 7, 0x80, 0xff};
    for (size_t i = 0; i < sizeof types; i++) {
        n = make_frame(fbuf, types[i], 1, &x, 1);
        CHECK_EQ(frame_decode(fbuf, n, &f), -EINVAL);
    }
}

static void test_names(void)
{
    CHECK_STR(frame_type_name(FRAME_OPEN), "OPEN");
    CHECK_STR(frame_type_name(FRAME_DATA), "DATA");
    CHECK_STR(frame_type_name(FRAME_FIN), "FIN");
    CHECK_STR(frame_type_name(FRAME_RST), "RST");
    CHECK_STR(frame_type_name(FRAME_WINDOW), "WINDOW");
    CHECK_STR(frame_type_name(0), "unknown");
    CHECK_STR(frame_type_name(200), "unknown");
    CHECK_STR(frame_rst_name(RST_CANCEL), "cancel");
    CHECK_STR(frame_rst_name(RST_REFUSED), "refused");
    CHECK_STR(frame_rst_name(RST_PROTOCOL), "protocol");
    CHECK_STR(frame_rst_name(RST_FLOW_CONTROL), "flow_control");
    CHECK_STR(frame_rst_name(RST_TOO_MANY), "too_many");
    CHECK_STR(frame_rst_name(RST_SESSION_GONE), "session_gone");
    CHECK_STR(frame_rst_name(RST_TIMEOUT), "timeout");
    CHECK_STR(frame_rst_name(RST_INTERNAL), "internal");
    CHECK_STR(frame_rst_name(0), "unknown");
    CHECK_STR(frame_rst_name(9999), "unknown");
}

/* Byte stream of three frames: OPEN, DATA(big), WINDOW. */
static size_t build_stream(uint8_t *dst, size_t data_len)
{
    size_t off = 0, n;
    struct frame_open o = {.proto = FRAME_PROTO_TCP};
    memcpy(o.remote, "10.0.0.1:80", 12);
    n = frame_encode_open(dst + off + 4, 100, 1, &o);
    frame_put_prefix(dst + off, n);
    off += 4 + n;
    frame_put_header(dst + off + 4, FRAME_DATA, 1);
    memset(dst + off + 4 + FRAME_HDR_LEN, 'd', data_len);
    frame_put_prefix(dst + off, FRAME_HDR_LEN + data_len);
    off += 4 + FRAME_HDR_LEN + data_len;
    n = frame_encode_window(dst + off + 4, 100, 1, 1000);
    frame_put_prefix(dst + off, n);
    off += 4 + n;
    return off;
}

static void test_split(void)
{
    static uint8_t s[3 * FRAME_MAX_LEN];
    size_t total = build_stream(s, 5000);
    struct frame f;

    /* every prefix of the first frame is "need more" */
    size_t first = 4 + FRAME_HDR_LEN + 2 + 11;
    for (size_t i = 0; i < first; i++)
        CHECK_EQ(frame_split(s, i, &f), 0);
    CHECK_EQ(frame_split(s, first, &f), (long)first);
    CHECK_EQ(f.type, FRAME_OPEN);

    /* walk the concatenated stream; each frame needs all its bytes */
    size_t off = 0;
    int types[3] = {0};
    int nframes = 0, partial_ok = 1;
    while (off < total) {
        long r = frame_split(s + off, total - off, &f);
        if (r <= 0)
            break;
        if (frame_split(s + off, (size_t)r - 1, &f) != 0)
            partial_ok = 0;
        frame_split(s + off, (size_t)r, &f);
        if (nframes < 3)
            types[nframes] = f.type;
        nframes++;
        off += (size_t)r;
    }
    CHECK_EQ(nframes, 3);
    CHECK_EQ(off, total);
    CHECK(partial_ok);
    CHECK_EQ(types[0], FRAME_OPEN);
    CHECK_EQ(types[1], FRAME_DATA);
    CHECK_EQ(types[2], FRAME_WINDOW);

    /* the largest frame fits */
    total = build_stream(s, FRAME_MAX_PAYLOAD);
    off = (size_t)frame_split(s, total, &f);
    CHECK_EQ(frame_split(s + off, total - off, &f), 4 + FRAME_MAX_LEN);
    CHECK_EQ(f.len, FRAME_MAX_PAYLOAD);

    /* oversized prefix is refused at once, without the bytes */
    uint8_t pre[4];
    frame_put_prefix(pre, FRAME_MAX_LEN + 1);
    CHECK_EQ(frame_split(pre, 4, &f), -EMSGSIZE);
    frame_put_prefix(pre, 0xffffffffu);
    CHECK_EQ(frame_split(pre, 4, &f), -EMSGSIZE);
    /* a prefix smaller than a header is invalid at once */
    for (size_t l = 0; l < FRAME_HDR_LEN; l++) {
        frame_put_prefix(pre, l);
        CHECK_EQ(frame_split(pre, 4, &f), -EINVAL);
    }
    /* a complete but invalid frame is reported as frame_decode does */
    uint8_t bad[4 + FRAME_HDR_LEN];
    frame_put_prefix(bad, FRAME_HDR_LEN);
    frame_put_header(bad + 4, FRAME_DATA, 1);
    CHECK_EQ(frame_split(bad, sizeof bad, &f), -EINVAL);
    CHECK_EQ(frame_split(bad, sizeof bad - 1, &f), 0);
}

/* CTL frames (peer links): stream 0 only, 1..FRAME_CTL_MAX bytes of payload;
 * found by fuzzing: the smallest one, 06 00000000 01, is valid. */
static void test_ctl(void)
{
    uint8_t buf[FRAME_HDR_LEN + FRAME_CTL_MAX + 8];
    struct frame f;
    static const uint8_t smallest[] = {6, 0, 0, 0, 0, 1};
    CHECK_EQ(frame_decode(smallest, sizeof smallest, &f), 0);
    CHECK_EQ(f.type, FRAME_CTL);
    CHECK_EQ(f.stream, 0);
    CHECK_EQ(f.len, 1);
    CHECK_STR(frame_type_name(FRAME_CTL), "CTL");
    static const uint8_t on_stream_1[] = {6, 0, 0, 0, 1, '{'};
    CHECK_EQ(frame_decode(on_stream_1, sizeof on_stream_1, &f), -EINVAL);
    static const uint8_t empty[] = {6, 0, 0, 0, 0};
    CHECK_EQ(frame_decode(empty, sizeof empty, &f), -EINVAL);
    static const uint8_t data_on_0[] = {2, 0, 0, 0, 0, 'x'};
    CHECK_EQ(frame_decode(data_on_0, sizeof data_on_0, &f), -EINVAL);

    size_t n = frame_encode_ctl(buf, sizeof buf, "{\"a\":1}", 7);
    CHECK_EQ(n, FRAME_HDR_LEN + 7);
    CHECK_EQ(frame_decode(buf, n, &f), 0);
    CHECK(f.type == FRAME_CTL && f.len == 7 && memcmp(f.payload, "{\"a\":1}", 7) == 0);
    memset(buf + FRAME_HDR_LEN, ' ', FRAME_CTL_MAX + 1);
    CHECK_EQ(frame_encode_ctl(buf, sizeof buf, buf + FRAME_HDR_LEN, FRAME_CTL_MAX + 1), 0);
    CHECK_EQ(frame_encode_ctl(buf, sizeof buf, "", 0), 0);
    buf[0] = FRAME_CTL;
    memset(buf + 1, 0, 4);
    CHECK_EQ(frame_decode(buf, FRAME_HDR_LEN + FRAME_CTL_MAX, &f), 0);
    CHECK_EQ(frame_decode(buf, FRAME_HDR_LEN + FRAME_CTL_MAX + 1, &f), -EINVAL);

    /* on a byte stream */
    uint8_t stream[16];
    frame_put_prefix(stream, sizeof smallest);
    memcpy(stream + 4, smallest, sizeof smallest);
    CHECK_EQ(frame_split(stream, 4 + sizeof smallest, &f), (long)(4 + sizeof smallest));
    CHECK_EQ(f.type, FRAME_CTL);
}

int main(void)
{
    test_ctl();
    test_header();
    test_open_roundtrip();
    test_open_invalid();
    test_data();
    test_fin();
    test_rst();
    test_window();
    test_header_invalid();
    test_names();
    test_split();
    return check_done();
}
