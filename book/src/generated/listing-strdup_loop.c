//@ title: strdup("test_memory") in a loop, each copy's pointer overwritten by the next (the article's heap-dump demo)
//@ teaches: leaked blocks keep their contents; a dump of [heap] is full of "test_memory"
//@ args: 10
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "leaklab.h"

int main(int argc, char **argv)
{
    long n = leaklab_iterations(argc, argv, 10);
    char *s = NULL;
    for (long i = 0; n == 0 || i < n; i++) {
        s = strdup("test_memory"); //~ LEAK definite size=12 count=10 content="test_memory"
        printf("%p\n", (void *)s); // the address a heap dump will find
        fflush(stdout);
        if (n == 0)
            usleep(100); // thousands a second: glibc grows [heap] 132 KiB at a time, so a slower leak would not show for minutes
    }
    // Drop the last copy too: with it still in `s` valgrind would call one
    // block reachable, not lost.
    s = NULL;
    leaklab_checkpoint();
    return 0;
}
