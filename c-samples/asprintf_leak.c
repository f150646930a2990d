//@ title: strings formatted with asprintf and never freed
//@ teaches: asprintf hands back a heap string the caller owns; forgetting it is a leak at the asprintf call, with the formatted text still inside
#define _GNU_SOURCE
#include <stdio.h>
#include "leaklab.h"

static void log_user(int id)
{
    char *msg = NULL;
    if (asprintf(&msg, "user-%04d logged in", id) < 0) //~ LEAK definite size=20 count=4 content="user-"
    //~^[debug-new] MISS: asprintf allocates inside libc, which the forced include does not recompile
    //~^^[bcc] MISS: the stack ends inside libc's vasprintf, built without frame pointers: the caller's frame is lost (the block is in the report's notes)
        return;
    puts(msg); // missing: free(msg)
    msg = NULL; //~^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (128 bytes in 4 blocks here), not at the size asked for
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    for (int id = 1; id <= 4; id++)
        log_user(id);
    leaklab_checkpoint();
    return 0;
}
