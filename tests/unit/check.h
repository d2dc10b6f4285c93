/*
 * check.h: the unit tests' tiny assertion kit. CHECK() records a failure with
 * file:line and goes on; check_done() prints "N checks, N failed" and returns
 * the exit status.
 */
#ifndef WARREN_CHECK_H
#define WARREN_CHECK_H

#include <stdio.h>
#include <string.h>

static unsigned check_total, check_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_total++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        check_total++;                                                                             \
        if (check_a_ != check_b_) {                                                                \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n", __FILE__,          \
                    __LINE__, #a, check_a_, #b, check_b_);                                         \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        check_total++;                                                                             \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                           \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,     \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");               \
        }                                                                                          \
    } while (0)

static inline int check_done(void)
{
    printf("%u checks, %u failed\n", check_total, check_failed);
    return check_failed ? 1 : 0;
}

#endif
