/*
 * test_ctl: the JSON control messages. Every message survives encode + parse
 * unchanged; every malformed message is refused with -EINVAL (or
 * -EPROTONOSUPPORT for another version) and an error text that names the
 * offending field; a refused parse leaves the output untouched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ctl.h"

static char err[256];

static int hello(const char *json, struct ctl_hello *h)
{
    err[0] = 0;
    return ctl_hello_parse(json, strlen(json), h, err, sizeof err);
}

static int server(const char *json, struct ctl_server *s)
{
    err[0] = 0;
    return ctl_server_parse(json, strlen(json), s, err, sizeof err);
}

static int err_has(const char *needle)
{
    if (strstr(err, needle))
        return 1;
    fprintf(stderr, "  error text \"%s\" lacks \"%s\"\n", err, needle);
    return 0;
}

/* A string of n copies of c (n < 1024). */
static const char *rep(char c, size_t n)
{
    static char s[1024];
    memset(s, c, n);
    s[n] = 0;
    return s;
}

/* ---- round trips --------------------------------------------------------- */

static void test_hello_round_trip(void)
{
    struct ctl_hello in, out;
    memset(&in, 0, sizeof in);
    in.version = CTL_VERSION;
    snprintf(in.kind, sizeof in.kind, "tcp");
    snprintf(in.name, sizeof in.name, "myapp");
    snprintf(in.key, sizeof in.key, "wk_0123456789abcdef");
    snprintf(in.reconnect_token, sizeof in.reconnect_token, "v1.myapp.1700000000.abcDEF-_");
    snprintf(in.client, sizeof in.client, "tunnel/0.1.0 \"quoted\" \\ caf\xc3\xa9\n");
    char *j = ctl_hello_encode(&in);
    CHECK(j != NULL);
    memset(&out, 0x55, sizeof out);
    CHECK_EQ(hello(j, &out), 0);
    CHECK_EQ(out.version, CTL_VERSION);
    CHECK_STR(out.kind, "tcp");
    CHECK_STR(out.name, "myapp");
    CHECK_STR(out.key, "wk_0123456789abcdef");
    CHECK_STR(out.reconnect_token, in.reconnect_token);
    CHECK_STR(out.client, in.client);
    /* it is a hello, not something the CLI would take from an edge */
    struct ctl_server s;
    CHECK_EQ(server(j, &s), -EINVAL);
    CHECK(err_has("\"hello\""));
    free(j);

    /* empty optional fields come back empty, the kind defaults to http */
    memset(&in, 0, sizeof in);
    in.version = CTL_VERSION;
    j = ctl_hello_encode(&in);
    CHECK(j != NULL);
    memset(&out, 0x55, sizeof out);
    CHECK_EQ(hello(j, &out), 0);
    CHECK_STR(out.kind, "http");
    CHECK_STR(out.name, "");
    CHECK_STR(out.key, "");
    CHECK_STR(out.reconnect_token, "");
    CHECK_STR(out.client, "");
    free(j);

    /* every string field at its longest */
    memset(&in, 0, sizeof in);
    in.version = CTL_VERSION;
    snprintf(in.kind, sizeof in.kind, "http");
    memcpy(in.name, rep('n', sizeof in.name - 1), sizeof in.name - 1);
    memcpy(in.key, rep('k', sizeof in.key - 1), sizeof in.key - 1);
    memcpy(in.reconnect_token, rep('t', sizeof in.reconnect_token - 1),
           sizeof in.reconnect_token - 1);
    memcpy(in.client, rep('c', sizeof in.client - 1), sizeof in.client - 1);
    j = ctl_hello_encode(&in);
    CHECK(j != NULL);
    CHECK(strlen(j) <= CTL_MAX_LEN);
    CHECK_EQ(hello(j, &out), 0);
    CHECK(memcmp(&in.name, &out.name, sizeof in.name) == 0);
    CHECK(memcmp(&in.key, &out.key, sizeof in.key) == 0);
    CHECK(memcmp(&in.reconnect_token, &out.reconnect_token, sizeof in.reconnect_token) == 0);
    CHECK(memcmp(&in.client, &out.client, sizeof in.client) == 0);
    free(j);
}

