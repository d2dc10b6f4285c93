/*
 * errpage: the short responses the edge itself writes (404 tunnel not found,
 * 502, 503, 504, 400...). HTML for browsers (Accept mentions text/html), plain
 * text otherwise. Each says what happened and, where there is one, which name.
 */
#ifndef WARREN_SERVER_ERRPAGE_H
#define WARREN_SERVER_ERRPAGE_H

#include <stdbool.h>
#include <stddef.h>

/* Render a complete response (status line, headers with Content-Length and
 * Connection: close unless keep_alive, body) into out. `detail` is one
 * sentence; name may be NULL. Returns the length (truncated safely to cap). */
size_t errpage_render(char *out, size_t cap, unsigned status, const char *detail, const char *name,
                      bool html, bool keep_alive, const char *extra_headers);

const char *errpage_reason(unsigned status);

#endif
