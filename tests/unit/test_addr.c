/*
 * test_addr: listener address text. IPv4, bracketed IPv6 and the wildcard
 * forms parse to the right family, address and port; everything else
 * (names, unbracketed IPv6, bad ports, stray bytes) is refused without
 * touching the output; formatting gives back text that parses to the same
 * address, with IPv4-mapped IPv6 shown as IPv4.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"
#include "check.h"

static int parse(const char *s, struct sockaddr_storage *ss, socklen_t *len, int allow0)
{
    return addr_parse(s, strlen(s), ss, len, allow0);
}

static const struct sockaddr_in *v4(const struct sockaddr_storage *ss)
{
    return (const struct sockaddr_in *)ss;
}

static const struct sockaddr_in6 *v6(const struct sockaddr_storage *ss)
{
    return (const struct sockaddr_in6 *)ss;
}

static const char *fmt(const struct sockaddr_storage *ss)
{
    static char out[ADDR_TEXT_MAX];
    addr_format((const struct sockaddr *)ss, out, sizeof out);
    return out;
}

static void test_ipv4(void)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    memset(&ss, 0xaa, sizeof ss);
    CHECK_EQ(parse("127.0.0.1:8080", &ss, &len, 0), 0);
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK_EQ(len, sizeof(struct sockaddr_in));
    CHECK_EQ(ntohl(v4(&ss)->sin_addr.s_addr), 0x7f000001);
    CHECK_EQ(ntohs(v4(&ss)->sin_port), 8080);
    CHECK_EQ(addr_port((const struct sockaddr *)&ss), 8080);
    CHECK_STR(fmt(&ss), "127.0.0.1:8080");
    /* the rest of the storage is zeroed, not left as it was */
    CHECK_EQ(((const unsigned char *)&ss)[sizeof ss - 1], 0);

    CHECK_EQ(parse("0.0.0.0:1", &ss, &len, 0), 0);
    CHECK_EQ(v4(&ss)->sin_addr.s_addr, 0);
    CHECK_EQ(addr_port((const struct sockaddr *)&ss), 1);
    CHECK_EQ(parse("255.255.255.255:65535", &ss, &len, 0), 0);
    CHECK_EQ(ntohl(v4(&ss)->sin_addr.s_addr), 0xffffffff);
    CHECK_EQ(addr_port((const struct sockaddr *)&ss), 65535);
    CHECK_STR(fmt(&ss), "255.255.255.255:65535");
    CHECK_EQ(parse("10.0.0.7:00443", &ss, &len, 0), 0);
    CHECK_EQ(addr_port((const struct sockaddr *)&ss), 443);
}

static void test_ipv6(void)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    CHECK_EQ(parse("[::1]:443", &ss, &len, 0), 0);
    CHECK_EQ(ss.ss_family, AF_INET6);
    CHECK_EQ(len, sizeof(struct sockaddr_in6));
    CHECK(IN6_IS_ADDR_LOOPBACK(&v6(&ss)->sin6_addr));
    CHECK_EQ(ntohs(v6(&ss)->sin6_port), 443);
    CHECK_EQ(v6(&ss)->sin6_scope_id, 0);
    CHECK_EQ(v6(&ss)->sin6_flowinfo, 0);
    CHECK_STR(fmt(&ss), "[::1]:443");

    CHECK_EQ(parse("[fdaa:0:1::3]:8080", &ss, &len, 0), 0);
    CHECK_STR(fmt(&ss), "[fdaa:0:1::3]:8080");
    CHECK_EQ(parse("[2001:DB8::A]:1", &ss, &len, 0), 0);
    CHECK_STR(fmt(&ss), "[2001:db8::a]:1");
    CHECK_EQ(parse("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", &ss, &len, 0), 0);
    CHECK_STR(fmt(&ss), "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    /* IPv4-mapped: stays AF_INET6 but shows as IPv4 */
    CHECK_EQ(parse("[::ffff:192.0.2.1]:80", &ss, &len, 0), 0);
    CHECK_EQ(ss.ss_family, AF_INET6);
    CHECK_STR(fmt(&ss), "192.0.2.1:80");
}

static void test_wildcard(void)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    const char *forms[] = {"*:8080", ":8080"};
    for (int i = 0; i < 2; i++) {
        memset(&ss, 0xaa, sizeof ss);
        len = 0;
        CHECK_EQ(parse(forms[i], &ss, &len, 0), 0);
        /* all IPv4 and IPv6 interfaces: the IPv6 any address (dual stack) */
        CHECK_EQ(ss.ss_family, AF_INET6);
        CHECK_EQ(len, sizeof(struct sockaddr_in6));
        CHECK(IN6_IS_ADDR_UNSPECIFIED(&v6(&ss)->sin6_addr));
        CHECK_EQ(addr_port((const struct sockaddr *)&ss), 8080);
        CHECK_STR(fmt(&ss), "[::]:8080");
    }
}

