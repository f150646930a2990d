#include <stdlib.h>

static char *keep(void) //~[dmalloc] FALSE: no stack
{
    char *p = malloc(8); //~ LEAK definite size=8 count=1
    //~^[valgrind] MISS: a note on its own line
    //~^^[heaptrack] MISS: and another one
    char *q = malloc(16);
    //~^ LEAK indirect size=16 count=1
    //~[lsan] MISS: a note that names this line
    char *r = malloc(32);   // a plain comment stays
    //~^^^^ LEAK possible size=16 count=1
    return p + (q != r);
}
