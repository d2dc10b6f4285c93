/*
 * conn: the CLI's connection to the edge, below WebSocket.
 *
 * Our own non-blocking TCP socket, put into the libwebsockets loop as a raw
 * file (lwsraw), with TLS done by OpenSSL when the URL is wss://. Why not the
 * library's client: its WebSocket client parses received bytes one at a time
 * (docs/benchmarks.md), and its raw client in Debian's 4.1.6 starts TLS before
 * the socket exists ("tls start fail", EBADF), so neither carries a wss://
 * tunnel fast.
 *
 * States: TCP (connect in progress: wait for writable, then SO_ERROR), TLS
 * (handshake: poll interest follows WANT_READ / WANT_WRITE), OPEN. The
 * certificate is verified against the system's trust store (SSL_CERT_FILE /
 * SSL_CERT_DIR override it) and the server's host name or IP address. The
 * trust store lives for one handshake (load_trust) and is freed when the
 * certificate has been verified; renegotiation, which would verify again, is
 * refused.
 * Invariants: bytes handed to the socket are never dropped: a partial write
 * keeps the rest (in c->txbuf) and nothing new is produced until it is out;
 * TLS records OpenSSL still holds are read before waiting for the socket
 * again; the connection is closed only through lws (RAW_CLOSE_FILE), which
 * calls client_conn_down exactly once.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cli.h"
#include "evset.h"
#include "log.h"
#include "lwsraw.h"

#define READ_BATCHES 8 /* reads per callback before letting other connections run */

static SSL_CTX *tls_ctx(struct cli *c)
{
    if (c->conn.ssl_ctx)
        return c->conn.ssl_ctx;
    SSL_CTX *x = SSL_CTX_new(TLS_client_method());
    if (!x)
        return NULL;
    SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
    SSL_CTX_set_verify(x, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION);
    c->conn.ssl_ctx = x;
    return x;
}

/* True if dir holds OpenSSL's hash links (c_rehash / update-ca-certificates
 * names such as 4042bcee.0), so issuers can be looked up one file at a time. */
static bool has_hash_links(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        const char *n = e->d_name;
        size_t i = 0;
        while (i < 8 && isxdigit((unsigned char)n[i]))
            i++;
        found = i == 8 && n[8] == '.' && isdigit((unsigned char)n[9]);
    }
    closedir(d);
    return found;
}

/* The trusted certificates, for one handshake (owned by ssl). The same places
 * as OpenSSL's defaults (SSL_CERT_FILE / SSL_CERT_DIR, else the system's),
 * except that the system's bundle file is not parsed when its hashed
 * directory can answer: Debian's bundle is 0.9 MiB of heap and 48 ms of CPU
 * to parse, and a handshake needs one or two of its certificates. */
static int load_trust(SSL *ssl)
{
    X509_STORE *st = X509_STORE_new();
    if (!st)
        return -1;
    const char *file = getenv(X509_get_default_cert_file_env());
    const char *dir = getenv(X509_get_default_cert_dir_env());
    if (!dir)
        dir = X509_get_default_cert_dir();
    if (!file && !has_hash_links(dir))
        file = X509_get_default_cert_file();
    if ((file && X509_STORE_load_file(st, file) != 1) || X509_STORE_load_path(st, dir) != 1)
        log_debug("TLS: trusted certificates: could not load %s", file ? file : dir);
    ERR_clear_error();
    SSL_set0_verify_cert_store(ssl, st);
    return 0;
}

static void want_write(struct cli *c)
{
    lwswake_request(&c->conn.wake, c->conn.wsi);
}

void conn_want_write(struct cli *c)
{
    if (c->conn.st != CONN_OPEN)
        return;
    if (evset_in_turn(c->evset))
        c->conn.kicked = true; /* conn_kick() at the end of the turn */
    else
        want_write(c);
}

static int on_writeable(struct cli *c);

