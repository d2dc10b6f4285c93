/*
 * log: one line per event on stderr: time, level, message. The level test
 * happens before any formatting. Callers put the tunnel name and stream id in
 * the message ("tunnel=myapp stream=7 ..."); secrets, keys and tokens are
 * never passed to these functions.
 */
#ifndef WARREN_LOG_H
#define WARREN_LOG_H

#include <stdbool.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* The process's log level: the one global beside the parsed configuration. */
extern int log_level;

/* Set the program name shown in each line. */
void log_init(const char *prog, int level);
/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int log_level_parse(const char *s);

void log_emit(int level, bool with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_errx(...) log_emit(LOG_ERROR, false, __VA_ARGS__)
#define log_err(...) log_emit(LOG_ERROR, true, __VA_ARGS__)
#define log_warnx(...)                                                                             \
    do {                                                                                           \
        if (log_level >= LOG_WARN)                                                                 \
            log_emit(LOG_WARN, false, __VA_ARGS__);                                                \
    } while (0)
/* Like log_warnx, with ": strerror(errno)" appended. */
#define log_warn(...)                                                                              \
    do {                                                                                           \
        if (log_level >= LOG_WARN)                                                                 \
            log_emit(LOG_WARN, true, __VA_ARGS__);                                                 \
    } while (0)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_level >= LOG_INFO)                                                                 \
            log_emit(LOG_INFO, false, __VA_ARGS__);                                                \
    } while (0)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_level >= LOG_DEBUG)                                                                \
            log_emit(LOG_DEBUG, false, __VA_ARGS__);                                               \
    } while (0)

#endif
