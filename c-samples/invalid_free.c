//@ title: free() of a pointer no allocation returned: one into the middle of a block, one to the stack
//@ teaches: free takes exactly what malloc returned; glibc aborts on anything else ("free(): invalid pointer"), and the block whose middle was passed is never released
//@ backends: hook, valgrind, asan
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

int main(void)
{
    char *line = malloc(64); //~ LEAK definite size=64
    strcpy(line, "key=value");
    char *value = strchr(line, '=') + 1;
    printf("%s\n", value);
    free(value); //~ BADFREE invalid

    char local[16] = "on the stack";
    char *p = local;
    printf("%s\n", p);
    free(p); //~ BADFREE invalid
    leaklab_checkpoint();
    return 0;
}
