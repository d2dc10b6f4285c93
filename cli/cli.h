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
#include "lwswake.h"
#include "token.h"
#include "wsframe.h"

#define CLI_MAX_ADDRS 16
#define CLI_TXBUF (256 * 1024)
#define CLI_RXBUF (256 * 1024)

/* Exit codes (documented in the README). */
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
    int kind; /* CLI_RAW_SIGNAL, CLI_RAW_SERVER or CLI_RAW_EVSET */
};

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

/* conn.c: the connection to the edge below WebSocket (TCP, TLS). */
struct conn {
    struct raw_obj_cli obj; /* first: the raw-file dispatch reads it */
    enum { CONN_IDLE, CONN_TCP, CONN_TLS, CONN_OPEN } st;
    int fd;
    struct lws *wsi;
    SSL_CTX *ssl_ctx; /* made on first use, kept across reconnects */
    SSL *ssl;
    bool read_wants_write, refused;
    bool kicked;             /* write at the end of the local connections' turn */
    size_t out_off, out_len; /* unsent bytes of c->txbuf */
    struct lwswake wake;
    lws_sorted_usec_list_t deadline; /* connect + TLS + WebSocket handshake */
    char why[200];                   /* why it failed or closed */
};

struct local;

struct cli {
    const struct cli_config *cfg;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct conn conn;
    mux *mux;
    /* ordered: states from C_UPGRADED on speak WebSocket */
    enum { C_WAIT, C_CONNECTING, C_UPGRADING, C_UPGRADED, C_HELLO, C_ONLINE } state;
    struct sockaddrs server_addrs;
    unsigned server_idx;
    struct sockaddrs local_addrs;
    char name[NAME_MAX_LEN + 1];
    char token[TOKEN_MAX_LEN];
    char url[256];
    unsigned attempt;
    bool ever_online, stop, done, hello_sent;
    int exit_code;
    char *ctl_out;  /* HELLO waiting to be written */
    uint8_t *txbuf; /* CLI_TXBUF: the frames of one write */
    uint8_t *rxbuf; /* CLI_RXBUF: one read */
    /* WebSocket spoken on the raw connection (wsframe.h) */
    char host_hdr[300];
    char hs_key[WSHS_KEY_LEN + 1];
    uint8_t hsbuf[WSHS_HEAD_MAX];
    size_t hslen;
    bool hs_sent;
    wsparse *wp;
    struct wsmask masks;
    uint64_t last_rx_ms;
    lws_sorted_usec_list_t ping_sul;
    bool pong_pending, ping_due, close_queued, close_sent, peer_closed;
    uint8_t pong_payload[125];
    size_t pong_len;
    uint8_t close_payload[125];
    size_t close_len;
    struct local *locals;
    unsigned nlocals;
    struct evset *evset;          /* the local connections' sockets (evset.h) */
    struct raw_obj_cli evset_obj; /* the set's descriptor in the lws loop */
    lws_sorted_usec_list_t retry_sul, stop_sul;
    lws_sorted_usec_list_t flush_sul; /* request lines to a file or pipe (output.c) */
    lws_sorted_usec_list_t trim_sul;  /* heap back to the kernel once streams are gone */
    uint64_t last_trim_ms;
    bool stdout_tty, flush_pending;
    int sigpipe[2];
    struct raw_obj_cli sigobj;
};

#define CLI_RAW_SIGNAL 2
#define CLI_RAW_SERVER 3
#define CLI_RAW_EVSET 4
#define WARREN_CLI_WS_PROTOCOL "warren-tunnel"
#define WARREN_CLI_RAW_PROTOCOL "warren-raw"
#define WARREN_VERSION "0.1.0"

/* client.c */
/* Start (or restart) connecting to the server. */
void client_connect(struct cli *c);
/* Ctrl-C: end streams, close the WebSocket (1000), then stop the loop. */
void client_stop(struct cli *c);

/* client.c: events of the connection (from conn.c) */
void client_conn_up(struct cli *c);
void client_conn_rx(struct cli *c, const uint8_t *p, size_t n);
/* Produce the next bytes to send into out; *more: call again afterwards. */
size_t client_conn_fill(struct cli *c, uint8_t *out, size_t cap, bool *more);
void client_conn_down(struct cli *c, bool was_open, const char *why);

/* conn.c */
int conn_open(struct cli *c, const struct sockaddr *sa, socklen_t salen);
/* Frames wait: written on the next WRITEABLE, or, when asked during the
 * local connections' turn (evset.h), by conn_kick() at its end. */
void conn_want_write(struct cli *c);
void conn_kick(struct cli *c);
void conn_close(struct cli *c);
void conn_handshake_done(struct cli *c);
int conn_callback(struct lws *wsi, enum lws_callback_reasons reason, struct cli *c);
void conn_free(struct cli *c);

/* local.c: stream events and the raw-file callback of local connections */
int local_on_open(struct cli *c, mux_stream *st, const struct frame_open *o);
void local_stream_readable(struct local *l);
void local_stream_writable(struct local *l);
void local_stream_closed(struct local *l, uint16_t code);
/* Resolve --local-host once (all addresses, IPv6 and IPv4). 0 or -1. */
int local_resolve(struct cli *c);

/* output.c */
void out_online(const struct cli *c);
void out_request(struct cli *c, const char *method, const char *path, unsigned status, uint64_t ms,
                 uint64_t bytes_in, uint64_t bytes_out);
void out_reconnecting(const struct cli *c, unsigned attempt, uint64_t delay_ms, const char *why);
void out_error(const struct cli *c, const char *code, const char *message);
void out_stopped(const struct cli *c);

uint64_t cli_now_ms(void);

#endif
