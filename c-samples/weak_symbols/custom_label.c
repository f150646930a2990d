// The program's own, strong definition of make_label.
#include <stdio.h>
#include <stdlib.h>

char *make_label(int id)
{
    char *s = malloc(24); //~ LEAK definite size=24 count=1
    snprintf(s, 24, "custom-%d", id); //~^[jemalloc] MISS: jemalloc's profile counts each block at its size class (32 bytes in 1 block here), not at the size asked for
    return s;
}
