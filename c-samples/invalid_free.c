//@ title: free() of a pointer no allocation returned: one into the middle of a block, one to the stack
//@ teaches: free takes exactly what malloc returned; glibc aborts on anything else ("free(): invalid pointer"), and the block whose middle was passed is never released
//@ backends: hook, valgrind, dmalloc, efence, asan, asan-clang
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    char *line = malloc(64); //~ LEAK definite size=64
    strcpy(line, "key=value"); //~^[efence] MISS: Electric Fence finds no leaks
    char *value = strchr(line, '=') + 1;
    printf("%s\n", value);
    free(value); //~ BADFREE invalid

    char local[16] = "on the stack";
    char *p = local;
    printf("%s\n", p);
    free(p); //~ BADFREE invalid
    leaklab_checkpoint(); //~^[efence] MISS: Electric Fence aborted the program at the first bad free (line 15): this one never ran
    return 0;
}
