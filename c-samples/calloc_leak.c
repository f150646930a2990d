//@ title: a zeroed table from calloc, filled in and never freed
//@ teaches: calloc blocks leak like malloc ones; the reported size is nmemb * size
#include <stdio.h>
#include <stdlib.h>
#include "leaklab.h"

struct sample {
    double t, value;
    long flags, id;
}; // 32 bytes

static double average(int n)
{
    struct sample *table = calloc(n, sizeof *table); //~ LEAK definite size=320 count=1
    double sum = 0;
    for (int i = 0; i < n; i++) {
        table[i].t = i;
        table[i].value = i * 1.5;
        sum += table[i].value;
    }
    return sum / n; // the table is forgotten here
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    printf("average: %.2f\n", average(10));
    leaklab_checkpoint();
    return 0;
}
