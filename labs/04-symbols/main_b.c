/* main_b.c: counts events in two translation units. Lab 04; do not edit. */
#include <stdio.h>

#include "stats.h"

int main(void)
{
    record();
    record();
    record();
    events += 2;
    printf("events: %d\n", events);
    return 0;
}
