//@ title: a function that prints and leaks one string
//@ teaches: stdout's buffer (malloc'd by the first printf) is the C runtime's, not a leak; the strdup next to it is
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

static void greet(const char *who)
{
    char *line = strdup(who); //~ LEAK definite size=6 count=1
    printf("hello, %s\n", line);
    line = NULL;
}
//~^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (8 bytes in 1 block here), not at the size asked for
int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    greet("world");
    fflush(stdout);
    leaklab_checkpoint();
    return 0;
}