void conn_kick(struct cli *c)
{
    struct conn *k = &c->conn;
    if (!k->kicked)
        return;
    k->kicked = false;
    if (k->st != CONN_OPEN || !k->wsi)
        return;
    lwswake_enter(&k->wake);
    if (lwswake_leave(&k->wake, c->ctx, on_writeable(c)) < 0)
        /* as a WRITEABLE callback returning -1: close it (and reconnect) */
        lws_set_timeout(k->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void fail(struct cli *c, const char *why)
{
    if (!c->conn.why[0])
        snprintf(c->conn.why, sizeof c->conn.why, "%s", why);
    conn_close(c);
}

void conn_close(struct cli *c)
{
    if (c->conn.wsi)
        lws_set_timeout(c->conn.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The reason of the last TLS failure, for the user. */
static void tls_why(struct cli *c, const char *stage, char *out, size_t cap)
{
    long v = c->conn.ssl ? SSL_get_verify_result(c->conn.ssl) : X509_V_OK;
    unsigned long e = ERR_get_error();
    if (v != X509_V_OK)
        snprintf(out, cap, "TLS %s: certificate of %.80s not trusted: %.60s", stage,
                 c->cfg->server_host, X509_verify_cert_error_string(v));
    else if (e)
        snprintf(out, cap, "TLS %s: %s", stage, ERR_reason_error_string(e));
    else
        snprintf(out, cap, "TLS %s: connection closed", stage);
    ERR_clear_error();
}

static void deadline_cb(lws_sorted_usec_list_t *sul)
{
    struct cli *c = lws_container_of(sul, struct cli, conn.deadline);
    fail(c, c->conn.st == CONN_OPEN ? "the server did not complete the WebSocket handshake in time"
                                    : "connecting to the server timed out");
}

void conn_handshake_done(struct cli *c)
{
    lws_sul_cancel(&c->conn.deadline);
}

int conn_open(struct cli *c, const struct sockaddr *sa, socklen_t salen)
{
    struct conn *k = &c->conn;
    k->why[0] = 0;
    k->out_off = k->out_len = 0;
    k->read_wants_write = false;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    k->obj.kind = CLI_RAW_SERVER;
    k->st = CONN_TCP;
    k->wsi = lwsraw_adopt(c->vh, fd, WARREN_CLI_RAW_PROTOCOL, &k->obj);
    if (!k->wsi) {
        k->st = CONN_IDLE;
        return -ENOMEM; /* lws closed fd */
    }
    k->fd = fd;
    lws_rx_flow_control(k->wsi, 0); /* readable means nothing until connected */
    want_write(c);
    lws_sul_schedule(c->ctx, 0, &k->deadline, deadline_cb, 10 * LWS_US_PER_SEC);
    return 0;
}

static void opened(struct cli *c)
{
    c->conn.st = CONN_OPEN;
    lws_rx_flow_control(c->conn.wsi, 1);
    client_conn_up(c);
}

/* Drive the TLS handshake; poll interest follows what OpenSSL waits for. */
static int tls_step(struct cli *c)
{
    struct conn *k = &c->conn;
    int r = SSL_do_handshake(k->ssl);
    if (r == 1) {
        log_debug("TLS %s with %s", SSL_get_version(k->ssl), c->cfg->server_host);
        SSL_set0_verify_cert_store(k->ssl, NULL); /* verified: the store is not needed again */
        opened(c);
        return 0;
    }
    int e = SSL_get_error(k->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        lws_rx_flow_control(k->wsi, 1);
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        want_write(c);
        return 0;
    }
    tls_why(c, "handshake", k->why, sizeof k->why);
    return -1;
}

static int start_tls(struct cli *c)
{
    struct conn *k = &c->conn;
    SSL_CTX *x = tls_ctx(c);
    if (!x || !(k->ssl = SSL_new(x)) || SSL_set_fd(k->ssl, k->fd) != 1 || load_trust(k->ssl) < 0) {
        snprintf(k->why, sizeof k->why, "TLS: out of memory");
        return -1;
    }
    const char *host = c->cfg->server_host;
    X509_VERIFY_PARAM *param = SSL_get0_param(k->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
        /* a name, not an IP literal: check it and send it as SNI */
        if (X509_VERIFY_PARAM_set1_host(param, host, 0) != 1 ||
            SSL_set_tlsext_host_name(k->ssl, host) != 1) {
            snprintf(k->why, sizeof k->why, "TLS: bad server name %.100s", host);
            return -1;
        }
    }
    SSL_set_connect_state(k->ssl);
    k->st = CONN_TLS;
    return tls_step(c);
}

static int on_connected(struct cli *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->conn.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        snprintf(c->conn.why, sizeof c->conn.why, "could not connect to %.80s: %s",
                 c->cfg->server_url, strerror(err));
        c->conn.refused = true;
        return -1;
    }
    if (c->cfg->tls)
        return start_tls(c);
    opened(c);
    return 0;
}

/* Read what the socket (and OpenSSL) has; hand it to the client. */
static int on_readable(struct cli *c)
{
    struct conn *k = &c->conn;
    for (int i = 0; i < READ_BATCHES; i++) {
        ssize_t n;
        if (k->ssl) {
            k->read_wants_write = false;
            int r = SSL_read(k->ssl, c->rxbuf, CLI_RXBUF);
            if (r <= 0) {
                int e = SSL_get_error(k->ssl, r);
                if (e == SSL_ERROR_WANT_READ)
                    return 0;
                if (e == SSL_ERROR_WANT_WRITE) {
                    k->read_wants_write = true;
                    want_write(c);
                    return 0;
                }
                if (e == SSL_ERROR_ZERO_RETURN)
                    snprintf(k->why, sizeof k->why, "the server closed the connection");
                else
                    tls_why(c, "read", k->why, sizeof k->why);
                return -1;
            }
            n = r;
        } else {
            n = read(k->fd, c->rxbuf, CLI_RXBUF);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
            if (n <= 0) {
                snprintf(k->why, sizeof k->why, "%s",
                         n == 0 ? "the server closed the connection" : strerror(errno));
                return -1;
            }
        }
        client_conn_rx(c, c->rxbuf, (size_t)n);
        if (k->st != CONN_OPEN || c->conn.wsi == NULL)
            return 0;
        if ((size_t)n < CLI_RXBUF && !(k->ssl && SSL_pending(k->ssl)))
            return 0; /* the socket is drained */
    }
    /* more may be waiting (possibly inside OpenSSL): come back next turn */
    want_write(c);
    k->read_wants_write = true;
    return 0;
}

/* Write k->out[off..len); 1 when all of it went out, 0 when the socket is full. */
static int flush(struct cli *c)
{
    struct conn *k = &c->conn;
    while (k->out_off < k->out_len) {
        size_t left = k->out_len - k->out_off;
        const uint8_t *p = c->txbuf + k->out_off;
        ssize_t n;
        if (k->ssl) {
            int r = SSL_write(k->ssl, p, (int)(left > INT32_MAX ? INT32_MAX : left));
            if (r <= 0) {
                int e = SSL_get_error(k->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    return 0;
                tls_why(c, "write", k->why, sizeof k->why);
                return -1;
            }
            n = r;
        } else {
            n = write(k->fd, p, left);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
            if (n < 0) {
                snprintf(k->why, sizeof k->why, "write to the server: %s", strerror(errno));
                return -1;
            }
        }
        k->out_off += (size_t)n;
    }
    k->out_off = k->out_len = 0;
    return 1;
}

static int on_writeable(struct cli *c)
{
    struct conn *k = &c->conn;
    switch (k->st) {
    case CONN_TCP:
        return on_connected(c);
    case CONN_TLS:
        return tls_step(c);
    case CONN_OPEN:
        break;
    default:
        return 0;
    }
    if (k->read_wants_write && on_readable(c) < 0)
        return -1;
    for (int round = 0; round < 2; round++) {
        if (k->out_len == 0) {
            bool more = false;
            k->out_len = client_conn_fill(c, c->txbuf, CLI_TXBUF, &more);
            k->out_off = 0;
            if (k->out_len == 0)
                return 0;
            int r = flush(c);
            if (r <= 0) {
                if (r == 0)
                    want_write(c);
                return r;
            }
            if (more)
                want_write(c);
            return 0;
        }
        int r = flush(c); /* the rest of an earlier batch first */
        if (r <= 0) {
            if (r == 0)
                want_write(c);
            return r;
        }
    }
    return 0;
}

int conn_callback(struct lws *wsi, enum lws_callback_reasons reason, struct cli *c)
{
    struct conn *k = &c->conn;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (k->st == CONN_TLS)
            return tls_step(c) < 0 ? -1 : 0;
        if (k->st != CONN_OPEN) {
            lws_rx_flow_control(wsi, 0);
            return 0;
        }
        return on_readable(c);
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        lwswake_enter(&k->wake);
        return lwswake_leave(&k->wake, c->ctx, on_writeable(c));
    case LWS_CALLBACK_RAW_CLOSE_FILE: {
        lwswake_cancel(&k->wake);
        lws_sul_cancel(&k->deadline);
        bool was_open = k->st == CONN_OPEN;
        if (k->st == CONN_TCP && !k->why[0]) {
            /* lws closed it on POLLERR / POLLHUP before we saw it writable */
            int err = 0;
            socklen_t elen = sizeof err;
            if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || !err)
                err = ECONNREFUSED;
            snprintf(k->why, sizeof k->why, "could not connect to %.80s: %s", c->cfg->server_url,
                     strerror(err));
        }
        if (k->ssl) {
            SSL_free(k->ssl);
            k->ssl = NULL;
        }
        k->wsi = NULL;
        k->fd = -1;
        k->st = CONN_IDLE;
        k->out_off = k->out_len = 0;
        client_conn_down(c, was_open, k->why[0] ? k->why : "the server closed the connection");
        return 0;
    }
    default:
        return 0;
    }
}

void conn_free(struct cli *c)
{
    if (c->conn.ssl)
        SSL_free(c->conn.ssl);
    c->conn.ssl = NULL;
    if (c->conn.ssl_ctx)
        SSL_CTX_free(c->conn.ssl_ctx);
    c->conn.ssl_ctx = NULL;
}
