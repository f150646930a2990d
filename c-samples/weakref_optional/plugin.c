// The optional module. It registers itself and forgets its registration.
#include <stdlib.h>
#include <string.h>

struct registration {
    char name[16];
    int version;
}; // 20 bytes

const char *plugin_init(const char *name)
{
    struct registration *r = malloc(sizeof *r); //~ LEAK definite size=20 count=1
    strncpy(r->name, name, sizeof r->name - 1); //~^[jemalloc] MISS: jemalloc's profile counts each block at its size class (32 bytes in 1 block here), not at the size asked for
    r->name[sizeof r->name - 1] = '\0';
    r->version = 1;
    return "plugin 1"; // r is never stored anywhere
}
