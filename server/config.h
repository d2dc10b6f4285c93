/*
 * config: tunneld's options (one table: flags, TUNNELD_* environment twins,
 * defaults, --help) parsed and validated into a plain struct. Nothing else in
 * the edge reads argv or the environment.
 */
#ifndef WARREN_SERVER_CONFIG_H
#define WARREN_SERVER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "token.h"

#define CONFIG_MAX_LISTEN 8

struct listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[64];
};

struct config {
    char domain[254];
    struct listen_addr listen[CONFIG_MAX_LISTEN];
    unsigned nlisten;
    uint8_t secret[TOKEN_KEY_LEN];
    bool secret_given;    /* false: random, names do not survive a restart */
    char keys_file[4096]; /* "" when anonymous */
    unsigned grace_period, drain_timeout, head_timeout, idle_timeout, response_timeout;
    unsigned hello_timeout;
    unsigned max_streams, window, max_tunnels;
    unsigned ping_interval;
    /* against slow and flooding clients (server/limits.h, docs/operations.md) */
    unsigned body_timeout, send_timeout, min_rate;
    unsigned max_connections; /* 0: derived from the open-files limit */
    unsigned max_tunnels_per_ip, handshake_rate, handshake_burst;
    char public_scheme[8];
    unsigned public_port; /* 0: the first listen port */
    int log_level;
    bool check_only;
    char proxy_header[64]; /* "" unless behind a trusted proxy (--proxy-client-ip-header) */
    /* fleet (docs/fleet.md) */
    bool fleet; /* --peers-dns given */
    char peers_dns[254];
    struct listen_addr peer_listen;
    uint8_t fleet_key[TOKEN_KEY_LEN]; /* derived from the fleet secret, for peer MACs */
    char dns_server[64];              /* "" for resolv.conf */
    char instance_id[64];
    bool admin_enabled;
    struct listen_addr admin;
};

/* Parse argv and the environment into *c. Returns 0, 1 when --help was
 * printed, or -EINVAL after printing one specific error line to stderr. */
int config_load(struct config *c, int argc, char **argv);

/* Public URL of a tunnel: scheme://NAME.DOMAIN[:port]. */
void config_public_url(const struct config *c, const char *name, char *out, size_t cap);

#endif