static void test_hello_minimal_and_extra(void)
{
    struct ctl_hello h;
    CHECK_EQ(hello("{\"type\":\"hello\",\"version\":1}", &h), 0);
    CHECK_EQ(h.version, 1);
    CHECK_STR(h.kind, "http");
    CHECK_STR(h.name, "");
    /* unknown fields of any shape are ignored; null means absent */
    CHECK_EQ(hello("{\"version\":1,\"future\":{\"a\":[1,2,{\"b\":null}]},\"type\":\"hello\","
                   "\"name\":null,\"key\":null,\"kind\":\"tcp\",\"x\":\"\\u0000\"}",
                   &h),
             0);
    CHECK_STR(h.kind, "tcp");
    CHECK_STR(h.name, "");
    /* whitespace and escapes */
    CHECK_EQ(
        hello(" {\n\t\"type\" : \"hello\" , \"version\" : 1 , \"name\" : \"a\\u0062\\/c\" }\r\n",
              &h),
        0);
    CHECK_STR(h.name, "ab/c");
}

static void test_welcome_round_trip(void)
{
    struct ctl_server in, out;
    memset(&in, 0, sizeof in);
    in.type = CTL_WELCOME;
    in.version = CTL_VERSION;
    snprintf(in.name, sizeof in.name, "myapp");
    snprintf(in.url, sizeof in.url, "http://myapp.localhost:8080");
    snprintf(in.reconnect_token, sizeof in.reconnect_token, "tok.en");
    in.max_streams = 256;
    in.window = 262144;
    in.max_frame = 32768;
    in.ping_interval = 15;
    in.grace_period = 0x7fffffff;
    char *j = ctl_welcome_encode(&in);
    CHECK(j != NULL);
    memset(&out, 0x55, sizeof out);
    CHECK_EQ(server(j, &out), 0);
    CHECK_EQ(out.type, CTL_WELCOME);
    CHECK_EQ(out.version, CTL_VERSION);
    CHECK_STR(out.name, "myapp");
    CHECK_STR(out.url, "http://myapp.localhost:8080");
    CHECK_STR(out.reconnect_token, "tok.en");
    CHECK_EQ(out.max_streams, 256);
    CHECK_EQ(out.window, 262144);
    CHECK_EQ(out.max_frame, 32768);
    CHECK_EQ(out.ping_interval, 15);
    CHECK_EQ(out.grace_period, 0x7fffffff);
    CHECK_STR(out.code, "");
    CHECK_STR(out.message, "");
    /* the CLI's message is not an edge's hello */
    struct ctl_hello h;
    CHECK_EQ(hello(j, &h), -EINVAL);
    CHECK(err_has("\"hello\"") && err_has("\"welcome\""));
    free(j);

    /* a welcome without limits is fine: they read as 0 (use defaults) */
    CHECK_EQ(
        server("{\"type\":\"welcome\",\"version\":1,\"name\":\"a\",\"url\":\"http://a.b\"}", &out),
        0);
    CHECK_EQ(out.max_streams, 0);
    CHECK_EQ(out.window, 0);
    CHECK_STR(out.reconnect_token, "");
}

static void test_error_round_trip(void)
{
    struct ctl_server out;
    char *j = ctl_error_encode("name_in_use", "the name \"myapp\" is in use\nuntil 12:00");
    CHECK(j != NULL);
    memset(&out, 0x55, sizeof out);
    CHECK_EQ(server(j, &out), 0);
    CHECK_EQ(out.type, CTL_ERROR);
    CHECK_STR(out.code, "name_in_use");
    CHECK_STR(out.message, "the name \"myapp\" is in use\nuntil 12:00");
    CHECK_STR(out.name, "");
    free(j);

    j = ctl_error_encode("auth_failed", "");
    CHECK(j != NULL);
    CHECK_EQ(server(j, &out), 0);
    CHECK_STR(out.code, "auth_failed");
    CHECK_STR(out.message, "");
    free(j);
}

