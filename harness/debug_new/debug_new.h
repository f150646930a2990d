/* debug_new.h: the source article's debug_new idea (after nvwa's debug_new),
 * leaklab's own implementation. build.rs passes it to the compiler with
 * `-include`, so it is read before the first line of every source file of a
 * sample's `debug-new` build. It turns every allocation the sample's own code
 * writes into a call that carries __FILE__, __LINE__ and __func__; the runtime
 * (debug_new.c, and debug_new_cxx.cpp for C++) keeps each live block on a
 * list and writes what is still outstanding at exit.
 *
 * Order matters: the standard headers are included FIRST, while malloc, free
 * and new are still plain names, so that their declarations (and, in C++,
 * the placement new inside libstdc++'s templates) are not rewritten. Include
 * guards then make the sample's own #includes of them no-ops. A header that
 * is not included here and is read after the macros would be rewritten too. */
#ifndef LEAKLAB_DEBUG_NEW_H
#define LEAKLAB_DEBUG_NEW_H

/* Declare the GNU extensions (asprintf, ...) now: a sample's own
 * `#define _GNU_SOURCE` comes after these headers, too late to matter.
 * g++ always defines it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#ifdef __cplusplus
/* Every header of the C++ standard library (GCC's own aggregate header),
 * plus the POSIX ones the samples use. */
#include <bits/stdc++.h>
#else
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#endif
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __cplusplus
/* features.h derived these from _GNU_SOURCE. Forget them, so that a
 * sample's own `#define _POSIX_C_SOURCE 200112L` (aligned_leak.c) is not a
 * redefinition; the __USE_* macros the headers test stay as they are. */
#undef _POSIX_C_SOURCE
#undef _XOPEN_SOURCE
#undef _XOPEN_SOURCE_EXTENDED
#undef _DEFAULT_SOURCE
#undef _ISOC99_SOURCE
#undef _ISOC11_SOURCE
#undef _ISOC2X_SOURCE
#undef _ATFILE_SOURCE
#undef _LARGEFILE64_SOURCE
#undef _DYNAMIC_STACK_SIZE_SOURCE
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The runtime's entry points: the API the sample called, and where.
 * (mmap's off_t comes from <sys/types.h>, included above.) */
void *leaklab_dn_malloc(size_t size, const char *file, int line, const char *func);
void *leaklab_dn_calloc(size_t n, size_t size, const char *file, int line, const char *func);
void *leaklab_dn_realloc(void *ptr, size_t size, const char *file, int line, const char *func);
char *leaklab_dn_strdup(const char *s, const char *file, int line, const char *func);
char *leaklab_dn_strndup(const char *s, size_t n, const char *file, int line, const char *func);
void *leaklab_dn_aligned_alloc(size_t align, size_t size, const char *file, int line, const char *func);
int leaklab_dn_posix_memalign(void **out, size_t align, size_t size, const char *file, int line, const char *func);
void leaklab_dn_free(void *ptr);
void *leaklab_dn_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off, const char *file, int line, const char *func);
int leaklab_dn_munmap(void *addr, size_t len);

#ifdef __cplusplus
}

#include <new>

/* The placement forms `new(__FILE__, __LINE__, __func__) T` and `new(...) T[n]` call;
 * the aligned ones serve over-aligned types (C++17). */
void *operator new(std::size_t size, const char *file, int line, const char *func);
void *operator new[](std::size_t size, const char *file, int line, const char *func);
#if __cpp_aligned_new
void *operator new(std::size_t size, std::align_val_t align, const char *file, int line, const char *func);
void *operator new[](std::size_t size, std::align_val_t align, const char *file, int line, const char *func);
#endif
/* Called only when a constructor throws inside such a new-expression. */
void operator delete(void *ptr, const char *file, int line, const char *func) noexcept;
void operator delete[](void *ptr, const char *file, int line, const char *func) noexcept;
#if __cpp_aligned_new
void operator delete(void *ptr, std::align_val_t align, const char *file, int line, const char *func) noexcept;
void operator delete[](void *ptr, std::align_val_t align, const char *file, int line, const char *func) noexcept;
#endif

/* `std::malloc(n)` becomes `std::leaklab_dn_malloc(n, ...)`: make that name exist. */
namespace std {
using ::leaklab_dn_aligned_alloc;
using ::leaklab_dn_calloc;
using ::leaklab_dn_free;
using ::leaklab_dn_malloc;
using ::leaklab_dn_realloc;
using ::leaklab_dn_strdup;
using ::leaklab_dn_strndup;
}
#endif

/* From here on, the sample's own code. */
#undef malloc
#undef calloc
#undef realloc
#undef strdup
#undef strndup
#undef aligned_alloc
#undef posix_memalign
#undef free
#undef mmap
#undef munmap
#define malloc(size) leaklab_dn_malloc((size), __FILE__, __LINE__, __func__)
#define calloc(n, size) leaklab_dn_calloc((n), (size), __FILE__, __LINE__, __func__)
#define realloc(ptr, size) leaklab_dn_realloc((ptr), (size), __FILE__, __LINE__, __func__)
#define strdup(s) leaklab_dn_strdup((s), __FILE__, __LINE__, __func__)
#define strndup(s, n) leaklab_dn_strndup((s), (n), __FILE__, __LINE__, __func__)
#define aligned_alloc(align, size) leaklab_dn_aligned_alloc((align), (size), __FILE__, __LINE__, __func__)
#define posix_memalign(out, align, size) leaklab_dn_posix_memalign((out), (align), (size), __FILE__, __LINE__, __func__)
#define free(ptr) leaklab_dn_free(ptr)
/* Mappings are not heap blocks, but they leak the same way (the article's
 * four kinds of memory); the runtime keeps them on a list of their own. */
#define mmap(addr, len, prot, flags, fd, off) leaklab_dn_mmap((addr), (len), (prot), (flags), (fd), (off), __FILE__, __LINE__, __func__)
#define munmap(addr, len) leaklab_dn_munmap((addr), (len))
#ifdef __cplusplus
/* Placement syntax: `new T(args)` → `new(__FILE__, __LINE__, __func__) T(args)`. It
 * breaks a sample's own placement new (`new (buf) T`) and its own
 * `operator new` definitions, as nvwa's does. */
#define new new (__FILE__, __LINE__, __func__)
#endif

#endif /* LEAKLAB_DEBUG_NEW_H */