static void test_ports(void)
{
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(parse("127.0.0.1:0", &ss, &len, 0), -EINVAL);
    CHECK_EQ(parse("127.0.0.1:0", &ss, &len, 1), 0);
    CHECK_EQ(addr_port((const struct sockaddr *)&ss), 0);
    CHECK_EQ(parse("[::1]:0", &ss, &len, 0), -EINVAL);
    CHECK_EQ(parse("[::1]:0", &ss, &len, 1), 0);
    CHECK_EQ(parse(":0", &ss, &len, 0), -EINVAL);
    CHECK_EQ(parse("*:00000", &ss, &len, 1), 0);
    CHECK_EQ(parse("127.0.0.1:1", &ss, &len, 0), 0);
    CHECK_EQ(parse("127.0.0.1:65535", &ss, &len, 0), 0);
    const char *bad[] = {
        "127.0.0.1:65536",
        "127.0.0.1:99999",
        "127.0.0.1:100000",
        "127.0.0.1:000080",
        "127.0.0.1:",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:8a",
        "127.0.0.1: 80",
        "127.0.0.1:80 ",
        "127.0.0.1:0x50",
        "[::1]:65536",
        "[::1]:",
        "*:",
        ":",
        "*:http",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = parse(bad[i], &ss, &len, 1);
        if (r != -EINVAL)
            fprintf(stderr, "  \"%s\" accepted\n", bad[i]);
        CHECK_EQ(r, -EINVAL);
    }
}

static void test_garbage(void)
{
    const char *bad[] = {
        "",
        "127.0.0.1",
        "localhost:80",
        "example.com:443",
        "::1:80",
        "::1",
        "[::1]",
        "[::1]80",
        "[::1]:80]",
        "[::1:80",
        "::1]:80",
        "[]:80",
        "[1.2.3.4]:80",
        "[localhost]:80",
        "[fe80::1%lo]:80",
        "[[::1]]:80",
        "1.2.3:80",
        "1.2.3.4.5:80",
        "1.2.3.256:80",
        "01.2.3.4:80",
        "1.2.3.4 :80",
        " 1.2.3.4:80",
        "1.2.3.4:80:80",
        "**:80",
        "*.*:80",
        "a*:80",
        "0:80",
        "[*]:80",
        "127.0.0.1:80\n",
    };
    struct sockaddr_storage ss, before;
    socklen_t len = 77;
    memset(&ss, 0xaa, sizeof ss);
    before = ss;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = parse(bad[i], &ss, &len, 1);
        if (r != -EINVAL)
            fprintf(stderr, "  \"%s\" accepted\n", bad[i]);
        CHECK_EQ(r, -EINVAL);
    }
    /* a refused text leaves the outputs alone */
    CHECK(memcmp(&ss, &before, sizeof ss) == 0);
    CHECK_EQ(len, 77);

    /* NUL bytes inside the text are refused, not read as its end */
    static const char nul4[] = "127.0.0.1\0junk:80", nul6[] = "[::1\0junk]:80",
                      nulport[] = "127.0.0.1:8\0";
    CHECK_EQ(addr_parse(nul4, sizeof nul4 - 1, &ss, &len, 0), -EINVAL);
    CHECK_EQ(addr_parse(nul6, sizeof nul6 - 1, &ss, &len, 0), -EINVAL);
    CHECK_EQ(addr_parse(nulport, sizeof nulport - 1, &ss, &len, 0), -EINVAL);
    CHECK(memcmp(&ss, &before, sizeof ss) == 0);

    /* overlong texts and hosts */
    char lng[200];
    memset(lng, '1', sizeof lng);
    memcpy(lng + sizeof lng - 3, ":80", 3);
    CHECK_EQ(addr_parse(lng, sizeof lng, &ss, &len, 0), -EINVAL);
    memcpy(lng + 70, ":80", 3);
    CHECK_EQ(addr_parse(lng, 73, &ss, &len, 0), -EINVAL);
    memset(lng, '0', sizeof lng);
    lng[0] = '[';
    memcpy(lng + 66, "::1]:80", 7); /* a valid IPv6 text, 68 bytes long */
    CHECK_EQ(addr_parse(lng, 73, &ss, &len, 0), -EINVAL);
    CHECK(memcmp(&ss, &before, sizeof ss) == 0);
    /* zero length: nothing is read */
    CHECK_EQ(addr_parse(NULL, 0, &ss, &len, 0), -EINVAL);
}

