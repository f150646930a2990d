// Built with -static: memcheck cannot replace its malloc, so it sees no
// allocation; its 64-byte leak must not come out as "no leaks".
#include <stdlib.h>
#include <string.h>
int main(void) {
    char *p = malloc(64);
    memset(p, 'S', 64);
    p = NULL;
    return 0;
}
