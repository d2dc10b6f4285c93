/*
 * ipkey: per-address limit keys (see ipkey.h). Invariant: every key this
 * module produces has the same form for the same client, whatever way its
 * address arrived (socket address, mapped IPv6, header text), so counts and
 * buckets keyed on it cannot be split by changing the spelling.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "ipkey.h"

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void from_v4(const void *a4, struct ipkey *out)
{
    memcpy(out->b, v4_prefix, sizeof v4_prefix);
    memcpy(out->b + 12, a4, 4);
}

static void from_v6(const uint8_t a6[16], struct ipkey *out)
{
    if (memcmp(a6, v4_prefix, sizeof v4_prefix) == 0) {
        from_v4(a6 + 12, out);
        return;
    }
    memcpy(out->b, a6, 8);
    memset(out->b + 8, 0, 8);
}

int ipkey_from_sockaddr(const struct sockaddr *sa, struct ipkey *out)
{
    if (sa->sa_family == AF_INET) {
        from_v4(&((const struct sockaddr_in *)sa)->sin_addr, out);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        from_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, out);
        return 0;
    }
    return -EAFNOSUPPORT;
}

int ipkey_parse(const char *p, size_t len, struct ipkey *out)
{
    char text[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof text || memchr(p, 0, len))
        return -EINVAL;
    memcpy(text, p, len);
    text[len] = 0;
    uint8_t a[16];
    if (inet_pton(AF_INET, text, a) == 1) {
        from_v4(a, out);
        return 0;
    }
    if (inet_pton(AF_INET6, text, a) == 1) {
        from_v6(a, out);
        return 0;
    }
    return -EINVAL;
}

void ipkey_format(const struct ipkey *k, char *out, size_t cap)
{
    char text[INET6_ADDRSTRLEN] = "?";
    if (memcmp(k->b, v4_prefix, sizeof v4_prefix) == 0) {
        inet_ntop(AF_INET, k->b + 12, text, sizeof text);
        snprintf(out, cap, "%s", text);
        return;
    }
    inet_ntop(AF_INET6, k->b, text, sizeof text);
    snprintf(out, cap, "%s/64", text);
}

bool ipkey_equal(const struct ipkey *a, const struct ipkey *b)
{
    return memcmp(a->b, b->b, IPKEY_LEN) == 0;
}
