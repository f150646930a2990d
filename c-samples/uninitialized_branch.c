//@ title: no leak, but a branch on a heap value that was never written
//@ teaches: memcheck also tracks definedness bit by bit; --track-origins=yes names the allocation the undefined value came from
#include <stdio.h>
#include <stdlib.h>
#include "leaklab.h"

// A leak-free program with the other bug the article shows valgrind finding:
// malloc does not zero memory, so `flags[3]` holds whatever was there.
static int count_set(const int *flags, int n)
{
    int set = 0;
    for (int i = 0; i < n; i++)
        if (flags[i])
            set++;
    return set;
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    int *flags = malloc(8 * sizeof *flags);
    if (flags == NULL)
        return 1;
    for (int i = 0; i < 8; i++)
        if (i != 3) // element 3 is forgotten
            flags[i] = i % 2;
    printf("%d flags set\n", count_set(flags, 8));
    free(flags);
    leaklab_checkpoint();
    return 0;
}
