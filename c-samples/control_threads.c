//@ title: control: threads that malloc and free, joined before exit
//@ teaches: thread stacks, TLS and the per-thread malloc arenas are not leaks; nothing here may be reported
//@ cflags: -pthread
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

#define WORKERS 4

static void *worker(void *arg)
{
    long id = (long)arg, total = 0;
    for (int i = 0; i < 100; i++) {
        char *buf = malloc(64 + i);
        snprintf(buf, 64, "worker %ld round %d", id, i);
        total += (long)strlen(buf);
        free(buf);
    }
    return (void *)total;
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < WORKERS; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("%ld chars\n", sum);
    leaklab_checkpoint();
    return 0;
}
