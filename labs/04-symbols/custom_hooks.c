/* custom_hooks.c: a user's own on_start, which must win over the default.
 * Lab 04; do not edit. */
#include <stdio.h>

#include "hooks.h"

void on_start(void)
{
    puts("on_start: custom");
}
