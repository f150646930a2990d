/* leaklab.h: the catalogue's tiny helper. Header-only so every sample stays
 * one standalone file that also builds by hand: cc -g sample.c -o sample */
#ifndef LEAKLAB_H
#define LEAKLAB_H

#include <signal.h>
#include <stdlib.h>

/* Where a live inspector (ptrace scan, bcc memleak) looks at the process.
 * With LEAKLAB_CHECKPOINT set the process stops itself; the harness inspects
 * it and sends SIGCONT. Unset, nothing happens. */
static inline void leaklab_checkpoint(void)
{
    if (getenv("LEAKLAB_CHECKPOINT") != NULL)
        raise(SIGSTOP);
}

/* The iteration count from argv[1], or `fallback` without one.
 * 0 means "forever", for watching a live leak with top or pmap. */
static inline long leaklab_iterations(int argc, char **argv, long fallback)
{
    if (argc < 2)
        return fallback;
    return strtol(argv[1], NULL, 10);
}

#endif
