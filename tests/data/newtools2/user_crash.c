/* Leaks a block, then crashes with a write through a null pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(64);
    memset(p, 'x', 64);
    p = NULL;
    fprintf(stderr, "crashing now\n");
    volatile int *z = NULL;
    *z = 1;
    return 0;
}