static void test_token_round_trip(void)
{
    struct ctl_server out;
    char *j = ctl_token_encode("v1.name.123.MAC");
    CHECK(j != NULL);
    memset(&out, 0x55, sizeof out);
    CHECK_EQ(server(j, &out), 0);
    CHECK_EQ(out.type, CTL_TOKEN);
    CHECK_STR(out.reconnect_token, "v1.name.123.MAC");
    CHECK_EQ(out.max_streams, 0);
    free(j);
}

/* ---- errors -------------------------------------------------------------- */

/* Refused hello: -EINVAL, out untouched, error text mentions `needle`. */
static void hello_bad(const char *json, const char *needle, int line)
{
    struct ctl_hello h, before;
    memset(&h, 0x5a, sizeof h);
    before = h;
    int r = hello(json, &h);
    if (r != -EINVAL || memcmp(&h, &before, sizeof h) != 0 || !strstr(err, needle))
        fprintf(stderr, "test_ctl.c:%d: hello %.80s -> %d \"%s\" (want \"%s\")\n", line, json, r,
                err, needle);
    CHECK_EQ(r, -EINVAL);
    CHECK(memcmp(&h, &before, sizeof h) == 0);
    CHECK(strstr(err, needle) != NULL);
}

static void server_bad(const char *json, const char *needle, int line)
{
    struct ctl_server s, before;
    memset(&s, 0x5a, sizeof s);
    before = s;
    int r = server(json, &s);
    if (r != -EINVAL || memcmp(&s, &before, sizeof s) != 0 || !strstr(err, needle))
        fprintf(stderr, "test_ctl.c:%d: server %.80s -> %d \"%s\" (want \"%s\")\n", line, json, r,
                err, needle);
    CHECK_EQ(r, -EINVAL);
    CHECK(memcmp(&s, &before, sizeof s) == 0);
    CHECK(strstr(err, needle) != NULL);
}

#define HELLO_BAD(j, n) hello_bad(j, n, __LINE__)
#define SERVER_BAD(j, n) server_bad(j, n, __LINE__)

static void test_not_json(void)
{
    HELLO_BAD("", "not JSON");
    HELLO_BAD("{", "not JSON");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1", "not JSON");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1}x", "not JSON");
    HELLO_BAD("{\"type\":'hello'}", "not JSON");
    HELLO_BAD("{\"type\":\"hel\xff\"}", "not JSON"); /* invalid UTF-8 */
    HELLO_BAD("{\"type\":\"\\ud800\"}", "not JSON"); /* lone surrogate */
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,}", "not JSON");
    HELLO_BAD("{\"type\":\"hello\",\"name\":\"a\nb\",\"version\":1}", "not JSON");
    SERVER_BAD("", "not JSON");
    SERVER_BAD("nul", "not JSON");
    SERVER_BAD("{\"type\":\"token\"", "not JSON");
    /* a NUL byte outside a string */
    struct ctl_hello h;
    static const char withnul[] = "{\"type\":\"hello\",\0\"version\":1}";
    CHECK_EQ(ctl_hello_parse(withnul, sizeof withnul - 1, &h, err, sizeof err), -EINVAL);
}

static void test_not_object(void)
{
    HELLO_BAD("[]", "not a JSON object");
    HELLO_BAD("[{\"type\":\"hello\",\"version\":1}]", "not a JSON object");
    SERVER_BAD("[\"welcome\"]", "not a JSON object");
    /* a bare scalar is not even a JSON text the parser takes */
    HELLO_BAD("\"hello\"", "not JSON");
    HELLO_BAD("1", "not JSON");
    HELLO_BAD("null", "not JSON");
    SERVER_BAD("true", "not JSON");
}

