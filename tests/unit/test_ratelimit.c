/*
 * test_ratelimit: token buckets per address. A new address has a full
 * burst, then is refused with the exact wait until its next token; tokens
 * come back at the rate and never above the burst; addresses do not share
 * buckets; a table far smaller than the number of addresses never grows and
 * forgets refilled buckets first; bad arguments are refused.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "ratelimit.h"

static struct ipkey key(unsigned i)
{
    struct ipkey k;
    memset(&k, 0, sizeof k);
    k.b[10] = k.b[11] = 0xff;
    k.b[12] = 10;
    k.b[13] = (uint8_t)(i >> 16);
    k.b[14] = (uint8_t)(i >> 8);
    k.b[15] = (uint8_t)i;
    return k;
}

static void test_burst_and_rate(void)
{
    ratelimit *rl = ratelimit_new(5, 20, 64); /* 5/s, burst 20 */
    CHECK(rl != NULL);
    struct ipkey a = key(1), b = key(2);
    uint64_t t = 1000000;
    for (int i = 0; i < 20; i++)
        CHECK_EQ(ratelimit_take(rl, &a, t), 0);
    CHECK_EQ(ratelimit_take(rl, &a, t), 200); /* one token per 200 ms */
    CHECK_EQ(ratelimit_take(rl, &a, t + 150), 50);
    CHECK_EQ(ratelimit_take(rl, &a, t + 200), 0);
    CHECK_EQ(ratelimit_take(rl, &a, t + 200), 200);
    /* another address is not affected */
    CHECK_EQ(ratelimit_take(rl, &b, t + 200), 0);
    /* over a long run the accepted count follows the rate: 10 s -> 50 */
    unsigned ok = 0;
    for (uint64_t ms = 0; ms < 10000; ms += 10)
        ok += ratelimit_take(rl, &a, t + 201 + ms) == 0;
    CHECK(ok >= 49 && ok <= 51);
    /* an idle hour refills to the burst, not beyond */
    t += 3600 * 1000;
    ok = 0;
    for (int i = 0; i < 40; i++)
        ok += ratelimit_take(rl, &a, t) == 0;
    CHECK_EQ(ok, 20);
    /* a clock that stands still gives nothing back */
    CHECK(ratelimit_take(rl, &a, t) > 0);
    CHECK_EQ(ratelimit_active(rl, t), 1); /* b refilled long ago */
    CHECK_EQ(ratelimit_active(rl, t + 3600 * 1000), 0);
    ratelimit_free(rl);
}

static void test_slow_rate_wait(void)
{
    ratelimit *rl = ratelimit_new(1, 1, 8);
    struct ipkey a = key(7);
    CHECK_EQ(ratelimit_take(rl, &a, 50), 0);
    CHECK_EQ(ratelimit_take(rl, &a, 50), 1000);
    CHECK_EQ(ratelimit_take(rl, &a, 999), 51);
    CHECK_EQ(ratelimit_take(rl, &a, 1050), 0);
    ratelimit_free(rl);
}

static void test_bounded_table(void)
{
    /* 64 slots: one hammering address is held back while a few others
     * come and go (they fit in free slots, so it keeps its state) */
    ratelimit *rl = ratelimit_new(1, 2, 64);
    uint64_t t = 5000;
    struct ipkey bad = key(1);
    CHECK_EQ(ratelimit_take(rl, &bad, t), 0);
    CHECK_EQ(ratelimit_take(rl, &bad, t), 0);
    CHECK(ratelimit_take(rl, &bad, t) > 0);
    for (unsigned i = 0; i < 4; i++) {
        struct ipkey k = key(1000 + i);
        CHECK_EQ(ratelimit_take(rl, &k, t), 0);
    }
    CHECK(ratelimit_take(rl, &bad, t) > 0);
    CHECK_EQ(ratelimit_active(rl, t), 5);
    /* a second later the others have refilled and their slots are free to
     * reuse; the hammering address got exactly one token back */
    CHECK_EQ(ratelimit_active(rl, t + 1000), 1);
    CHECK_EQ(ratelimit_take(rl, &bad, t + 1000), 0);
    CHECK(ratelimit_take(rl, &bad, t + 1000) > 0);
    /* once every bucket has refilled, nothing is held */
    CHECK_EQ(ratelimit_active(rl, t + 10000), 0);
    ratelimit_free(rl);
}

static void test_many_keys(void)
{
    ratelimit *rl = ratelimit_new(1, 1, 64);
    uint64_t t = 1;
    for (unsigned i = 0; i < 10000; i++) {
        struct ipkey k = key(i);
        CHECK_EQ(ratelimit_take(rl, &k, t), 0);
    }
    CHECK(ratelimit_active(rl, t) <= 64);
    /* the most recent address is still remembered (held back) */
    struct ipkey last = key(9999);
    CHECK(ratelimit_take(rl, &last, t) > 0);
    ratelimit_free(rl);
}

static void test_bad_args(void)
{
    errno = 0;
    CHECK(ratelimit_new(0, 1, 8) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(ratelimit_new(1, 0, 8) == NULL);
    CHECK(ratelimit_new(RATELIMIT_MAX + 1, 1, 8) == NULL);
    CHECK(ratelimit_new(1, RATELIMIT_MAX + 1, 8) == NULL);
    CHECK(ratelimit_new(1, 1, 0) == NULL);
    CHECK(ratelimit_new(1, 1, (1u << 20) + 1) == NULL);
    ratelimit *rl = ratelimit_new(RATELIMIT_MAX, RATELIMIT_MAX, 1);
    CHECK(rl != NULL);
    struct ipkey a = key(3);
    CHECK_EQ(ratelimit_take(rl, &a, UINT64_MAX / 2), 0);
    ratelimit_free(rl);
    ratelimit_free(NULL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_burst_and_rate();
    test_slow_rate_wait();
    test_bounded_table();
    test_many_keys();
    test_bad_args();
    return check_done();
}
