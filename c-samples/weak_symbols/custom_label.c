// The program's own, strong definition of make_label.
#include <stdio.h>
#include <stdlib.h>

char *make_label(int id)
{
    char *s = malloc(24); //~ LEAK definite size=24 count=1
    snprintf(s, 24, "custom-%d", id);
    return s;
}
