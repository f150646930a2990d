//@ title: aligned blocks from posix_memalign and aligned_alloc, never freed
//@ teaches: aligned allocations are ordinary heap blocks with padding in front; detectors report the requested size
//@ std: c11
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

// A cache-line aligned counter block and a page-aligned I/O buffer,
// both set up and then dropped.
static void setup(void)
{
    void *counters = NULL;
    if (posix_memalign(&counters, 64, 200) == 0) //~ LEAK definite size=200 count=1
        memset(counters, 0, 200); //~^[tcmalloc] MISS: gperftools' heap profile records the size it allocated for an aligned block (256 for posix_memalign(64, 200)), not the size asked for
    counters = NULL; // the out-parameter was the only copy //~^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (256 bytes in 1 block here), not at the size asked for

    char *io = aligned_alloc(4096, 8192); //~ LEAK definite size=8192 count=1
    if (io != NULL) //~^[dmalloc] MISS: dmalloc 5.5 does not replace C11's aligned_alloc: glibc's own serves it, unseen
        memset(io, 'z', 8192);
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    setup();
    puts("set up");
    leaklab_checkpoint();
    return 0;
}
