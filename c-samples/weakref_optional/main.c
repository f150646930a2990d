//@ title: an optional plugin called through an undefined weak reference, checked for NULL first
//@ teaches: a weak reference that no object defines resolves to address 0 instead of failing the link; `if (plugin_init)` tests whether the module was linked in (`leaklab symbols weakref_optional` links it both ways)
#include <stdio.h>
#include "leaklab.h"

// Declared weak and defined only in plugin.c: without that file the
// program still links, and plugin_init is a null pointer.
extern const char *plugin_init(const char *name) __attribute__((weak));

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    if (plugin_init)
        printf("plugin loaded: %s\n", plugin_init("optional"));
    else
        printf("no plugin linked in\n");
    leaklab_checkpoint();
    return 0;
}
