/* stats.c: records events. Lab 04. */
#include "stats.h"

int events; /* the one definition */

void record(void)
{
    events++;
}
