//@ title: three 1 MiB blocks from malloc, touched and never freed
//@ teaches: glibc serves blocks above its mmap threshold (128 KiB) with their own mmap, so these leaks are not in [heap] at all: a scanner reading only [heap] misses them
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

#define BIG (1024 * 1024)

// Natively each block is its own mapping of 1 MiB + one page (glibc's
// chunk header, rounded up); adjacent ones merge, so /proc/PID/maps usually
// shows one anonymous rw-p line of a little over 3 MiB next to [heap].
static void leak_big(int tag)
{
    char *p = malloc(BIG); //~ LEAK definite size=1048576 count=3
    memset(p, 'A' + tag, BIG);
}

// memset leaves pointers into the blocks in dead stack slots; a later,
// deeper call can bring such a slot back above the stack pointer, where a
// leak checker finds an interior pointer and says "possibly lost". Wipe the
// dead stack so the verdict does not depend on the layout of the run.
static void scrub_dead_stack(void)
{
    volatile char wipe[16384];
    for (size_t i = 0; i < sizeof wipe; i++)
        wipe[i] = 0;
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    for (int i = 0; i < 3; i++)
        leak_big(i);
    scrub_dead_stack();
    puts("leaked 3 MiB outside [heap]");
    leaklab_checkpoint();
    return 0;
}
