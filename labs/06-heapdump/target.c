/* target.c: lab 06's target, after the source article's demo. It strdup()s
 * "test_memory" N times, overwriting the pointer each time, so all but the
 * last copy leak; it also copies a word given on its command line three
 * times. Then it lives on, doing nothing, until it is killed.
 *     cc -g -I../../c-samples target.c -o target && ./target 20 hello &
 * Do not edit it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leaklab.h"

int main(int argc, char **argv)
{
    long n = leaklab_iterations(argc, argv, 10);
    const char *word = argc > 2 ? argv[2] : "canary";
    char *s = NULL;
    for (long i = 0; i < n; i++) {
        s = strdup("test_memory");
        if (s == NULL)
            return 1;
    }
    for (int i = 0; i < 3; i++)
        if (strdup(word) == NULL)
            return 1;
    printf("target: pid %d, last copy at %p\n", (int)getpid(), (void *)s);
    fflush(stdout);
    /* With LEAKLAB_CHECKPOINT set, stop here until the checker says go on. */
    leaklab_checkpoint();
    for (;;)
        pause();
}
