/*
 * ctl: the JSON control messages of a tunnel session (docs/protocol.md,
 * "Handshake"). They travel as WebSocket text messages; mux frames travel as
 * binary messages. Parsing is strict about types and bounded in size; unknown
 * fields are ignored (forward compatibility).
 *
 *   CLI -> edge   {"type":"hello","version":1,"kind":"http","name":"myapp",
 *                  "key":"wk_...","reconnect_token":"...","client":"tunnel/0.1.0"}
 *   edge -> CLI   {"type":"welcome","version":1,"name":"myapp","url":"http://myapp.localhost:8080",
 *                  "reconnect_token":"...","limits":{"max_streams":256,"window":262144,
 *                  "max_frame":32768,"ping_interval":15,"grace_period":30}}
 *                 {"type":"error","code":"name_in_use","message":"..."}
 *                 {"type":"token","reconnect_token":"..."}   (refresh, any time)
 */
#ifndef WARREN_CTL_H
#define WARREN_CTL_H

#include <stddef.h>

#include "token.h"

#define CTL_VERSION 1
#define CTL_MAX_LEN 4096 /* a control message longer than this is a protocol error */

struct ctl_hello {
    unsigned version;
    char kind[8];                        /* "http" (default) or "tcp" */
    char name[256];                      /* requested name as sent, "" for a random one */
    char key[128];                       /* auth key, "" if none */
    char reconnect_token[TOKEN_MAX_LEN]; /* "" if none */
    char client[64];                     /* free text, "" if none */
};

enum ctl_type { CTL_WELCOME = 1, CTL_ERROR, CTL_TOKEN };

struct ctl_server {
    enum ctl_type type;
    unsigned version;
    char name[64];
    char url[256];
    char reconnect_token[TOKEN_MAX_LEN];
    unsigned max_streams, window, max_frame, ping_interval, grace_period;
    char code[32];
    char message[256];
};

/* Parse a HELLO. 0, or -EINVAL with err naming the problem ("field \"name\"
 * must be a string"); -EPROTONOSUPPORT when "version" is not CTL_VERSION
 * (out->version is still set). */
int ctl_hello_parse(const char *p, size_t len, struct ctl_hello *out, char *err, size_t errcap);
/* Parse an edge -> CLI message. 0 or -EINVAL (err says why). */
int ctl_server_parse(const char *p, size_t len, struct ctl_server *out, char *err, size_t errcap);

/* Encoders return a malloc'd NUL-terminated JSON text, NULL on out of memory. */
char *ctl_hello_encode(const struct ctl_hello *h);
char *ctl_welcome_encode(const struct ctl_server *w);
char *ctl_error_encode(const char *code, const char *message);
char *ctl_token_encode(const char *token);

#endif
