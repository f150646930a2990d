// Mid-run leak checks (VALGRIND_DO_LEAK_CHECK, then the "added" variant)
// before the check at exit. Only the check at exit counts: at exit, 3 blocks
// of 16 bytes and 1 of 32 are definitely lost, 80 bytes in 4 blocks.
#include <stdlib.h>
#include <string.h>
#include <valgrind/memcheck.h>

static void *keep;

static void lose16(void) {
    char *p = malloc(16);
    memset(p, 1, 16);
}

int main(void) {
    for (int i = 0; i < 3; i++) lose16();
    VALGRIND_DO_LEAK_CHECK;
    keep = malloc(32);
    VALGRIND_DO_ADDED_LEAK_CHECK;
    keep = NULL;
    VALGRIND_DO_CHANGED_LEAK_CHECK;
    return 0;
}
