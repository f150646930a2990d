// Two threads still blocked when main returns: memcheck sees each one's
// DTV (allocated by the loader in _dl_allocate_tls, pointed to from inside
// the thread's control block) as "possibly lost". The program itself leaks
// one block of 48 bytes.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static __thread char scratch[64];

static void *park(void *arg) {
    (void)arg;
    scratch[0] = 1; // touch the thread's own TLS
    for (;;) pause();
    return NULL;
}

int main(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, park, NULL);
    usleep(100000);
    char *lost = malloc(48);
    memset(lost, 'L', 48);
    lost = NULL;
    return 0;
}
