/*
 * ctl: JSON control messages with jansson. Every string field is copied into
 * fixed-size storage with an explicit bound; a field that does not fit is an
 * error rather than a truncation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl.h"

static int get_str(json_t *o, const char *key, char *out, size_t cap, char *err, size_t errcap)
{
    json_t *v = json_object_get(o, key);
    out[0] = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errcap, "field \"%s\" must be a string", key);
        return -EINVAL;
    }
    size_t n = json_string_length(v);
    if (n >= cap) {
        snprintf(err, errcap, "field \"%s\" is too long (%zu bytes, at most %zu)", key, n, cap - 1);
        return -EINVAL;
    }
    const char *s = json_string_value(v);
    if (memchr(s, 0, n)) {
        snprintf(err, errcap, "field \"%s\" contains a NUL byte", key);
        return -EINVAL;
    }
    memcpy(out, s, n + 1);
    return 0;
}

static int get_uint(json_t *o, const char *key, unsigned *out, char *err, size_t errcap)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 0x7fffffff) {
        snprintf(err, errcap, "field \"%s\" must be a non-negative integer", key);
        return -EINVAL;
    }
    *out = (unsigned)json_integer_value(v);
    return 0;
}

static json_t *load(const char *p, size_t len, const char *want_type, char *type_out,
                    size_t type_cap, char *err, size_t errcap)
{
    if (len > CTL_MAX_LEN) {
        snprintf(err, errcap, "control message too long (%zu bytes)", len);
        return NULL;
    }
    json_error_t je;
    /* \u0000 is valid JSON; let it through so get_str refuses it naming the field */
    json_t *o = json_loadb(p, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!o) {
        /* jansson quotes the offending token (" near '...'", up to 20 bytes):
         * leave it out, the message is logged and the token could be a secret
         * (a duplicate key keeps it: that is a field name) */
        char *near = strstr(je.text, " near '");
        if (near && json_error_code(&je) != json_error_duplicate_key)
            *near = 0;
        snprintf(err, errcap, "not JSON: %s (at byte %d)", je.text, je.position);
        return NULL;
    }
    if (!json_is_object(o)) {
        snprintf(err, errcap, "not a JSON object");
        json_decref(o);
        return NULL;
    }
    if (get_str(o, "type", type_out, type_cap, err, errcap) < 0) {
        json_decref(o);
        return NULL;
    }
    if (want_type && strcmp(type_out, want_type) != 0) {
        snprintf(err, errcap, "expected a \"%s\" message, got \"%s\"", want_type, type_out);
        json_decref(o);
        return NULL;
    }
    return o;
}

int ctl_hello_parse(const char *p, size_t len, struct ctl_hello *out, char *err, size_t errcap)
{
    char type[16];
    struct ctl_hello h;
    memset(&h, 0, sizeof h);
    json_t *o = load(p, len, "hello", type, sizeof type, err, errcap);
    if (!o)
        return -EINVAL;
    int r = 0;
    h.version = 0;
    if (!json_object_get(o, "version")) {
        snprintf(err, errcap, "field \"version\" is missing");
        r = -EINVAL;
    }
    if (!r)
        r = get_uint(o, "version", &h.version, err, errcap);
    if (!r)
        r = get_str(o, "kind", h.kind, sizeof h.kind, err, errcap);
    if (!r)
        r = get_str(o, "name", h.name, sizeof h.name, err, errcap);
    if (!r)
        r = get_str(o, "key", h.key, sizeof h.key, err, errcap);
    if (!r)
        r = get_str(o, "reconnect_token", h.reconnect_token, sizeof h.reconnect_token, err, errcap);
    if (!r)
        r = get_str(o, "client", h.client, sizeof h.client, err, errcap);
    json_decref(o);
    if (r)
        return r;
    if (!h.kind[0])
        snprintf(h.kind, sizeof h.kind, "http");
    if (strcmp(h.kind, "http") != 0 && strcmp(h.kind, "tcp") != 0) {
        snprintf(err, errcap, "field \"kind\" must be \"http\" or \"tcp\"");
        return -EINVAL;
    }
    *out = h;
    if (h.version != CTL_VERSION) {
        snprintf(err, errcap, "protocol version %u is not supported (this edge speaks %d)",
                 h.version, CTL_VERSION);
        return -EPROTONOSUPPORT;
    }
    return 0;
}

