/*
 * pace: minimum-rate windows (see pace.h). Invariants: start_ms == 0 exactly
 * when no window runs, and then moved == queued == held_ms == 0; a window's
 * verdict depends only on what moved during it.
 */
#include <string.h>

#include "pace.h"

void pace_start(struct pace *p, uint64_t now_ms, uint64_t queued)
{
    p->start_ms = now_ms ? now_ms : 1;
    p->moved = 0;
    p->queued = queued;
    p->held_ms = 0;
}

void pace_stop(struct pace *p)
{
    memset(p, 0, sizeof *p);
}

bool pace_running(const struct pace *p)
{
    return p->start_ms != 0;
}

void pace_moved(struct pace *p, uint64_t n)
{
    if (p->start_ms)
        p->moved += n;
}

uint64_t pace_deadline(const struct pace *p, unsigned window_s)
{
    return p->start_ms && !p->held_ms ? p->start_ms + (uint64_t)window_s * 1000 : 0;
}

void pace_hold(struct pace *p, uint64_t now_ms)
{
    if (p->start_ms && !p->held_ms)
        p->held_ms = now_ms ? now_ms : 1;
}

void pace_resume(struct pace *p, uint64_t now_ms)
{
    if (!p->held_ms)
        return;
    if (now_ms > p->held_ms)
        p->start_ms += now_ms - p->held_ms;
    p->held_ms = 0;
}

bool pace_held(const struct pace *p)
{
    return p->held_ms != 0;
}

enum pace_result pace_check(struct pace *p, uint64_t now_ms, unsigned window_s, unsigned min_rate,
                            uint64_t queued, uint64_t *taken)
{
    if (!p->start_ms || p->held_ms || now_ms < pace_deadline(p, window_s))
        return PACE_RUNNING;
    uint64_t in = p->moved + p->queued;
    uint64_t got = in > queued ? in - queued : 0;
    uint64_t need = min_rate ? (uint64_t)min_rate * window_s : 1;
    *taken = got;
    if (got < need)
        return PACE_SLOW;
    pace_start(p, now_ms, queued);
    return PACE_KEPT_UP;
}