static void test_type_field(void)
{
    HELLO_BAD("{\"version\":1}", "\"hello\"");
    HELLO_BAD("{\"type\":\"welcome\",\"version\":1}", "\"welcome\"");
    HELLO_BAD("{\"type\":\"HELLO\",\"version\":1}", "\"HELLO\"");
    HELLO_BAD("{\"type\":1,\"version\":1}", "field \"type\" must be a string");
    HELLO_BAD("{\"type\":[\"hello\"],\"version\":1}", "field \"type\" must be a string");
    HELLO_BAD("{\"type\":\"hellohellohellohello\",\"version\":1}", "field \"type\" is too long");
    SERVER_BAD("{}", "unknown message type \"\"");
    SERVER_BAD("{\"type\":\"ping\"}", "unknown message type \"ping\"");
    SERVER_BAD("{\"type\":\"hello\",\"version\":1}", "unknown message type \"hello\"");
    SERVER_BAD("{\"type\":{},\"code\":\"x\"}", "field \"type\" must be a string");
}

static void test_field_types(void)
{
    HELLO_BAD("{\"type\":\"hello\",\"version\":\"1\"}", "field \"version\" must be");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1.0}", "field \"version\" must be");
    HELLO_BAD("{\"type\":\"hello\",\"version\":-1}", "field \"version\" must be");
    HELLO_BAD("{\"type\":\"hello\",\"version\":true}", "field \"version\" must be");
    HELLO_BAD("{\"type\":\"hello\",\"version\":null}", "field \"version\" must be");
    HELLO_BAD("{\"type\":\"hello\",\"version\":4294967297}", "field \"version\" must be");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"kind\":1}", "field \"kind\" must be a string");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"name\":1}", "field \"name\" must be a string");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"name\":false}", "field \"name\" must be");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"key\":[]}", "field \"key\" must be a string");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"reconnect_token\":{}}",
              "field \"reconnect_token\" must be a string");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"client\":0.5}",
              "field \"client\" must be a string");

    static const char *w = "{\"type\":\"welcome\",\"version\":1,\"name\":\"a\",";
    char j[512];
    static const struct {
        const char *tail, *needle;
    } wb[] = {
        {"\"url\":7}", "field \"url\" must be a string"},
        {"\"reconnect_token\":[]}", "field \"reconnect_token\" must be a string"},
        {"\"limits\":{\"max_streams\":\"256\"}}", "field \"max_streams\" must be"},
        {"\"limits\":{\"window\":-1}}", "field \"window\" must be"},
        {"\"limits\":{\"max_frame\":1.5}}", "field \"max_frame\" must be"},
        {"\"limits\":{\"ping_interval\":null}}", "field \"ping_interval\" must be"},
        {"\"limits\":{\"grace_period\":2147483648}}", "field \"grace_period\" must be"},
        {"\"limits\":5}", "field \"limits\" must be an object"},
        {"\"limits\":[1,2]}", "field \"limits\" must be an object"},
        {"\"limits\":\"none\"}", "field \"limits\" must be an object"},
    };
    for (size_t i = 0; i < sizeof wb / sizeof wb[0]; i++) {
        snprintf(j, sizeof j, "%s%s", w, wb[i].tail);
        server_bad(j, wb[i].needle, __LINE__);
    }
    SERVER_BAD("{\"type\":\"welcome\",\"version\":1,\"name\":5}", "field \"name\" must be");
    SERVER_BAD("{\"type\":\"welcome\",\"version\":\"1\",\"name\":\"a\"}",
               "field \"version\" must be");
    SERVER_BAD("{\"type\":\"error\",\"code\":5}", "field \"code\" must be a string");
    SERVER_BAD("{\"type\":\"error\",\"code\":\"x\",\"message\":{}}",
               "field \"message\" must be a string");
    SERVER_BAD("{\"type\":\"token\",\"reconnect_token\":1}",
               "field \"reconnect_token\" must be a string");

    /* the bounds of the limits */
    struct ctl_server s;
    snprintf(j, sizeof j, "%s\"limits\":{\"window\":2147483647,\"max_streams\":0}}", w);
    CHECK_EQ(server(j, &s), 0);
    CHECK_EQ(s.window, 2147483647);
    snprintf(j, sizeof j, "%s\"limits\":null}", w);
    CHECK_EQ(server(j, &s), 0);
    CHECK_EQ(s.window, 0);
}