int ctl_server_parse(const char *p, size_t len, struct ctl_server *out, char *err, size_t errcap)
{
    char type[16];
    struct ctl_server s;
    memset(&s, 0, sizeof s);
    json_t *o = load(p, len, NULL, type, sizeof type, err, errcap);
    if (!o)
        return -EINVAL;
    int r = 0;
    if (strcmp(type, "welcome") == 0) {
        s.type = CTL_WELCOME;
        json_t *lim = json_object_get(o, "limits");
        r = get_uint(o, "version", &s.version, err, errcap);
        if (!r)
            r = get_str(o, "name", s.name, sizeof s.name, err, errcap);
        if (!r)
            r = get_str(o, "url", s.url, sizeof s.url, err, errcap);
        if (!r)
            r = get_str(o, "reconnect_token", s.reconnect_token, sizeof s.reconnect_token, err,
                        errcap);
        if (!r && lim && !json_is_null(lim) && !json_is_object(lim)) {
            snprintf(err, errcap, "field \"limits\" must be an object");
            r = -EINVAL;
        }
        if (!r && lim && json_is_object(lim)) {
            r = get_uint(lim, "max_streams", &s.max_streams, err, errcap);
            if (!r)
                r = get_uint(lim, "window", &s.window, err, errcap);
            if (!r)
                r = get_uint(lim, "max_frame", &s.max_frame, err, errcap);
            if (!r)
                r = get_uint(lim, "ping_interval", &s.ping_interval, err, errcap);
            if (!r)
                r = get_uint(lim, "grace_period", &s.grace_period, err, errcap);
        }
        if (!r && !s.name[0]) {
            snprintf(err, errcap, "welcome without a name");
            r = -EINVAL;
        }
    } else if (strcmp(type, "error") == 0) {
        s.type = CTL_ERROR;
        r = get_str(o, "code", s.code, sizeof s.code, err, errcap);
        if (!r)
            r = get_str(o, "message", s.message, sizeof s.message, err, errcap);
        if (!r && !s.code[0]) {
            snprintf(err, errcap, "error without a code");
            r = -EINVAL;
        }
    } else if (strcmp(type, "token") == 0) {
        s.type = CTL_TOKEN;
        r = get_str(o, "reconnect_token", s.reconnect_token, sizeof s.reconnect_token, err, errcap);
    } else {
        snprintf(err, errcap, "unknown message type \"%s\"", type);
        r = -EINVAL;
    }
    json_decref(o);
    if (r == 0)
        *out = s;
    return r;
}

static char *dump(json_t *o)
{
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static json_t *opt_str(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

char *ctl_hello_encode(const struct ctl_hello *h)
{
    return dump(json_pack("{s:s, s:i, s:s, s:o, s:o, s:o, s:s}", "type", "hello", "version",
                          (int)h->version, "kind", h->kind[0] ? h->kind : "http", "name",
                          opt_str(h->name), "key", opt_str(h->key), "reconnect_token",
                          opt_str(h->reconnect_token), "client", h->client));
}

char *ctl_welcome_encode(const struct ctl_server *w)
{
    return dump(json_pack("{s:s, s:i, s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i}}", "type",
                          "welcome", "version", CTL_VERSION, "name", w->name, "url", w->url,
                          "reconnect_token", w->reconnect_token, "limits", "max_streams",
                          (int)w->max_streams, "window", (int)w->window, "max_frame",
                          (int)w->max_frame, "ping_interval", (int)w->ping_interval, "grace_period",
                          (int)w->grace_period));
}

char *ctl_error_encode(const char *code, const char *message)
{
    return dump(json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message));
}

char *ctl_token_encode(const char *token)
{
    return dump(json_pack("{s:s, s:s}", "type", "token", "reconnect_token", token));
}
