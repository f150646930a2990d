/* default_hooks.c: the library's default on_start. Lab 04: let a user's own
 * on_start (custom_hooks.c) replace it at link time. */
#include <stdio.h>

#include "hooks.h"

void on_start(void)
{
    puts("on_start: default");
}
