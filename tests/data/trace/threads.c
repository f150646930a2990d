// threads MODE: how a threaded process ends. Each thread leaks one block
// (content "main-block" / "worker-block"); MODE:
//  thread_exit   a worker calls pthread_exit while main runs on, then main returns 0
//  main_exit     main calls pthread_exit; the worker returns later (the process ends with it)
//  group_exit    a worker calls exit(3) while main waits in pthread_join
//  thread_crash  a worker dereferences NULL while main waits
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *mode;
static void *lost;

static void *worker(void *arg)
{
    (void)arg;
    char *p = malloc(48);
    strcpy(p, "worker-block");
    p = NULL;
    if (!strcmp(mode, "thread_exit"))
        pthread_exit(NULL);
    if (!strcmp(mode, "main_exit"))
        usleep(100000);
    if (!strcmp(mode, "group_exit"))
        exit(3);
    if (!strcmp(mode, "thread_crash")) {
        volatile int *z = NULL;
        *z = 1;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "thread_exit";
    char *p = malloc(40);
    strcpy(p, "main-block");
    p = NULL;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    if (!strcmp(mode, "main_exit"))
        pthread_exit(NULL);
    pthread_join(t, NULL);
    usleep(20000);
    lost = NULL;
    return 0;
}
