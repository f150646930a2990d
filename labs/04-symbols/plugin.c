/* plugin.c: an optional module. Lab 04; do not edit. */
#include <stdio.h>

#include "hooks.h"

void plugin_init(void)
{
    puts("plugin: loaded");
}
