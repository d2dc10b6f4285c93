/*
 * fdlimit: raise RLIMIT_NOFILE's soft limit to its hard limit (see fdlimit.h).
 * Invariant: the hard limit is never touched, and the soft limit never goes
 * down.
 */
#include <errno.h>
#include <sys/resource.h>

#include "fdlimit.h"

int fdlimit_raise(unsigned long cap, unsigned long *before, unsigned long *after)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        *before = *after = 0;
        return -errno;
    }
    *before = *after = (unsigned long)rl.rlim_cur;
    rlim_t want = rl.rlim_max;
    if (cap && (want == RLIM_INFINITY || want > cap))
        want = cap;
    if (want == rl.rlim_cur)
        return 0; /* (a soft limit above the cap is lowered to it) */
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    *after = (unsigned long)want;
    return 0;
}