/* Field `f` of a hello at length cap - 1 (accepted) and cap (refused). */
static void hello_len(const char *f, size_t cap, int line)
{
    char j[2048];
    struct ctl_hello h;
    snprintf(j, sizeof j, "{\"type\":\"hello\",\"version\":1,\"%s\":\"%s\"}", f, rep('a', cap - 1));
    if (strcmp(f, "kind") != 0) {
        int r = hello(j, &h);
        if (r != 0)
            fprintf(stderr, "test_ctl.c:%d: %s at %zu bytes refused: %s\n", line, f, cap - 1, err);
        CHECK_EQ(r, 0);
    }
    snprintf(j, sizeof j, "{\"type\":\"hello\",\"version\":1,\"%s\":\"%s\"}", f, rep('a', cap));
    char needle[64];
    snprintf(needle, sizeof needle, "field \"%s\" is too long", f);
    hello_bad(j, needle, line);
}

static void server_len(const char *type, const char *f, size_t cap, int line)
{
    char j[2048];
    struct ctl_server s;
    /* the field a welcome / an error cannot do without, unless it is the one tested */
    const char *extra = "";
    if (strcmp(type, "welcome") == 0 && strcmp(f, "name") != 0)
        extra = ",\"name\":\"n\"";
    if (strcmp(type, "error") == 0 && strcmp(f, "code") != 0)
        extra = ",\"code\":\"c\"";
    snprintf(j, sizeof j, "{\"type\":\"%s\",\"version\":1%s,\"%s\":\"%s\"}", type, extra, f,
             rep('a', cap - 1));
    int r = server(j, &s);
    if (r != 0)
        fprintf(stderr, "test_ctl.c:%d: %s at %zu bytes refused: %s\n", line, f, cap - 1, err);
    CHECK_EQ(r, 0);
    snprintf(j, sizeof j, "{\"type\":\"%s\",\"version\":1%s,\"%s\":\"%s\"}", type, extra, f,
             rep('a', cap));
    char needle[64];
    snprintf(needle, sizeof needle, "field \"%s\" is too long", f);
    server_bad(j, needle, line);
}

static void test_long_fields(void)
{
    struct ctl_hello h;
    struct ctl_server s;
    hello_len("kind", sizeof h.kind, __LINE__);
    hello_len("name", sizeof h.name, __LINE__);
    hello_len("key", sizeof h.key, __LINE__);
    hello_len("reconnect_token", sizeof h.reconnect_token, __LINE__);
    hello_len("client", sizeof h.client, __LINE__);
    server_len("welcome", "name", sizeof s.name, __LINE__);
    server_len("welcome", "url", sizeof s.url, __LINE__);
    server_len("welcome", "reconnect_token", sizeof s.reconnect_token, __LINE__);
    server_len("error", "code", sizeof s.code, __LINE__);
    server_len("error", "message", sizeof s.message, __LINE__);
    server_len("token", "reconnect_token", sizeof s.reconnect_token, __LINE__);
    /* length counts bytes, not characters: 128 two-byte characters > 255 */
    char j[1024];
    size_t n = (size_t)snprintf(j, sizeof j, "{\"type\":\"hello\",\"version\":1,\"name\":\"");
    for (int i = 0; i < 128; i++)
        n += (size_t)snprintf(j + n, sizeof j - n, "\xc3\xa9");
    snprintf(j + n, sizeof j - n, "\"}");
    HELLO_BAD(j, "field \"name\" is too long");
}

static void test_nul_in_strings(void)
{
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"name\":\"my\\u0000app\"}",
              "field \"name\" contains a NUL byte");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"key\":\"\\u0000\"}",
              "field \"key\" contains a NUL byte");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"kind\":\"tcp\\u0000\"}",
              "field \"kind\" contains a NUL byte");
    HELLO_BAD("{\"type\":\"hello\\u0000\",\"version\":1}", "field \"type\" contains a NUL byte");
    SERVER_BAD("{\"type\":\"error\",\"code\":\"x\",\"message\":\"a\\u0000b\"}",
               "field \"message\" contains a NUL byte");
    SERVER_BAD("{\"type\":\"token\",\"reconnect_token\":\"t\\u0000\"}",
               "field \"reconnect_token\" contains a NUL byte");
    /* a NUL inside a key is refused by the JSON layer */
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"na\\u0000me\":\"x\"}", "not JSON");
}

