/* The lsan probe's leak (7 bytes, lost when leak() returns), with copies of
 * its address left on purpose in a large dead frame, where exit()'s frames
 * and LeakSanitizer's own later run: a check that scans the stacks
 * (use_stacks=1) finds a "pointer" to the block there and misses the leak,
 * as the real probe did now and then, depending on where ASLR put the stack. */
#include <stdlib.h>

void *volatile sink;

static void leak(void)
{
    sink = malloc(7);
}

__attribute__((noinline)) static void stale_copies(void *p)
{
    volatile void *pad[16384];
    for (size_t i = 0; i < sizeof pad / sizeof pad[0]; i++)
        pad[i] = p;
}

int main(void)
{
    leak();
    stale_copies(sink);
    sink = NULL;
    return 0;
}
