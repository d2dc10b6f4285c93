/*
 * test_ipkey: per-address limit keys. The same client gets the same key
 * whatever spelling its address arrives in (socket address, IPv4-mapped IPv6,
 * header text); IPv6 hosts of one /64 share a key and other /64s do not;
 * text that is not exactly an IP literal is refused without touching the
 * output.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "check.h"
#include "ipkey.h"

static int parse(const char *s, struct ipkey *k)
{
    return ipkey_parse(s, strlen(s), k);
}

static const char *fmt(const struct ipkey *k)
{
    static char out[IPKEY_TEXT_MAX];
    ipkey_format(k, out, sizeof out);
    return out;
}

static void test_v4(void)
{
    struct ipkey a, b, m;
    CHECK_EQ(parse("203.0.113.7", &a), 0);
    CHECK_STR(fmt(&a), "203.0.113.7");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(4444)};
    inet_pton(AF_INET, "203.0.113.7", &sin.sin_addr);
    CHECK_EQ(ipkey_from_sockaddr((struct sockaddr *)&sin, &b), 0);
    CHECK(ipkey_equal(&a, &b));
    /* the same address as an IPv4-mapped IPv6 socket address or text */
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:203.0.113.7", &s6.sin6_addr);
    CHECK_EQ(ipkey_from_sockaddr((struct sockaddr *)&s6, &m), 0);
    CHECK(ipkey_equal(&a, &m));
    CHECK_EQ(parse("::ffff:203.0.113.7", &m), 0);
    CHECK(ipkey_equal(&a, &m));
    CHECK_EQ(parse("203.0.113.8", &b), 0);
    CHECK(!ipkey_equal(&a, &b));
}

static void test_v6_prefix(void)
{
    struct ipkey a, b, c;
    CHECK_EQ(parse("2001:db8:1:2::7", &a), 0);
    CHECK_EQ(parse("2001:db8:1:2:ffff:ffff:ffff:ffff", &b), 0);
    CHECK(ipkey_equal(&a, &b)); /* same /64 */
    CHECK_STR(fmt(&a), "2001:db8:1:2::/64");
    CHECK_EQ(parse("2001:db8:1:3::7", &c), 0);
    CHECK(!ipkey_equal(&a, &c)); /* the next /64 */
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8:1:2:abcd::1", &s6.sin6_addr);
    CHECK_EQ(ipkey_from_sockaddr((struct sockaddr *)&s6, &c), 0);
    CHECK(ipkey_equal(&a, &c));
    CHECK_EQ(parse("::1", &c), 0);
    CHECK_STR(fmt(&c), "::/64");
}

static void test_refused(void)
{
    static const char *bad[] = {"",
                                " 203.0.113.7",
                                "203.0.113.7 ",
                                "203.0.113.7:80",
                                "[::1]",
                                "203.0.113",
                                "203.0.113.256",
                                "localhost",
                                "2001:db8::1::2",
                                "0x7f.0.0.1",
                                "1111:2222:3333:4444:5555:6666:7777:8888:9999",
                                "::ffff:203.0.113.7.1"};
    struct ipkey k, orig;
    memset(&k, 0xa5, sizeof k);
    orig = k;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(parse(bad[i], &k), -EINVAL);
        CHECK(memcmp(&k, &orig, sizeof k) == 0);
    }
    /* an embedded NUL, and a length past the longest literal */
    CHECK_EQ(ipkey_parse("1.2.3.4\0", 8, &k), -EINVAL);
    char longer[100];
    memset(longer, '1', sizeof longer);
    CHECK_EQ(ipkey_parse(longer, sizeof longer, &k), -EINVAL);
    /* the length is honoured: no NUL needed after the address */
    CHECK_EQ(ipkey_parse("10.0.0.1xyz", 8, &k), 0);
    CHECK_STR(fmt(&k), "10.0.0.1");
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    memset(&k, 0xa5, sizeof k);
    CHECK_EQ(ipkey_from_sockaddr((struct sockaddr *)&su, &k), -EAFNOSUPPORT);
    CHECK(memcmp(&k, &orig, sizeof k) == 0);
}

int main(void)
{
    test_v4();
    test_v6_prefix();
    test_refused();
    return check_done();
}
