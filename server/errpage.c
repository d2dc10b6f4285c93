/*
 * errpage: edge-generated responses. Names are validated labels and details
 * are our own text, but everything is still HTML-escaped.
 */
#include <stdio.h>
#include <string.h>

#include "errpage.h"

const char *errpage_reason(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 421:
        return "Misdirected Request";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

static size_t escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 7 < cap; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '&':
            rep = "&amp;";
            break;
        case '"':
            rep = "&quot;";
            break;
        default:
            break;
        }
        if (rep) {
            size_t l = strlen(rep);
            memcpy(out + n, rep, l);
            n += l;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = 0;
    return n;
}

size_t errpage_render(char *out, size_t cap, unsigned status, const char *detail, const char *name,
                      bool html, bool keep_alive, const char *extra_headers)
{
    char body[2048];
    int blen;
    const char *reason = errpage_reason(status);
    if (html) {
        char d[1024];
        escape(d, sizeof d, detail);
        blen = snprintf(body, sizeof body,
                        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%u %s</title>"
                        "</head>\n<body><h1>%u %s</h1>\n<p>%s</p>\n<hr><p>warren edge</p></body>"
                        "</html>\n",
                        status, reason, status, reason, d);
    } else {
        blen = snprintf(body, sizeof body, "%u %s: %s\n", status, reason, detail);
    }
    (void)name;
    if (blen < 0 || (size_t)blen >= sizeof body)
        blen = (int)sizeof body - 1;
    int n = snprintf(out, cap,
                     "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                     "Cache-Control: no-store\r\n%s%s\r\n",
                     status, reason,
                     html ? "text/html; charset=utf-8" : "text/plain; charset=utf-8", blen,
                     keep_alive ? "" : "Connection: close\r\n", extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t room = cap - (size_t)n;
    size_t take = (size_t)blen < room ? (size_t)blen : room;
    memcpy(out + n, body, take);
    return (size_t)n + take;
}
