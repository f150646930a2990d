/* Internal interface between the C and the C++ parts of the debug_new
 * runtime; samples never see it (they get debug_new.h). */
#ifndef LEAKLAB_DEBUG_NEW_RUNTIME_H
#define LEAKLAB_DEBUG_NEW_RUNTIME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum dn_api {
    DN_MALLOC,
    DN_CALLOC,
    DN_REALLOC,
    DN_STRDUP,
    DN_STRNDUP,
    DN_ALIGNED_ALLOC,
    DN_POSIX_MEMALIGN,
    DN_NEW,
    DN_NEW_ARRAY,
};

/* How the program released a block: free (or realloc), delete, delete[]. */
enum dn_release {
    DN_BY_FREE,
    DN_BY_DELETE,
    DN_BY_DELETE_ARRAY,
};

/* A tracked block of `size` bytes aligned to `align` (0: malloc's), or NULL. */
void *leaklab_dn_alloc(size_t size, size_t align, enum dn_api api, int is_array, const char *file, int line, const char *func);
/* Frees a tracked block and returns 1; returns 0 (and does nothing) for any
 * other pointer. A release that does not match the allocation (new[] freed
 * with delete, malloc with delete, new with free) is recorded for the dump. */
int leaklab_dn_release(void *user, enum dn_release how);

#ifdef __cplusplus
}
#endif

#endif
