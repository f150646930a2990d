/* hooks.h: the hooks of main_a.c. Lab 04: make plugin_init a reference that
 * may stay undefined (main_a.c tests its address). */
#ifndef HOOKS_H
#define HOOKS_H

/* Called at start-up. default_hooks.c defines it; a user may define their own. */
void on_start(void);

/* Defined by plugin.c, when that file is linked in. */
void plugin_init(void) __attribute__((weak));

#endif
