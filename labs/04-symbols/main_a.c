/* main_a.c: a program with a default hook that users may override, and an
 * optional plugin that may or may not be linked in. Lab 04; do not edit. */
#include <stdio.h>

#include "hooks.h"

int main(void)
{
    /* Only a weak reference may be tested like this: when no object file
     * defines plugin_init, the linker resolves it to address 0. */
    if (plugin_init)
        plugin_init();
    on_start();
    puts("main: running");
    return 0;
}
