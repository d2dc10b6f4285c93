/*
 * cli: the state of one `tunnel` process, shared by its modules: client.c
 * (the control WebSocket, handshake, reconnects), local.c (one connection to
 * the local service per stream) and output.c (what the user sees).
 */
#ifndef WARREN_CLI_H
#define WARREN_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <libwebsockets.h>

#include "mux.h"
#include "names.h"
#include "token.h"

#define CLI_MAX_ADDRS 16

/* Exit codes (documented in README and docs/cli.md). */
enum cli_exit {
    EXIT_OK = 0,
    EXIT_FATAL = 1,
    EXIT_USAGE = 2,
    EXIT_NAME_IN_USE = 3,
    EXIT_INVALID_NAME = 4,
    EXIT_AUTH_FAILED = 5,
    EXIT_VERSION = 6,
    EXIT_REFUSED = 7,
    EXIT_TOO_MANY_TUNNELS = 8, /* too_many_tunnels: the edge's --max-tunnels-per-ip */
};

struct cli_config {
    unsigned port;
    char subdomain[256];
    char server_url[512];
    bool tls;
    char server_host[256];
    unsigned server_port;
    char server_path[256];
    char local_host[256];
    char key[128];
    bool json;
    int log_level;
};

struct sockaddrs {
    struct sockaddr_storage a[CLI_MAX_ADDRS];
    socklen_t len[CLI_MAX_ADDRS];
    unsigned n;
};

struct raw_obj_cli {
    int kind; /* 1 local connection, 2 signal pipe */
};

struct local;

struct cli {
    const struct cli_config *cfg;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct lws *ws;
    mux *mux;
    enum { C_WAIT, C_CONNECTING, C_HELLO, C_ONLINE, C_STOPPING } state;
    struct sockaddrs server_addrs;
    unsigned server_idx;
    struct sockaddrs local_addrs;
    char name[NAME_MAX_LEN + 1];
    char token[TOKEN_MAX_LEN];
    char url[256];
    unsigned attempt;
    bool ever_online, stop, done, hello_sent;
    int exit_code;
    char *ctl_out; /* HELLO waiting to be written */
    uint8_t *txbuf;
    uint8_t *rxmsg;
    size_t rxlen;
    struct local *locals;
    unsigned nlocals;
    lws_retry_bo_t retry;
    lws_sorted_usec_list_t retry_sul, stop_sul;
    int sigpipe[2];
    struct raw_obj_cli sigobj;
};

#define CLI_RAW_LOCAL 1
#define CLI_RAW_SIGNAL 2
#define WARREN_CLI_WS_PROTOCOL "warren-tunnel"
#define WARREN_CLI_RAW_PROTOCOL "warren-raw"
#define WARREN_VERSION "0.1.0"

/* client.c */
int client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);
/* Start (or restart) connecting to the server. */
void client_connect(struct cli *c);
/* Ctrl-C: end streams, close the WebSocket (1000), then stop the loop. */
void client_stop(struct cli *c);

/* local.c: stream events and the raw-file callback of local connections */
int local_on_open(struct cli *c, mux_stream *st, const struct frame_open *o);
void local_stream_readable(struct local *l);
void local_stream_writable(struct local *l);
void local_stream_closed(struct local *l, uint16_t code);
int local_callback(struct lws *wsi, enum lws_callback_reasons reason, struct local *l);
/* Resolve --local-host once (all addresses, IPv6 and IPv4). 0 or -1. */
int local_resolve(struct cli *c);

/* output.c */
void out_online(const struct cli *c);
void out_request(const struct cli *c, const char *method, const char *path, unsigned status,
                 uint64_t ms, uint64_t bytes_in, uint64_t bytes_out);
void out_reconnecting(const struct cli *c, unsigned attempt, uint64_t delay_ms, const char *why);
void out_error(const struct cli *c, const char *code, const char *message);
void out_stopped(const struct cli *c);

uint64_t cli_now_ms(void);

#endif
