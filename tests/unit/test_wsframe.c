/* wsframe: frames built by the batcher parse back to the same payloads, split
 * at every byte boundary; every protocol violation has its close code; the
 * opening handshake is checked against the RFC 6455 example. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "wsframe.h"

struct sink {
    unsigned n;
    uint8_t op[64];
    size_t len[64];
    uint8_t data[64][70000];
};

static int collect(void *ud, uint8_t opcode, const uint8_t *p, size_t len)
{
    struct sink *s = ud;
    if (s->n < 64) {
        s->op[s->n] = opcode;
        s->len[s->n] = len;
        memcpy(s->data[s->n], p, len);
    }
    s->n++;
    return 0;
}

struct src {
    unsigned i, n;
    size_t sizes[8];
};

static size_t produce(void *ud, uint8_t *out, size_t cap)
{
    struct src *s = ud;
    if (s->i >= s->n)
        return 0;
    size_t n = s->sizes[s->i] < cap ? s->sizes[s->i] : cap;
    for (size_t k = 0; k < n; k++)
        out[k] = (uint8_t)(k * 7 + s->i);
    s->i++;
    return n;
}

/* Unmask a client batch in place (as a server would) for re-parsing. */
static void test_batch_roundtrip(bool masked)
{
    static uint8_t out[300000];
    static struct sink sink;
    struct wsmask m;
    memset(&m, 0, sizeof m);
    struct src src = {0, 5, {1, 125, 126, 65535, 300}};
    size_t n = wsframe_batch(out, sizeof out, 65535, masked ? &m : NULL, produce, &src);
    CHECK_EQ(src.i, 5);
    CHECK_EQ(n, (1 + 2) + (125 + 2) + (126 + 4) + (65535 + 4) + (300 + 4) + (masked ? 20 : 0));
    /* every split point of the first 400 bytes, and a few large ones */
    for (size_t cut = 0; cut < n; cut += (cut < 400 ? 1 : 9973)) {
        memset(&sink, 0, sizeof sink);
        wsparse *w = wsparse_new(masked, 70000);
        bool inplace = cut & 1; /* odd cuts: unmask in a copy, in place */
        static uint8_t copy[300000];
        memcpy(copy, out, n);
        if (inplace) {
            CHECK_EQ(wsparse_feed_inplace(w, copy, cut, collect, &sink), 0);
            CHECK_EQ(wsparse_feed_inplace(w, copy + cut, n - cut, collect, &sink), 0);
        } else {
            CHECK_EQ(wsparse_feed(w, out, cut, collect, &sink), 0);
            CHECK_EQ(wsparse_feed(w, out + cut, n - cut, collect, &sink), 0);
        }
        wsparse_free(w);
        CHECK_EQ(sink.n, 5);
        for (unsigned i = 0; i < 5 && i < sink.n; i++) {
            CHECK_EQ(sink.op[i], WS_BINARY);
            CHECK_EQ(sink.len[i], src.sizes[i]);
            bool same = true;
            for (size_t k = 0; k < sink.len[i]; k++)
                same = same && sink.data[i][k] == (uint8_t)(k * 7 + i);
            CHECK(same);
        }
    }
    /* masks differ from frame to frame */
    if (masked)
        CHECK(memcmp(out + 2, out + 9, 4) != 0); /* frame 1: 2+4+1 bytes; frame 2 key at 9 */
}

static void test_batch_stops_when_full(void)
{
    uint8_t out[1000];
    struct src src = {0, 3, {600, 600, 600}};
    size_t n = wsframe_batch(out, sizeof out, 600, NULL, produce, &src);
    CHECK_EQ(src.i, 1); /* a second 600-byte frame would not fit */
    CHECK_EQ(n, 604);
}

static int feed_all(bool masked, const uint8_t *p, size_t n, struct sink *s)
{
    wsparse *w = wsparse_new(masked, 1000);
    int r = wsparse_feed(w, p, n, collect, s);
    wsparse_free(w);
    return r;
}

static void test_violations(void)
{
    static struct sink s;
    struct {
        const char *name;
        uint8_t b[16];
        size_t n;
        int want;
    } v[] = {
        {"rsv1", {0xc2, 0x00}, 2, -WS_CLOSE_PROTOCOL},
        {"opcode 3", {0x83, 0x00}, 2, -WS_CLOSE_PROTOCOL},
        {"opcode 0xb", {0x8b, 0x00}, 2, -WS_CLOSE_PROTOCOL},
        {"masked from server", {0x82, 0x81, 1, 2, 3, 4, 0}, 7, -WS_CLOSE_PROTOCOL},
        {"fragmented ping", {0x09, 0x00}, 2, -WS_CLOSE_PROTOCOL},
        {"long ping", {0x89, 0x7e, 0x00, 0x7e}, 4, -WS_CLOSE_PROTOCOL},
        {"non-minimal 16", {0x82, 0x7e, 0x00, 0x05}, 4, -WS_CLOSE_PROTOCOL},
        {"non-minimal 64", {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0x01, 0x00}, 10, -WS_CLOSE_PROTOCOL},
        {"64-bit top bit", {0x82, 0x7f, 0x80, 0, 0, 0, 0, 1, 0, 0}, 10, -WS_CLOSE_PROTOCOL},
        {"too big", {0x82, 0x7e, 0x03, 0xe9}, 4, -WS_CLOSE_TOO_BIG},
        {"continuation first", {0x80, 0x00}, 2, -WS_CLOSE_PROTOCOL},
        {"text inside fragmented", {0x02, 0x01, 'a', 0x81, 0x01, 'b'}, 6, -WS_CLOSE_PROTOCOL},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        memset(&s, 0, sizeof s);
        int r = feed_all(false, v[i].b, v[i].n, &s);
        if (r != v[i].want)
            fprintf(stderr, "vector %s: got %d\n", v[i].name, r);
        CHECK_EQ(r, v[i].want);
        CHECK_EQ(s.n, 0);
    }
    /* a client frame without a mask, read by a server */
    memset(&s, 0, sizeof s);
    uint8_t unmasked[] = {0x82, 0x01, 'x'};
    CHECK_EQ(feed_all(true, unmasked, sizeof unmasked, &s), -WS_CLOSE_PROTOCOL);
}

