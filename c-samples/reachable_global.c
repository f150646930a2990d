//@ title: a block still pointed to by a global when the program exits
//@ teaches: "still reachable" is not a bug by itself: the memory could have been freed, and the OS takes it back at exit
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

static char *g_config;

static void load_config(void)
{
    g_config = malloc(100); //~ LEAK reachable size=100 count=1
    //~^[lsan] MISS: LSan reports leaks only: a block still reachable at exit is not one
    strcpy(g_config, "verbose=1"); //~^^[tcmalloc] MISS: the heap checker reports unreachable blocks only: a block still reachable at exit is not a leak to it
} //~^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (112 bytes in 1 block here), not at the size asked for
//~^^^^[asan] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{ //~^^^^^^[lsan-clang] MISS: LSan reports leaks only: a block still reachable at exit is not one
    load_config(); //~^^^^^^^[asan-clang] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
    printf("config: %s\n", g_config);
    leaklab_checkpoint();
    return 0; // g_config still points at its block
}
