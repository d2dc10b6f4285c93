/*
 * log: formats one line per call on stderr with a UTC timestamp. stderr is
 * unbuffered, and each line is written with a single write() so lines from
 * concurrent processes do not interleave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int log_level = LOG_INFO;
static const char *log_prog = "warren";

void log_init(const char *prog, int level)
{
    log_prog = prog;
    log_level = level;
}

int log_level_parse(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

void log_emit(int level, bool with_errno, const char *fmt, ...)
{
    static const char *tags[] = {"error", "warn", "info", "debug"};
    int saved = errno;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, log_prog, (int)getpid(), tags[level & 3]);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if ((size_t)n >= sizeof line - 64)
        n = (int)sizeof line - 64;
    if (with_errno)
        n += snprintf(line + n, sizeof line - (size_t)n, ": %s", strerror(saved));
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
    errno = saved;
}