static void test_length_bound(void)
{
    /* only len bytes are read */
    struct sockaddr_storage ss;
    socklen_t len;
    const char *s = "10.1.2.3:8080xyz";
    CHECK_EQ(addr_parse(s, 13, &ss, &len, 0), 0);
    CHECK_EQ(addr_port((const struct sockaddr *)&ss), 8080);
    CHECK_EQ(addr_parse(s, 10, &ss, &len, 0), 0);
    CHECK_EQ(addr_port((const struct sockaddr *)&ss), 8);
    CHECK_EQ(addr_parse(s, 9, &ss, &len, 0), -EINVAL);
    const char *s6 = "[::1]:443]";
    CHECK_EQ(addr_parse(s6, 9, &ss, &len, 0), 0);
    CHECK_EQ(addr_port((const struct sockaddr *)&ss), 443);
    CHECK_EQ(addr_parse(s6, 5, &ss, &len, 0), -EINVAL);
}

static void test_format(void)
{
    char out[ADDR_TEXT_MAX];
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "203.0.113.9", &s4.sin_addr);
    addr_format((const struct sockaddr *)&s4, out, sizeof out);
    CHECK_STR(out, "203.0.113.9:80");
    addr_format_ip((const struct sockaddr *)&s4, out, sizeof out);
    CHECK_STR(out, "203.0.113.9");

    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(65535)};
    inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
    addr_format((const struct sockaddr *)&s6, out, sizeof out);
    CHECK_STR(out, "[2001:db8::1]:65535");
    addr_format_ip((const struct sockaddr *)&s6, out, sizeof out);
    CHECK_STR(out, "2001:db8::1");
    CHECK_EQ(addr_port((const struct sockaddr *)&s6), 65535);

    /* IPv4-mapped IPv6 (what a dual-stack listener reports for IPv4 peers) */
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
    s6.sin6_port = htons(5000);
    addr_format((const struct sockaddr *)&s6, out, sizeof out);
    CHECK_STR(out, "10.1.2.3:5000");
    addr_format_ip((const struct sockaddr *)&s6, out, sizeof out);
    CHECK_STR(out, "10.1.2.3");
    /* IPv4-compatible (deprecated) and NAT64 addresses are not mapped ones */
    inet_pton(AF_INET6, "64:ff9b::10.1.2.3", &s6.sin6_addr);
    addr_format_ip((const struct sockaddr *)&s6, out, sizeof out);
    CHECK_STR(out, "64:ff9b::a01:203");
    inet_pton(AF_INET6, "::", &s6.sin6_addr);
    addr_format((const struct sockaddr *)&s6, out, sizeof out);
    CHECK_STR(out, "[::]:5000");

    /* the longest text fits ADDR_TEXT_MAX */
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", &s6.sin6_addr);
    s6.sin6_port = htons(65535);
    addr_format((const struct sockaddr *)&s6, out, sizeof out);
    CHECK_STR(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
    inet_pton(AF_INET6, "1111:2222:3333:4444:5555:6666:123.123.123.123", &s6.sin6_addr);
    addr_format((const struct sockaddr *)&s6, out, sizeof out);
    CHECK(strlen(out) < ADDR_TEXT_MAX);
    CHECK(out[0] == '[' && strstr(out, "]:65535") != NULL);

    /* a small buffer is truncated, still terminated */
    char tiny[6];
    memset(tiny, 'x', sizeof tiny);
    addr_format((const struct sockaddr *)&s4, tiny, sizeof tiny);
    CHECK_STR(tiny, "203.0");

    /* other families */
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    addr_format_ip((const struct sockaddr *)&su, out, sizeof out);
    CHECK_STR(out, "unix");
    CHECK_EQ(addr_port((const struct sockaddr *)&su), 0);
    struct sockaddr_storage unspec;
    memset(&unspec, 0, sizeof unspec);
    unspec.ss_family = AF_UNSPEC;
    addr_format((const struct sockaddr *)&unspec, out, sizeof out);
    CHECK_EQ(addr_port((const struct sockaddr *)&unspec), 0);
    CHECK(strlen(out) > 0 && strlen(out) < ADDR_TEXT_MAX);
}

static void test_round_trip(void)
{
    const char *texts[] = {"127.0.0.1:8080",  "192.168.1.254:1",           "[::1]:443",
                           "[fdaa::3]:65535", "[2001:db8:0:1:2:3:4:5]:80", "[::]:9"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct sockaddr_storage a, b;
        socklen_t la, lb;
        CHECK_EQ(parse(texts[i], &a, &la, 0), 0);
        char out[ADDR_TEXT_MAX];
        addr_format((const struct sockaddr *)&a, out, sizeof out);
        CHECK_STR(out, texts[i]);
        CHECK_EQ(parse(out, &b, &lb, 0), 0);
        CHECK_EQ(la, lb);
        CHECK(memcmp(&a, &b, la) == 0);
    }
}

int main(void)
{
    test_ipv4();
    test_ipv6();
    test_wildcard();
    test_ports();
    test_garbage();
    test_length_bound();
    test_format();
    test_round_trip();
    return check_done();
}
