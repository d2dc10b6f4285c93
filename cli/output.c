/*
 * output: the CLI's user-facing lines. Human mode prints a status line and
 * one line per request (flushed at once on a terminal, within 100 ms
 * otherwise); --json prints one JSON object per event on stdout (flushed
 * at once, so a pipe sees each event as it happens). Diagnostics go to
 * stderr through log.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

uint64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void emit(json_t *o)
{
    if (!o)
        return;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s) {
        printf("%s\n", s);
        fflush(stdout);
        free(s);
    }
}

void out_online(const struct cli *c)
{
    if (c->cfg->json) {
        emit(json_pack("{s:s, s:s, s:s, s:s, s:i}", "event", "online", "name", c->name, "url",
                       c->url, "local", c->cfg->local_host, "port", (int)c->cfg->port));
        return;
    }
    printf("Forwarding %s -> %s:%u\n", c->url, c->cfg->local_host, c->cfg->port);
    fflush(stdout);
}

static void flush_cb(lws_sorted_usec_list_t *sul)
{
    struct cli *c = lws_container_of(sul, struct cli, flush_sul);
    c->flush_pending = false;
    fflush(stdout);
}

void out_request(struct cli *c, const char *method, const char *path, unsigned status, uint64_t ms,
                 uint64_t bytes_in, uint64_t bytes_out)
{
    if (c->cfg->json) {
        emit(json_pack("{s:s, s:s, s:s, s:i, s:I, s:I, s:I}", "event", "request", "method", method,
                       "path", path, "status", (int)status, "ms", (json_int_t)ms, "bytes_in",
                       (json_int_t)bytes_in, "bytes_out", (json_int_t)bytes_out));
        return;
    }
    printf("%-7s %-40s %3u %6llu ms %10llu B\n", method, path, status, (unsigned long long)ms,
           (unsigned long long)bytes_out);
    if (c->stdout_tty) {
        fflush(stdout);
    } else if (!c->flush_pending) {
        /* a file or a pipe: one write per 100 ms at most, not one per request */
        c->flush_pending = true;
        lws_sul_schedule(c->ctx, 0, &c->flush_sul, flush_cb, 100 * LWS_US_PER_MS);
    }
}

void out_reconnecting(const struct cli *c, unsigned attempt, uint64_t delay_ms, const char *why)
{
    if (c->cfg->json) {
        emit(json_pack("{s:s, s:i, s:I, s:s}", "event", "reconnecting", "attempt", (int)attempt,
                       "delay_ms", (json_int_t)delay_ms, "reason", why));
        return;
    }
    fprintf(stderr, "tunnel: %s; reconnecting in %.1f s (attempt %u)\n", why,
            (double)delay_ms / 1000.0, attempt);
}

void out_error(const struct cli *c, const char *code, const char *message)
{
    if (c->cfg->json) {
        emit(json_pack("{s:s, s:s, s:s}", "event", "error", "code", code, "message", message));
        return;
    }
    fprintf(stderr, "tunnel: %s (%s)\n", message, code);
}

void out_stopped(const struct cli *c)
{
    if (c->cfg->json)
        emit(json_pack("{s:s}", "event", "stopped"));
}