static void test_fragments_and_control(void)
{
    static struct sink s;
    memset(&s, 0, sizeof s);
    /* "he" + ping("p") + "llo" as text fragments, then an empty close */
    uint8_t b[] = {0x01, 0x02, 'h', 'e', 0x89, 0x01, 'p', 0x80, 0x03, 'l', 'l', 'o', 0x88, 0x00};
    for (size_t cut = 0; cut <= sizeof b; cut++) {
        memset(&s, 0, sizeof s);
        wsparse *w = wsparse_new(false, 1000);
        CHECK_EQ(wsparse_feed(w, b, cut, collect, &s), 0);
        CHECK_EQ(wsparse_feed(w, b + cut, sizeof b - cut, collect, &s), 0);
        wsparse_free(w);
        CHECK_EQ(s.n, 3);
        CHECK_EQ(s.op[0], WS_PING);
        CHECK_EQ(s.len[0], 1);
        CHECK_EQ(s.op[1], WS_TEXT);
        CHECK_EQ(s.len[1], 5);
        CHECK(memcmp(s.data[1], "hello", 5) == 0);
        CHECK_EQ(s.op[2], WS_CLOSE);
        CHECK_EQ(s.len[2], 0);
    }
    /* masked (server side) with the RFC 6455 5.7 example: "Hello" */
    uint8_t m[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    memset(&s, 0, sizeof s);
    CHECK_EQ(feed_all(true, m, sizeof m, &s), 0);
    CHECK_EQ(s.n, 1);
    CHECK(s.len[0] == 5 && memcmp(s.data[0], "Hello", 5) == 0);
}

static void test_handshake(void)
{
    /* RFC 6455 section 1.3's example key and accept */
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    char err[200];
    int status;
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "Sec-WebSocket-Protocol: warren-tunnel\r\n\r\n";
    CHECK_EQ(wshs_head_end((const uint8_t *)ok, strlen(ok)), (long)strlen(ok));
    CHECK_EQ(wshs_head_end((const uint8_t *)ok, strlen(ok) - 1), 0);
    CHECK_EQ(wshs_check_response((const uint8_t *)ok, strlen(ok), key, "warren-tunnel", &status,
                                 err, sizeof err),
             0);
    CHECK_EQ(status, 101);
    const char *bad_accept = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
    CHECK(wshs_check_response((const uint8_t *)bad_accept, strlen(bad_accept), key, "warren-tunnel",
                              &status, err, sizeof err) < 0);
    CHECK(strstr(err, "Accept") != NULL);
    const char *busy = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\r\n";
    CHECK(wshs_check_response((const uint8_t *)busy, strlen(busy), key, "warren-tunnel", &status,
                              err, sizeof err) < 0);
    CHECK_EQ(status, 429);
    CHECK(strstr(err, "429 Too Many Requests") != NULL);
    const char *other = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                        "Sec-WebSocket-Protocol: chat\r\n\r\n";
    CHECK(wshs_check_response((const uint8_t *)other, strlen(other), key, "warren-tunnel", &status,
                              err, sizeof err) < 0);
    CHECK(wshs_check_response((const uint8_t *)"garbage\r\n\r\n", 11, key, "x", &status, err,
                              sizeof err) < 0);
    CHECK_EQ(status, 0);
    static uint8_t big[WSHS_HEAD_MAX];
    memset(big, 'a', sizeof big);
    CHECK_EQ(wshs_head_end(big, sizeof big), -EMSGSIZE);
    char req[512], k[WSHS_KEY_LEN + 1], k2[WSHS_KEY_LEN + 1];
    wshs_new_key(k);
    wshs_new_key(k2);
    CHECK_EQ(strlen(k), WSHS_KEY_LEN);
    CHECK(strcmp(k, k2) != 0);
    size_t n = wshs_request(req, sizeof req, "/tunnel", "edge.example:8080", k, "warren-tunnel");
    CHECK(n > 0 && strstr(req, "Host: edge.example:8080\r\n") && strstr(req, k));
    CHECK_EQ(wshs_request(req, 20, "/", "h", k, "p"), 0);
    /* the server side: the accept value for RFC 6455's example key */
    char acc[29];
    CHECK_EQ(wshs_accept(key, strlen(key), acc), 0);
    CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK_EQ(wshs_accept("", 0, acc), -EINVAL);
    CHECK(wshs_list_has("chat, Warren-Tunnel ,x", 22, "warren-tunnel"));
    CHECK(!wshs_list_has("chat, warren-tunnelx", 20, "warren-tunnel"));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_batch_roundtrip(false);
    test_batch_roundtrip(true);
    test_batch_stops_when_full();
    test_violations();
    test_fragments_and_control();
    test_handshake();
    return check_done();
}
