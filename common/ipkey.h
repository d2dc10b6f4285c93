/*
 * ipkey: the key under which per-address limits count a client (tunnels per
 * address, handshakes per second). IPv4 addresses count whole; IPv6
 * addresses are cut to their /64, the block one subscriber usually holds, so
 * a host cannot escape a limit by rotating through its own prefix. An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address.
 */
#ifndef WARREN_IPKEY_H
#define WARREN_IPKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define IPKEY_LEN 16
#define IPKEY_TEXT_MAX 48 /* "ffff:ffff:ffff:ffff::/64" or an IPv4 address, plus NUL */

struct ipkey {
    uint8_t b[IPKEY_LEN]; /* IPv4 as ::ffff:a.b.c.d; IPv6 with the low 64 bits zeroed */
};

/* The key of an AF_INET / AF_INET6 socket address. 0, or -EAFNOSUPPORT
 * (other families; *out untouched). */
int ipkey_from_sockaddr(const struct sockaddr *sa, struct ipkey *out);

/* The key of an IP literal p[0..len) without port or brackets ("203.0.113.7",
 * "2001:db8::7"), as a proxy puts it in a header. No NUL needed. 0, or -EINVAL
 * (anything else, longer than 45 bytes included; *out untouched). */
int ipkey_parse(const char *p, size_t len, struct ipkey *out);

/* Text of a key for logs and messages: "203.0.113.7" or "2001:db8:1:2::/64".
 * cap >= IPKEY_TEXT_MAX. */
void ipkey_format(const struct ipkey *k, char *out, size_t cap);

bool ipkey_equal(const struct ipkey *a, const struct ipkey *b);

#endif