static void test_version(void)
{
    HELLO_BAD("{\"type\":\"hello\"}", "field \"version\" is missing");
    HELLO_BAD("{\"type\":\"hello\",\"name\":\"a\"}", "\"version\"");

    struct ctl_hello h;
    memset(&h, 0x5a, sizeof h);
    CHECK_EQ(hello("{\"type\":\"hello\",\"version\":2,\"name\":\"myapp\"}", &h), -EPROTONOSUPPORT);
    CHECK_EQ(h.version, 2);
    CHECK_STR(h.name, "myapp");
    CHECK_STR(h.kind, "http");
    CHECK(err_has("version 2"));
    memset(&h, 0x5a, sizeof h);
    CHECK_EQ(hello("{\"type\":\"hello\",\"version\":0}", &h), -EPROTONOSUPPORT);
    CHECK_EQ(h.version, 0);
    CHECK_EQ(hello("{\"type\":\"hello\",\"version\":2147483647}", &h), -EPROTONOSUPPORT);
    CHECK_EQ(h.version, 2147483647u);
    /* the encoder carries another version through */
    h.version = 7;
    char *j = ctl_hello_encode(&h);
    CHECK(j != NULL);
    memset(&h, 0, sizeof h);
    CHECK_EQ(hello(j, &h), -EPROTONOSUPPORT);
    CHECK_EQ(h.version, 7);
    free(j);
}

static void test_kind(void)
{
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"kind\":\"udp\"}", "field \"kind\"");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"kind\":\"HTTP\"}", "field \"kind\"");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"kind\":\"http \"}", "field \"kind\"");
    /* a bad kind is refused even with another version */
    HELLO_BAD("{\"type\":\"hello\",\"version\":2,\"kind\":\"ws\"}", "field \"kind\"");
    struct ctl_hello h;
    CHECK_EQ(hello("{\"type\":\"hello\",\"version\":1,\"kind\":\"\"}", &h), 0);
    CHECK_STR(h.kind, "http");
    CHECK_EQ(hello("{\"type\":\"hello\",\"version\":1,\"kind\":null}", &h), 0);
    CHECK_STR(h.kind, "http");
}

static void test_required_fields(void)
{
    SERVER_BAD("{\"type\":\"welcome\",\"version\":1,\"url\":\"http://x\"}", "without a name");
    SERVER_BAD("{\"type\":\"welcome\",\"version\":1,\"name\":\"\"}", "without a name");
    SERVER_BAD("{\"type\":\"error\",\"message\":\"m\"}", "without a code");
    SERVER_BAD("{\"type\":\"error\",\"code\":\"\"}", "without a code");
}

static void test_max_len(void)
{
    /* exactly CTL_MAX_LEN bytes (padded with spaces) is accepted, one more is not */
    static char j[CTL_MAX_LEN + 2];
    const char *base = "{\"type\":\"hello\",\"version\":1}";
    size_t bl = strlen(base);
    memset(j, ' ', sizeof j);
    memcpy(j, base, bl);
    struct ctl_hello h;
    CHECK_EQ(ctl_hello_parse(j, CTL_MAX_LEN, &h, err, sizeof err), 0);
    memset(&h, 0x5a, sizeof h);
    CHECK_EQ(ctl_hello_parse(j, CTL_MAX_LEN + 1, &h, err, sizeof err), -EINVAL);
    CHECK(err_has("too long"));
    CHECK_EQ(h.version, 0x5a5a5a5au);
    struct ctl_server s;
    const char *tb = "{\"type\":\"token\",\"reconnect_token\":\"x\"}";
    memset(j, ' ', sizeof j);
    memcpy(j, tb, strlen(tb));
    CHECK_EQ(ctl_server_parse(j, CTL_MAX_LEN, &s, err, sizeof err), 0);
    CHECK_EQ(ctl_server_parse(j, CTL_MAX_LEN + 1, &s, err, sizeof err), -EINVAL);
    CHECK(err_has("too long"));
}

