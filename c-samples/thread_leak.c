//@ title: worker threads that each leak one block, all joined before exit
//@ teaches: a leak is per process, not per thread: the loss record points into the worker, and the thread being gone changes nothing
//@ cflags: -pthread
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

#define WORKERS 4

// Each worker builds a result string it is supposed to hand back, but
// returns only its length. Its stack dies with it, and so does the pointer.
static void *worker(void *arg)
{
    long id = (long)arg;
    char *result = malloc(48); //~ LEAK definite size=48 count=4
    snprintf(result, 48, "worker %ld finished", id); //~^[tcmalloc] MISS: the heap checker counts all 4 blocks as live at exit: a root it scans still holds their addresses (the same on every run with a fixed layout)
    return (void *)(long)strlen(result);
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < WORKERS; i++) {
        void *len;
        pthread_join(t[i], &len);
        printf("worker %d: %ld chars\n", i, (long)len);
    }
    leaklab_checkpoint();
    return 0;
}
