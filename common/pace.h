/*
 * pace: does a transfer keep up a minimum rate? Time is cut into windows of a
 * fixed length that begin when the other side starts to be waited for (a
 * request body is expected, a response waits to be taken); a window in which
 * fewer than max(1, min_rate x length) bytes moved marks the transfer too
 * slow. A slow client is therefore found between one and two window lengths
 * after it slowed down, whatever it did before (an early burst buys at most
 * one window). Bytes that were handed to a queue the other side still has to
 * empty (a socket's send queue) count only once taken from it. While the
 * transfer is held up by somebody else (the tunnel takes no more of a
 * request body), the window's clock stands still: the hold neither counts
 * against the side judged nor takes away what it moved before.
 */
#ifndef WARREN_PACE_H
#define WARREN_PACE_H

#include <stdbool.h>
#include <stdint.h>

struct pace {
    uint64_t start_ms; /* when the running window began; 0: none running */
    uint64_t moved;    /* bytes moved since start_ms */
    uint64_t queued;   /* bytes still waiting to be taken when the window began */
    uint64_t held_ms;  /* when a hold began; 0: not held */
};

/* Begin a window at now_ms (> 0) with `queued` bytes waiting, even if one was
 * running. */
void pace_start(struct pace *p, uint64_t now_ms, uint64_t queued);
/* No more waiting: no window runs until the next pace_start. */
void pace_stop(struct pace *p);
bool pace_running(const struct pace *p);
/* n more bytes moved (ignored while no window runs). */
void pace_moved(struct pace *p, uint64_t n);
/* When the running window ends (0 when none runs, or while held). */
uint64_t pace_deadline(const struct pace *p, unsigned window_s);
/* Held up by somebody else from now_ms: no verdict until pace_resume(),
 * which moves the window's end later by the time held. No effect when no
 * window runs or it is held already (resume: when it is not held). */
void pace_hold(struct pace *p, uint64_t now_ms);
void pace_resume(struct pace *p, uint64_t now_ms);
bool pace_held(const struct pace *p);

enum pace_result {
    PACE_RUNNING, /* no window ended yet (or none runs) */
    PACE_KEPT_UP, /* the window ended with enough bytes taken: the next began */
    PACE_SLOW,    /* the window ended with too few bytes taken */
};

/* Look at the window at now_ms, `queued` bytes waiting to be taken now.
 * Taken = moved + queued at the start - queued now (never below 0), written
 * to *taken when a window ended. PACE_KEPT_UP begins the next window at
 * now_ms; PACE_SLOW leaves the window as it was. */
enum pace_result pace_check(struct pace *p, uint64_t now_ms, unsigned window_s, unsigned min_rate,
                            uint64_t queued, uint64_t *taken);

#endif
