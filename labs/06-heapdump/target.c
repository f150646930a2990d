/* target.c: lab 06's target, after the source article's demo. It strdup()s
 * "test_memory" a random number of times, overwriting the pointer each time,
 * so all but the last copy leak, and copies a random word three times. It
 * prints its pid, the count and the word, then waits, doing nothing, until it
 * is killed. Whenever something stops it while it waits (ptrace attaching,
 * SIGSTOP), its wait is interrupted and it says so on stdout.
 *     cc -g -I../../c-samples target.c -o target && ./target &
 * Do not edit it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "leaklab.h"

int main(void)
{
    unsigned char seed[8];
    if (getrandom(seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
        perror("getrandom");
        return 1;
    }
    long n = 5 + seed[0] % 36;
    char word[32];
    snprintf(word, sizeof word, "word-%02x%02x%02x%02x%02x%02x", seed[1], seed[2], seed[3], seed[4], seed[5], seed[6]);
    char *s = NULL;
    for (long i = 0; i < n; i++) {
        s = strdup("test_memory");
        if (s == NULL)
            return 1;
    }
    for (int i = 0; i < 3; i++)
        if (strdup(word) == NULL)
            return 1;
    printf("target: pid %d, %ld copies of test_memory, 3 of %s\n", (int)getpid(), n, word);
    fflush(stdout);
    /* With LEAKLAB_CHECKPOINT set, stop here until the checker says go on. */
    leaklab_checkpoint();
    /* An epoll set with nothing in it: epoll_wait sleeps until a signal or a
     * ptrace stop wakes it, and then fails with EINTR (it is never restarted). */
    int ep = epoll_create1(0);
    if (ep < 0) {
        perror("epoll_create1");
        return 1;
    }
    for (;;) {
        struct epoll_event ev;
        if (epoll_wait(ep, &ev, 1, -1) < 0 && errno == EINTR) {
            printf("target: interrupted\n");
            fflush(stdout);
        }
    }
}
