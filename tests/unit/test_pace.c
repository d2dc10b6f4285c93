/*
 * test_pace: minimum-rate windows. Nothing is judged before a window ends; a
 * window with at least min_rate x length bytes starts the next one, with
 * fewer it is slow (also with min_rate 0 when nothing at all moved); bytes
 * only handed to a queue count once taken from it; a burst buys one window,
 * not more; a stopped pace judges nothing and ignores bytes; a hold stops
 * the clock without taking away what moved before it.
 */
#include "check.h"
#include "pace.h"

static void test_window(void)
{
    struct pace p = {0};
    uint64_t taken = 99;
    CHECK(!pace_running(&p));
    CHECK_EQ(pace_check(&p, 5000, 10, 500, 0, &taken), PACE_RUNNING);
    pace_moved(&p, 100000); /* not running: ignored */
    pace_start(&p, 1000, 0);
    CHECK(pace_running(&p));
    CHECK_EQ(pace_deadline(&p, 10), 11000);
    pace_moved(&p, 4999);
    CHECK_EQ(pace_check(&p, 10999, 10, 500, 0, &taken), PACE_RUNNING);
    CHECK_EQ(taken, 99); /* untouched while running */
    CHECK_EQ(pace_check(&p, 11000, 10, 500, 0, &taken), PACE_SLOW);
    CHECK_EQ(taken, 4999);
    CHECK_EQ(pace_deadline(&p, 10), 11000); /* a slow window is left as it was */
    pace_moved(&p, 1);
    CHECK_EQ(pace_check(&p, 11500, 10, 500, 0, &taken), PACE_KEPT_UP);
    CHECK_EQ(taken, 5000);
    CHECK_EQ(pace_deadline(&p, 10), 21500); /* the next window began then */
    CHECK_EQ(pace_check(&p, 21500, 10, 500, 0, &taken), PACE_SLOW);
    CHECK_EQ(taken, 0);
}

static void test_burst_buys_one_window(void)
{
    struct pace p = {0};
    uint64_t taken;
    pace_start(&p, 1, 0);
    pace_moved(&p, 50 << 20); /* a burst, then nothing */
    CHECK_EQ(pace_check(&p, 10001, 10, 500, 0, &taken), PACE_KEPT_UP);
    CHECK_EQ(pace_check(&p, 20001, 10, 500, 0, &taken), PACE_SLOW);
    CHECK_EQ(taken, 0);
}

static void test_queue(void)
{
    struct pace p = {0};
    uint64_t taken;
    /* 1 MB handed to a queue that was empty, of which 4000 were taken */
    pace_start(&p, 1000, 0);
    pace_moved(&p, 1000000);
    CHECK_EQ(pace_check(&p, 11000, 10, 500, 996000, &taken), PACE_SLOW);
    CHECK_EQ(taken, 4000);
    /* the queue held 8000 at the start and is empty now: all of it counts */
    pace_start(&p, 1000, 8000);
    CHECK_EQ(pace_check(&p, 11000, 10, 500, 0, &taken), PACE_KEPT_UP);
    CHECK_EQ(taken, 8000);
    CHECK_EQ(p.queued, 0);
    /* a queue that grew without anything moved (cannot happen, must not wrap) */
    pace_start(&p, 1000, 10);
    CHECK_EQ(pace_check(&p, 11000, 10, 500, 50, &taken), PACE_SLOW);
    CHECK_EQ(taken, 0);
}

static void test_min_rate_zero(void)
{
    struct pace p = {0};
    uint64_t taken;
    pace_start(&p, 1, 0);
    CHECK_EQ(pace_check(&p, 30001, 30, 0, 0, &taken), PACE_SLOW); /* not one byte */
    pace_start(&p, 1, 0);
    pace_moved(&p, 1);
    CHECK_EQ(pace_check(&p, 30001, 30, 0, 0, &taken), PACE_KEPT_UP);
    pace_stop(&p);
    CHECK(!pace_running(&p));
    CHECK_EQ(pace_deadline(&p, 30), 0);
    CHECK_EQ(pace_check(&p, 1000000, 30, 0, 0, &taken), PACE_RUNNING);
    /* time 0 is a valid start: it still counts as running */
    pace_start(&p, 0, 0);
    CHECK(pace_running(&p));
}

/* A hold stops the clock: no verdict while held, the window ends later by
 * the time held, and what moved before the hold still counts. */
static void test_hold(void)
{
    struct pace p = {0};
    uint64_t taken = 0;
    pace_hold(&p, 500); /* nothing runs: no effect */
    CHECK(!pace_held(&p));
    pace_start(&p, 1000, 0);
    pace_moved(&p, 4000); /* a burst, then the tunnel holds the body back */
    pace_hold(&p, 1100);
    CHECK(pace_held(&p));
    CHECK_EQ(pace_deadline(&p, 10), 0);
    CHECK_EQ(pace_check(&p, 60000, 10, 500, 0, &taken), PACE_RUNNING); /* held 59 s */
    pace_hold(&p, 30000); /* held already: the first hold counts */
    pace_resume(&p, 61100);
    CHECK(!pace_held(&p));
    CHECK_EQ(pace_deadline(&p, 10), 71000); /* 11000 + the 60 s held */
    CHECK_EQ(pace_check(&p, 70999, 10, 500, 0, &taken), PACE_RUNNING);
    pace_moved(&p, 999);
    CHECK_EQ(pace_check(&p, 71000, 10, 500, 0, &taken), PACE_SLOW);
    CHECK_EQ(taken, 4999); /* the burst before the hold counted */
    pace_moved(&p, 1);
    CHECK_EQ(pace_check(&p, 71000, 10, 500, 0, &taken), PACE_KEPT_UP);
    pace_resume(&p, 80000); /* not held: no effect */
    CHECK_EQ(pace_deadline(&p, 10), 81000);
    pace_hold(&p, 75000);
    pace_start(&p, 76000, 0); /* a new window is not held */
    CHECK(!pace_held(&p));
    pace_hold(&p, 77000);
    pace_stop(&p);
    CHECK(!pace_held(&p));
}

int main(void)
{
    test_window();
    test_burst_buys_one_window();
    test_queue();
    test_min_rate_zero();
    test_hold();
    return check_done();
}
