/* manystacks.c: `manystacks LEVELS` leaks one 24-byte block from each of
 * 2^LEVELS distinct call stacks (a descent that, at each level, goes on
 * through one of two functions), then stops itself at a checkpoint when
 * LEAKLAB_CHECKPOINT is set, as c-samples/leaklab.h does.
 *
 * A detector that keeps stacks in a fixed table (bcc's memleak: a BPF stack
 * map of 10240 entries, rounded up to 16384 buckets, that refuses a stack
 * whose bucket is taken) loses stacks here; it must not lose the blocks.
 * Exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void *sink[1 << 16];
static unsigned nsink;

static void down_a(int level, unsigned path);
static void down_b(int level, unsigned path);

static void descend(int level, unsigned path)
{
    if (level == 0) {
        sink[nsink++] = malloc(24);
        sink[nsink - 1] = NULL; /* the only pointer gone: a definite leak */
        return;
    }
    if (path & 1)
        down_a(level - 1, path >> 1);
    else
        down_b(level - 1, path >> 1);
}

/* Two functions, so that each level's choice is a different return address
 * in the frame below. noinline and the volatile keep them real frames. */
static volatile int keep;
__attribute__((noinline)) static void down_a(int level, unsigned path) { descend(level, path); keep++; }
__attribute__((noinline)) static void down_b(int level, unsigned path) { descend(level, path); keep--; }

int main(int argc, char **argv)
{
    int levels = argc > 1 ? atoi(argv[1]) : 14;
    if (levels < 1 || levels > 16) {
        fprintf(stderr, "usage: manystacks [LEVELS 1..16]\n");
        return 2;
    }
    for (unsigned path = 0; path < (1u << levels); path++)
        descend(levels, path);
    if (getenv("LEAKLAB_CHECKPOINT"))
        raise(SIGSTOP);
    return 0;
}
