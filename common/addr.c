/*
 * addr: parse and format IP:PORT text with explicit bounds; no resolution.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

static int parse_port(const char *p, size_t len, int allow0)
{
    if (len == 0 || len > 5)
        return -EINVAL;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (p[i] - '0');
    }
    if (v > 65535 || (v == 0 && !allow0))
        return -EINVAL;
    return (int)v;
}

int addr_parse(const char *p, size_t len, struct sockaddr_storage *ss, socklen_t *sslen,
               int allow_port0)
{
    char host[64];
    const char *portp;
    size_t hostlen;
    if (len == 0 || len >= 80)
        return -EINVAL;
    if (memchr(p, 0, len))
        return -EINVAL; /* inet_pton would stop at it and accept a prefix */
    if (p[0] == '[') {
        const char *close = memchr(p, ']', len);
        if (!close || (size_t)(close - p) + 1 >= len || close[1] != ':')
            return -EINVAL;
        hostlen = (size_t)(close - p - 1);
        memcpy(host, p + 1, hostlen < sizeof host ? hostlen : 0);
        portp = close + 2;
        if (hostlen == 0 || hostlen >= sizeof host)
            return -EINVAL;
        host[hostlen] = 0;
        int port = parse_port(portp, len - (size_t)(portp - p), allow_port0);
        if (port < 0)
            return port;
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
        if (inet_pton(AF_INET6, host, &s6.sin6_addr) != 1)
            return -EINVAL;
        memset(ss, 0, sizeof *ss);
        memcpy(ss, &s6, sizeof s6);
        *sslen = sizeof s6;
        return 0;
    }
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (p[i] == ':')
            colon = p + i;
    if (!colon)
        return -EINVAL;
    hostlen = (size_t)(colon - p);
    if (hostlen >= sizeof host)
        return -EINVAL;
    memcpy(host, p, hostlen);
    host[hostlen] = 0;
    int port = parse_port(colon + 1, len - hostlen - 1, allow_port0);
    if (port < 0)
        return port;
    if (hostlen == 0 || strcmp(host, "*") == 0) {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6,
                                  .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = IN6ADDR_ANY_INIT};
        memset(ss, 0, sizeof *ss);
        memcpy(ss, &s6, sizeof s6);
        *sslen = sizeof s6;
        return 0;
    }
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &s4.sin_addr) != 1)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &s4, sizeof s4);
    *sslen = sizeof s4;
    return 0;
}

void addr_format_ip(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], ip, sizeof ip);
        else
            inet_ntop(AF_INET6, a, ip, sizeof ip);
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(ip, sizeof ip, "unix");
    }
    snprintf(out, cap, "%s", ip);
}

int addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

void addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    addr_format_ip(sa, ip, sizeof ip);
    if (strchr(ip, ':'))
        snprintf(out, cap, "[%s]:%d", ip, addr_port(sa));
    else
        snprintf(out, cap, "%s:%d", ip, addr_port(sa));
}
