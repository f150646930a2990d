//@ title: the line buffers that getline() allocates inside libc, never freed
//@ teaches: libc functions allocate on your behalf; the leak's innermost frame is in libc, the first frame in your code is the getline call
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include "leaklab.h"

static const char text[] = "alpha\nbeta\ngamma\n";

// Each call starts from a NULL buffer, so getline mallocs a fresh one
// (glibc's first allocation is 120 bytes, enough for these short lines).
static size_t first_word_length(FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in); //~ LEAK definite size=120 count=3
    //~^[debug-new] MISS: getline allocates inside libc, which the forced include does not recompile
    //~^^[bcc] MISS: the stack ends inside libc's getdelim, built without frame pointers: the caller's frame is lost (the block is in the report's notes)
    return n > 0 ? strcspn(line, "\n") : 0; // missing: free(line)
}
//~^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (384 bytes in 3 blocks here), not at the size asked for
int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    FILE *in = fmemopen((void *)text, sizeof text - 1, "r");
    if (in == NULL) {
        perror("fmemopen");
        return 1;
    }
    for (int i = 0; i < 3; i++)
        printf("line %d: %zu chars\n", i + 1, first_word_length(in));
    fclose(in);
    leaklab_checkpoint();
    return 0;
}
