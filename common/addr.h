/*
 * addr: socket address text, both ways. "127.0.0.1:8080", "[::1]:8080",
 * "*:8080" / ":8080" (all IPv4 and IPv6 interfaces) for listeners. Host names
 * are not resolved here: listeners take IP literals only.
 */
#ifndef WARREN_ADDR_H
#define WARREN_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define ADDR_TEXT_MAX 64 /* "[v6]:port" plus NUL */

/* Parse p[0..len) "IP:PORT" / "[IPv6]:PORT" / "*:PORT" / ":PORT" into *ss.
 * Port 1..65535 (0 allowed when allow_port0). Returns 0 or -EINVAL. */
int addr_parse(const char *p, size_t len, struct sockaddr_storage *ss, socklen_t *sslen,
               int allow_port0);

/* "ip:port" or "[ip6]:port" of sa into out (cap >= ADDR_TEXT_MAX). */
void addr_format(const struct sockaddr *sa, char *out, size_t cap);
/* The IP alone ("ip" / "ip6", IPv4-mapped IPv6 shown as IPv4). */
void addr_format_ip(const struct sockaddr *sa, char *out, size_t cap);
/* The port of an AF_INET/AF_INET6 address, 0 otherwise. */
int addr_port(const struct sockaddr *sa);

#endif
