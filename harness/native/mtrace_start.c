/* Preloaded by the mtrace backend (harness/backends/mtrace.rs) with glibc's
 * libc_malloc_debug.so.0. glibc logs allocations only after the program
 * calls mtrace(); a program written without it (nearly all) would log
 * nothing, so this calls mtrace() from a constructor, before main.
 *
 * Each process logs to files of its own, $LEAKLAB_MTRACE.PID.N: glibc's
 * log is a fully buffered FILE, and a forked child would inherit (and
 * write again) whatever its parent had not flushed yet. So before a fork
 * the parent closes its log (muntrace flushes it) and after it opens the
 * next one (N+1); the child starts its own (from the fork on: blocks it
 * inherited are its parent's). An exec'd image keeps the pid and takes the
 * next free N. */
#define _GNU_SOURCE
#include <limits.h>
#include <mcheck.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char base[PATH_MAX];
static int next;

static void open_next(void)
{
    char path[PATH_MAX + 48];
    for (;;) {
        snprintf(path, sizeof path, "%s.%ld.%d", base, (long)getpid(), next++);
        if (access(path, F_OK) != 0)
            break;
    }
    setenv("MALLOC_TRACE", path, 1);
    mtrace();
}

static void before_fork(void)
{
    muntrace();
}

static void in_child(void)
{
    next = 0;
    open_next();
}

__attribute__((constructor)) static void leaklab_mtrace_start(void)
{
    const char *b = getenv("LEAKLAB_MTRACE");
    if (!b || strlen(b) >= sizeof base)
        return;
    strcpy(base, b);
    pthread_atfork(before_fork, open_next, in_child);
    open_next();
}
