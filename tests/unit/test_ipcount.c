/*
 * test_ipcount: counts per address. Counts go up and down per address
 * independently; an address at 0 is forgotten (and makes room for a new
 * one); a table full of addresses refuses a new one with -ENOSPC but still
 * counts the ones it has; removing an address that is not counted changes
 * nothing; 100,000 add/remove pairs over many addresses leave it empty.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "check.h"
#include "ipcount.h"

static struct ipkey key(unsigned i)
{
    struct ipkey k;
    memset(&k, 0, sizeof k);
    k.b[0] = 0x20;
    k.b[1] = 0x01;
    k.b[4] = (uint8_t)(i >> 16);
    k.b[5] = (uint8_t)(i >> 8);
    k.b[6] = (uint8_t)i;
    return k;
}

static void test_counts(void)
{
    ipcount *c = ipcount_new(100);
    CHECK(c != NULL);
    struct ipkey a = key(1), b = key(2);
    CHECK_EQ(ipcount_get(c, &a), 0);
    CHECK_EQ(ipcount_add(c, &a), 1);
    CHECK_EQ(ipcount_add(c, &a), 2);
    CHECK_EQ(ipcount_add(c, &b), 1);
    CHECK_EQ(ipcount_get(c, &a), 2);
    CHECK_EQ(ipcount_get(c, &b), 1);
    CHECK_EQ(ipcount_keys(c), 2);
    ipcount_remove(c, &a);
    CHECK_EQ(ipcount_get(c, &a), 1);
    ipcount_remove(c, &a);
    CHECK_EQ(ipcount_get(c, &a), 0);
    CHECK_EQ(ipcount_keys(c), 1);
    ipcount_remove(c, &a); /* not counted: nothing happens */
    CHECK_EQ(ipcount_get(c, &a), 0);
    CHECK_EQ(ipcount_get(c, &b), 1);
    ipcount_free(c);
}

static void test_full(void)
{
    ipcount *c = ipcount_new(3);
    for (unsigned i = 0; i < 3; i++) {
        struct ipkey k = key(i);
        CHECK_EQ(ipcount_add(c, &k), 1);
    }
    struct ipkey extra = key(99), k0 = key(0);
    CHECK_EQ(ipcount_add(c, &extra), -ENOSPC);
    CHECK_EQ(ipcount_get(c, &extra), 0);
    CHECK_EQ(ipcount_add(c, &k0), 2); /* a known address still counts */
    ipcount_remove(c, &k0);
    ipcount_remove(c, &k0); /* k0 forgotten: room for one */
    CHECK_EQ(ipcount_keys(c), 2);
    CHECK_EQ(ipcount_add(c, &extra), 1);
    ipcount_free(c);
}

static void test_churn(void)
{
    ipcount *c = ipcount_new(5000);
    for (unsigned round = 0; round < 20; round++) {
        for (unsigned i = 0; i < 5000; i++) {
            struct ipkey k = key(i * 7 + round);
            CHECK(ipcount_add(c, &k) >= 1);
        }
        CHECK_EQ(ipcount_keys(c), 5000);
        for (unsigned i = 0; i < 5000; i++) {
            struct ipkey k = key(i * 7 + round);
            ipcount_remove(c, &k);
        }
        CHECK_EQ(ipcount_keys(c), 0);
    }
    ipcount_free(c);
}

static void test_bad_args(void)
{
    errno = 0;
    CHECK(ipcount_new(0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(ipcount_new((1u << 24) + 1) == NULL);
    ipcount_free(NULL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_counts();
    test_full();
    test_churn();
    test_bad_args();
    return check_done();
}
