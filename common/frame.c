/*
 * frame: encode and decode mux frames, and split them out of a byte stream.
 *
 * Why: both binaries and both transports (WebSocket messages, TCP peer links)
 * must agree byte for byte on what a frame is and reject the same garbage.
 *
 * Invariants: no allocation, no NUL needed in any input, every length is
 * checked before it is used; a successful frame_decode() means the payload is
 * valid for its type, so callers may run the payload parsers without
 * re-checking lengths. Encoders never write past cap and produce only frames
 * that frame_decode() accepts.
 */
#include <errno.h>
#include <string.h>

#include "frame.h"

#define RST_TEXT_MAX 256
#define WINDOW_MAX (UINT32_C(1) << 30)

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static bool proto_valid(uint8_t proto)
{
    return proto == FRAME_PROTO_HTTP || proto == FRAME_PROTO_TCP;
}

/* Address text: printable ASCII without spaces ("1.2.3.4:5", "[::1]:80"). */
static bool addr_char_valid(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

static bool name_char_valid(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int frame_open_parse(const uint8_t *p, size_t len, struct frame_open *out)
{
    if (len < 2 || !proto_valid(p[0]))
        return -EINVAL;
    size_t n = p[1];
    if (n > FRAME_ADDR_MAX || n > len - 2)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!addr_char_valid(p[2 + i]))
            return -EINVAL;
    struct frame_open o;
    memset(&o, 0, sizeof o);
    o.proto = p[0];
    memcpy(o.remote, p + 2, n);
    o.remote[n] = '\0';
    size_t off = 2 + n;
    while (len - off >= 2 && len - off - 2 >= p[off + 1]) {
        uint8_t tag = p[off], elen = p[off + 1];
        const uint8_t *v = p + off + 2;
        if (tag == FRAME_OPEN_EXT_NAME) {
            if (elen == 0 || elen >= sizeof o.name)
                return -EINVAL;
            for (size_t i = 0; i < elen; i++)
                if (!name_char_valid(v[i]))
                    return -EINVAL;
            memcpy(o.name, v, elen);
            o.name[elen] = '\0';
        } else if (tag == FRAME_OPEN_EXT_HOPS) {
            if (elen != 1)
                return -EINVAL;
            o.hops = v[0];
        }
        off += 2 + (size_t)elen;
    }
    *out = o;
    return 0;
}

int frame_rst_parse(const uint8_t *p, size_t len, uint16_t *code)
{
    if (len < 2 || len > 2 + RST_TEXT_MAX)
        return -EINVAL;
    *code = (uint16_t)(p[0] << 8 | p[1]);
    return 0;
}

int frame_window_parse(const uint8_t *p, size_t len, uint32_t *incr)
{
    if (len != 4)
        return -EINVAL;
    uint32_t v = get_u32(p);
    if (v == 0 || v > WINDOW_MAX)
        return -EINVAL;
    *incr = v;
    return 0;
}

static int payload_check(uint8_t type, const uint8_t *p, size_t len)
{
    struct frame_open o;
    uint16_t code;
    uint32_t incr;

    switch (type) {
    case FRAME_OPEN:
        return frame_open_parse(p, len, &o);
    case FRAME_DATA:
        return len > 0 ? 0 : -EINVAL;
    case FRAME_FIN:
        return len == 0 ? 0 : -EINVAL;
    case FRAME_RST:
        return frame_rst_parse(p, len, &code);
    case FRAME_WINDOW:
        return frame_window_parse(p, len, &incr);
    case FRAME_CTL:
        return len >= 1 && len <= FRAME_CTL_MAX ? 0 : -EINVAL;
    default:
        return -EINVAL;
    }
}

int frame_decode(const uint8_t *p, size_t len, struct frame *out)
{
    if (len < FRAME_HDR_LEN)
        return -EINVAL;
    if (len - FRAME_HDR_LEN > FRAME_MAX_PAYLOAD)
        return -EMSGSIZE;
    uint8_t type = p[0];
    uint32_t stream = get_u32(p + 1);
    if ((stream == 0) != (type == FRAME_CTL))
        return -EINVAL;
    const uint8_t *payload = p + FRAME_HDR_LEN;
    size_t plen = len - FRAME_HDR_LEN;
    int rc = payload_check(type, payload, plen);
    if (rc < 0)
        return rc;
    out->type = type;
    out->stream = stream;
    out->payload = payload;
    out->len = plen;
    return 0;
}

size_t frame_put_header(uint8_t *dst, uint8_t type, uint32_t stream)
{
    dst[0] = type;
    put_u32(dst + 1, stream);
    return FRAME_HDR_LEN;
}

size_t frame_encode_open(uint8_t *dst, size_t cap, uint32_t stream, const struct frame_open *o)
{
    if (stream == 0 || !proto_valid(o->proto))
        return 0;
    size_t n = strnlen(o->remote, sizeof o->remote);
    if (n > FRAME_ADDR_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!addr_char_valid((uint8_t)o->remote[i]))
            return 0;
    size_t nl = strnlen(o->name, sizeof o->name);
    if (nl >= sizeof o->name)
        return 0;
    for (size_t i = 0; i < nl; i++)
        if (!name_char_valid((uint8_t)o->name[i]))
            return 0;
    size_t total = FRAME_HDR_LEN + 2 + n + (nl ? 2 + nl : 0) + (o->hops ? 3 : 0);
    if (cap < total)
        return 0;
    frame_put_header(dst, FRAME_OPEN, stream);
    uint8_t *q = dst + FRAME_HDR_LEN;
    *q++ = o->proto;
    *q++ = (uint8_t)n;
    memcpy(q, o->remote, n);
    q += n;
    if (nl) {
        *q++ = FRAME_OPEN_EXT_NAME;
        *q++ = (uint8_t)nl;
        memcpy(q, o->name, nl);
        q += nl;
    }
    if (o->hops) {
        *q++ = FRAME_OPEN_EXT_HOPS;
        *q++ = 1;
        *q++ = o->hops;
    }
    return total;
}

size_t frame_encode_ctl(uint8_t *dst, size_t cap, const void *json, size_t len)
{
    if (len == 0 || len > FRAME_CTL_MAX || cap < FRAME_HDR_LEN + len)
        return 0;
    frame_put_header(dst, FRAME_CTL, 0);
    memcpy(dst + FRAME_HDR_LEN, json, len);
    return FRAME_HDR_LEN + len;
}

size_t frame_encode_fin(uint8_t *dst, size_t cap, uint32_t stream)
{
    if (stream == 0 || cap < FRAME_HDR_LEN)
        return 0;
    return frame_put_header(dst, FRAME_FIN, stream);
}

size_t frame_encode_rst(uint8_t *dst, size_t cap, uint32_t stream, uint16_t code, const char *text)
{
    size_t n = text ? strnlen(text, RST_TEXT_MAX + 1) : 0;
    if (stream == 0 || n > RST_TEXT_MAX)
        return 0;
    size_t total = FRAME_HDR_LEN + 2 + n;
    if (cap < total)
        return 0;
    frame_put_header(dst, FRAME_RST, stream);
    dst[FRAME_HDR_LEN] = (uint8_t)(code >> 8);
    dst[FRAME_HDR_LEN + 1] = (uint8_t)code;
    if (n)
        memcpy(dst + FRAME_HDR_LEN + 2, text, n);
    return total;
}

size_t frame_encode_window(uint8_t *dst, size_t cap, uint32_t stream, uint32_t incr)
{
    if (stream == 0 || incr == 0 || incr > WINDOW_MAX || cap < FRAME_HDR_LEN + 4)
        return 0;
    frame_put_header(dst, FRAME_WINDOW, stream);
    put_u32(dst + FRAME_HDR_LEN, incr);
    return FRAME_HDR_LEN + 4;
}

const char *frame_type_name(uint8_t type)
{
    switch (type) {
    case FRAME_OPEN:
        return "OPEN";
    case FRAME_DATA:
        return "DATA";
    case FRAME_FIN:
        return "FIN";
    case FRAME_RST:
        return "RST";
    case FRAME_WINDOW:
        return "WINDOW";
    case FRAME_CTL:
        return "CTL";
    default:
        return "unknown";
    }
}

const char *frame_rst_name(uint16_t code)
{
    switch (code) {
    case RST_CANCEL:
        return "cancel";
    case RST_REFUSED:
        return "refused";
    case RST_PROTOCOL:
        return "protocol";
    case RST_FLOW_CONTROL:
        return "flow_control";
    case RST_TOO_MANY:
        return "too_many";
    case RST_SESSION_GONE:
        return "session_gone";
    case RST_TIMEOUT:
        return "timeout";
    case RST_INTERNAL:
        return "internal";
    case RST_NOT_HERE:
        return "not_here";
    case RST_LOOP:
        return "loop";
    default:
        return "unknown";
    }
}

long frame_split(const uint8_t *p, size_t len, struct frame *out)
{
    if (len < FRAME_LEN_PREFIX)
        return 0;
    uint32_t flen = get_u32(p);
    if (flen > FRAME_MAX_LEN)
        return -EMSGSIZE;
    if (flen < FRAME_HDR_LEN)
        return -EINVAL;
    if (len - FRAME_LEN_PREFIX < flen)
        return 0;
    int rc = frame_decode(p + FRAME_LEN_PREFIX, flen, out);
    if (rc < 0)
        return rc;
    return (long)(FRAME_LEN_PREFIX + flen);
}

size_t frame_put_prefix(uint8_t *dst, size_t frame_len)
{
    put_u32(dst, (uint32_t)frame_len);
    return FRAME_LEN_PREFIX;
}
