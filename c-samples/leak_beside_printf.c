//@ title: a function that prints and leaks one string
//@ teaches: stdout's buffer (malloc'd by the first printf) is the C runtime's, not a leak; the strdup next to it is
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

static void greet(const char *who)
{
    char *line = strdup(who); //~ LEAK definite size=6 count=1
    printf("hello, %s\n", line);
    line = NULL;
}

int main(void)
{
    greet("world");
    fflush(stdout);
    leaklab_checkpoint();
    return 0;
}