static void test_duplicate_keys(void)
{
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"name\":\"a\",\"name\":\"b\"}", "duplicate");
    HELLO_BAD("{\"type\":\"hello\",\"version\":1,\"version\":1}", "duplicate");
    HELLO_BAD("{\"type\":\"hello\",\"type\":\"hello\",\"version\":1}", "duplicate");
    SERVER_BAD("{\"type\":\"error\",\"code\":\"a\",\"code\":\"b\"}", "duplicate");
    SERVER_BAD("{\"type\":\"welcome\",\"name\":\"a\",\"limits\":{\"window\":1,\"window\":2}}",
               "duplicate");
    /* the duplicated name is shown */
    struct ctl_hello h;
    CHECK_EQ(hello("{\"type\":\"hello\",\"version\":1,\"key\":\"a\",\"key\":\"b\"}", &h), -EINVAL);
    CHECK(err_has("\"key\""));
}

static void test_bounds_of_input(void)
{
    /* only len bytes are read: no NUL terminator needed, bytes after len ignored */
    const char *j = "{\"type\":\"token\",\"reconnect_token\":\"abc\"}GARBAGE";
    size_t len = strlen(j) - strlen("GARBAGE");
    struct ctl_server s;
    CHECK_EQ(ctl_server_parse(j, len, &s, err, sizeof err), 0);
    CHECK_STR(s.reconnect_token, "abc");
    char *heap = malloc(len);
    CHECK(heap != NULL);
    if (heap) {
        memcpy(heap, j, len);
        CHECK_EQ(ctl_server_parse(heap, len, &s, err, sizeof err), 0);
        CHECK_EQ(ctl_server_parse(heap, len - 1, &s, err, sizeof err), -EINVAL);
        free(heap);
    }
    /* a short error buffer still gets a terminated message */
    char small[12];
    memset(small, 'x', sizeof small);
    struct ctl_hello h;
    const char *bad = "{\"type\":\"hello\",\"version\":1,\"name\":7}";
    CHECK_EQ(ctl_hello_parse(bad, strlen(bad), &h, small, sizeof small), -EINVAL);
    CHECK(memchr(small, 0, sizeof small) != NULL);
    CHECK(strncmp(small, "field \"name", sizeof small - 1) == 0);
}

/* An error text is logged by the edge (and the CLI): it never quotes the
 * input, which may hold a key or a token (jansson quotes a short offending
 * token as " near '...'"). */
static void test_error_quotes_nothing(void)
{
    static const char *const bad[] = {
        "{\"type\":\"hello\",\"version\":1,\"key\":\"k\" \"wk_SECRET17x\"}",
        "{\"type\":\"hello\",\"version\":1,\"key\":wk_SECRET17x}",
        "{\"type\":\"hello\",\"version\":1,\"key\":[\"a\" \"wk_SECRET17x\"]}",
        "{\"type\":\"token\",\"reconnect_token\":\"t\" \"wk_SECRET17x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ctl_hello h;
        struct ctl_server sv;
        err[0] = 0;
        CHECK_EQ(ctl_hello_parse(bad[i], strlen(bad[i]), &h, err, sizeof err), -EINVAL);
        CHECK(strstr(err, "not JSON") && !strstr(err, "SECRET") && !strstr(err, "near"));
        err[0] = 0;
        CHECK_EQ(ctl_server_parse(bad[i], strlen(bad[i]), &sv, err, sizeof err), -EINVAL);
        CHECK(strstr(err, "not JSON") && !strstr(err, "SECRET"));
    }
}

int main(void)
{
    test_error_quotes_nothing();
    test_hello_round_trip();
    test_hello_minimal_and_extra();
    test_welcome_round_trip();
    test_error_round_trip();
    test_token_round_trip();
    test_not_json();
    test_not_object();
    test_type_field();
    test_field_types();
    test_long_fields();
    test_nul_in_strings();
    test_version();
    test_kind();
    test_required_fields();
    test_max_len();
    test_duplicate_keys();
    test_bounds_of_input();
    return check_done();
}
