/*
 * fdlimit: the open-files limit (RLIMIT_NOFILE). Both programs raise the soft
 * limit to the hard one at start: every visitor, tunnel and local connection
 * is a file descriptor, and distributions still default the soft limit to
 * 1024. The caller logs the result (common/ does not log).
 */
#ifndef WARREN_FDLIMIT_H
#define WARREN_FDLIMIT_H

/* Set the soft RLIMIT_NOFILE to the hard limit capped at `cap` (0 for no
 * cap): raised, or lowered when it was above the cap. *before and *after receive the soft limit
 * before and after (equal when nothing changed or the raise failed). 0, or -errno when the limit
 * could not be read or set (then *after is the unchanged limit). */
int fdlimit_raise(unsigned long cap, unsigned long *before, unsigned long *after);

#endif
