// Writes one byte past the end of a 16-byte block: Electric Fence puts the
// block's end against a guard page, so the write faults on this line.
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *p = malloc(16);
    memset(p, 'x', 16);
    p[16] = 0; // the overrun
    free(p);
    return 0;
}
