/* The debug_new runtime (C part): every block the sample's own code
 * allocates carries a header with where it came from, and sits on one
 * doubly linked list until it is freed. At exit the blocks still on the list
 * are written out, with the sample's mappings still mapped and the releases
 * that did not match their allocation; the `debug-new` backend parses that
 * dump.
 *
 * Built WITHOUT debug_new.h, so malloc and free here are the C library's.
 *
 * Layout of a block (the user pointer is aligned like malloc's):
 *
 *   base ... [padding for over-aligned blocks] [struct dn_header] [user bytes]
 *                                                          magic ^ user pointer
 *
 * The magic is the header's LAST field, right before the user pointer. A
 * pointer the runtime did not hand out (from getline, strdup inside libc, or
 * libstdc++'s own operator new) has glibc's 16-byte chunk header there, which
 * is always readable; only once the magic matches is the rest of our header
 * read. The magic is mixed with the header's address, so user data that
 * happens to sit before a foreign block cannot pass for it. */
#include "debug_new_runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DN_MAGIC UINT64_C(0x6c65616b6c61624e) /* "leaklabN" */

struct dn_header {
    struct dn_header *prev, *next;
    void *base;        /* what the C library's malloc returned */
    size_t size;       /* bytes the program asked for */
    const char *file;  /* __FILE__ of the allocating line (a string literal) */
    const char *func;  /* __func__ there (also static storage) */
    int line;
    unsigned char api; /* enum dn_api */
    unsigned char is_array;
    unsigned char pad[2];
    uint64_t magic; /* DN_MAGIC ^ address of this header; last, see above */
};

_Static_assert(sizeof(struct dn_header) % 16 == 0, "the header keeps the user pointer 16-aligned");
_Static_assert(sizeof(struct dn_header) - sizeof(uint64_t) == __builtin_offsetof(struct dn_header, magic),
               "the magic sits right before the user pointer");

static const char *const api_names[] = {
    [DN_MALLOC] = "malloc",       [DN_CALLOC] = "calloc",
    [DN_REALLOC] = "realloc",     [DN_STRDUP] = "strdup",
    [DN_STRNDUP] = "strndup",     [DN_ALIGNED_ALLOC] = "aligned_alloc",
    [DN_POSIX_MEMALIGN] = "posix_memalign", [DN_NEW] = "new",
    [DN_NEW_ARRAY] = "new[]",
};

/* The list of live blocks, a sentinel ring, and the lock that guards it. */
static struct dn_header dn_list = {&dn_list, &dn_list, NULL, 0, NULL, NULL, 0, 0, 0, {0}, 0};
static pthread_mutex_t dn_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t magic_of(const struct dn_header *h)
{
    return DN_MAGIC ^ (uint64_t)(uintptr_t)h;
}

static struct dn_header *header_of(void *user)
{
    return (struct dn_header *)user - 1;
}

static struct dn_header *find_block(void *user)
{
    if (user == NULL)
        return NULL;
    struct dn_header *h = header_of(user);
    return h->magic == magic_of(h) ? h : NULL;
}

static void link_block(struct dn_header *h)
{
    pthread_mutex_lock(&dn_lock);
    h->next = &dn_list;
    h->prev = dn_list.prev;
    dn_list.prev->next = h;
    dn_list.prev = h;
    pthread_mutex_unlock(&dn_lock);
}

static void unlink_block(struct dn_header *h)
{
    pthread_mutex_lock(&dn_lock);
    h->prev->next = h->next;
    h->next->prev = h->prev;
    pthread_mutex_unlock(&dn_lock);
    /* A second free of the same pointer no longer passes for ours. */
    h->magic = 0;
}

void *leaklab_dn_alloc(size_t size, size_t align, enum dn_api api, int is_array, const char *file, int line, const char *func)
{
    const size_t hdr = sizeof(struct dn_header);
    if (align < 16)
        align = 16;
    if ((align & (align - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    /* Room for the header and, for an over-aligned block, for sliding the
     * user pointer up to the next multiple of `align`. */
    size_t extra = hdr + (align > 16 ? align : 0);
    if (size > SIZE_MAX - extra) {
        errno = ENOMEM;
        return NULL;
    }
    char *base = malloc(size + extra);
    if (base == NULL)
        return NULL;
    uintptr_t user = (uintptr_t)base + hdr;
    if (align > 16)
        user = (user + align - 1) & ~(uintptr_t)(align - 1);
    struct dn_header *h = header_of((void *)user);
    h->base = base;
    h->size = size;
    h->file = file;
    h->func = func;
    h->line = line;
    h->api = (unsigned char)api;
    h->is_array = (unsigned char)(is_array != 0);
    h->magic = magic_of(h);
    link_block(h);
    return (void *)user;
}

/* Releases that did not match their allocation, for the dump. */
struct dn_mismatch {
    struct dn_mismatch *next;
    enum dn_api api;
    enum dn_release how;
    const char *file, *func;
    int line;
};

static struct dn_mismatch *dn_mismatches;

static const char *const release_names[] = {
    [DN_BY_FREE] = "free",
    [DN_BY_DELETE] = "delete",
    [DN_BY_DELETE_ARRAY] = "delete[]",
};

static enum dn_release matching_release(enum dn_api api)
{
    switch (api) {
    case DN_NEW:
        return DN_BY_DELETE;
    case DN_NEW_ARRAY:
        return DN_BY_DELETE_ARRAY;
    default:
        return DN_BY_FREE;
    }
}

int leaklab_dn_release(void *user, enum dn_release how)
{
    struct dn_header *h = find_block(user);
    if (h == NULL)
        return 0;
    if (matching_release((enum dn_api)h->api) != how) {
        struct dn_mismatch *m = malloc(sizeof *m);
        if (m != NULL) {
            *m = (struct dn_mismatch){NULL, (enum dn_api)h->api, how, h->file, h->func, h->line};
            pthread_mutex_lock(&dn_lock);
            m->next = dn_mismatches;
            dn_mismatches = m;
            pthread_mutex_unlock(&dn_lock);
        }
    }
    unlink_block(h);
    free(h->base);
    return 1;
}

void *leaklab_dn_malloc(size_t size, const char *file, int line, const char *func)
{
    return leaklab_dn_alloc(size, 0, DN_MALLOC, 0, file, line, func);
}

void *leaklab_dn_calloc(size_t n, size_t size, const char *file, int line, const char *func)
{
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = leaklab_dn_alloc(n * size, 0, DN_CALLOC, 0, file, line, func);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void *leaklab_dn_realloc(void *ptr, size_t size, const char *file, int line, const char *func)
{
    if (ptr == NULL)
        return leaklab_dn_alloc(size, 0, DN_REALLOC, 0, file, line, func);
    struct dn_header *old = find_block(ptr);
    if (old == NULL) /* not ours (getline's buffer, ...): the C library's business */
        return realloc(ptr, size);
    /* The block moves to the realloc's line, as valgrind and LSan see it:
     * the new block is allocated there. */
    void *fresh = leaklab_dn_alloc(size, 0, DN_REALLOC, 0, file, line, func);
    if (fresh == NULL)
        return NULL; /* the old block stays valid, as realloc promises */
    memcpy(fresh, ptr, old->size < size ? old->size : size);
    leaklab_dn_release(ptr, DN_BY_FREE);
    return fresh;
}

char *leaklab_dn_strdup(const char *s, const char *file, int line, const char *func)
{
    size_t n = strlen(s) + 1;
    char *p = leaklab_dn_alloc(n, 0, DN_STRDUP, 0, file, line, func);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

char *leaklab_dn_strndup(const char *s, size_t max, const char *file, int line, const char *func)
{
    size_t n = strnlen(s, max);
    char *p = leaklab_dn_alloc(n + 1, 0, DN_STRNDUP, 0, file, line, func);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void *leaklab_dn_aligned_alloc(size_t align, size_t size, const char *file, int line, const char *func)
{
    return leaklab_dn_alloc(size, align, DN_ALIGNED_ALLOC, 0, file, line, func);
}

int leaklab_dn_posix_memalign(void **out, size_t align, size_t size, const char *file, int line, const char *func)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    void *p = leaklab_dn_alloc(size, align, DN_POSIX_MEMALIGN, 0, file, line, func);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

void leaklab_dn_free(void *ptr)
{
    if (!leaklab_dn_release(ptr, DN_BY_FREE))
        free(ptr); /* not ours: it came from the C library's own allocator */
}

/* Mappings made by the sample's own mmap calls, kept apart from the blocks:
 * a mapping has no room for a header. munmap may cut any page range out of
 * them, so a record can shrink or split in two. */
struct dn_map {
    struct dn_map *next;
    uintptr_t start, end;
    int shared, anonymous;
    const char *file, *func;
    int line;
};

static struct dn_map *dn_maps;

void *leaklab_dn_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off, const char *file, int line, const char *func)
{
    void *p = mmap(addr, len, prot, flags, fd, off);
    if (p == MAP_FAILED || len == 0)
        return p;
    struct dn_map *m = malloc(sizeof *m);
    if (m == NULL)
        return p; /* the mapping stands; it just goes unrecorded */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    m->start = (uintptr_t)p;
    m->end = m->start + ((len + page - 1) & ~(page - 1));
    /* MAP_SHARED_VALIDATE includes the MAP_SHARED bit. */
    m->shared = (flags & MAP_SHARED) != 0;
    m->anonymous = (flags & MAP_ANONYMOUS) != 0;
    m->file = file;
    m->func = func;
    m->line = line;
    pthread_mutex_lock(&dn_lock);
    m->next = dn_maps;
    dn_maps = m;
    pthread_mutex_unlock(&dn_lock);
    return p;
}

int leaklab_dn_munmap(void *addr, size_t len)
{
    int r = munmap(addr, len);
    if (r != 0)
        return r;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)addr, hi = lo + ((len + page - 1) & ~(page - 1));
    pthread_mutex_lock(&dn_lock);
    for (struct dn_map **link = &dn_maps; *link != NULL;) {
        struct dn_map *m = *link;
        if (hi <= m->start || lo >= m->end) {
            link = &m->next;
        } else if (lo <= m->start && hi >= m->end) { /* all of it */
            *link = m->next;
            free(m);
        } else if (lo <= m->start) { /* its head */
            m->start = hi;
            link = &m->next;
        } else if (hi >= m->end) { /* its tail */
            m->end = lo;
            link = &m->next;
        } else { /* a hole in the middle: the rest is two mappings */
            struct dn_map *tail = malloc(sizeof *tail);
            if (tail != NULL) {
                *tail = *m;
                tail->start = hi;
                m->next = tail;
            }
            m->end = lo;
            link = tail != NULL ? &tail->next : &m->next;
        }
    }
    pthread_mutex_unlock(&dn_lock);
    return 0;
}

/* Writes one dump (see harness/backends/debug_new.rs for the format). The
 * destination is $LEAKLAB_DEBUG_NEW_OUT.<pid>, so a forked child writes its
 * own; without the variable the report goes to stderr, as nvwa's does. */
static void dump(void)
{
    const char *prefix = getenv("LEAKLAB_DEBUG_NEW_OUT");
    FILE *out = stderr;
    char path[4096];
    if (prefix != NULL && *prefix != '\0') {
        snprintf(path, sizeof path, "%s.%ld", prefix, (long)getpid());
        out = fopen(path, "w");
        if (out == NULL) {
            fprintf(stderr, "debug_new: cannot write %s\n", path);
            return;
        }
    }
    pthread_mutex_lock(&dn_lock);
    unsigned long count = 0;
    fprintf(out, "debug_new 1 pid=%ld\n", (long)getpid());
    for (struct dn_header *h = dn_list.next; h != &dn_list; h = h->next) {
        fprintf(out, "block size=%zu api=%s array=%d at=%s:%d in=%s\n", h->size, api_names[h->api], h->is_array, h->file, h->line,
                h->func);
        count++;
    }
    unsigned long maps = 0;
    for (struct dn_map *m = dn_maps; m != NULL; m = m->next) {
        fprintf(out, "map size=%lu region=%s-%s at=%s:%d in=%s\n", (unsigned long)(m->end - m->start), m->shared ? "shared" : "private",
                m->anonymous ? "anon" : "file", m->file, m->line, m->func);
        maps++;
    }
    unsigned long mismatches = 0;
    for (struct dn_mismatch *m = dn_mismatches; m != NULL; m = m->next) {
        fprintf(out, "mismatch api=%s released-by=%s at=%s:%d in=%s\n", api_names[m->api], release_names[m->how], m->file, m->line, m->func);
        mismatches++;
    }
    fprintf(out, "end blocks=%lu maps=%lu mismatches=%lu\n", count, maps, mismatches);
    pthread_mutex_unlock(&dn_lock);
    if (out != stderr)
        fclose(out);
}

/* fork() in one thread while another holds the lock would leave the
 * child's copy of the lock held forever, and its dump would hang. */
static void before_fork(void)
{
    pthread_mutex_lock(&dn_lock);
}

static void after_fork(void)
{
    pthread_mutex_unlock(&dn_lock);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork, after_fork);
}

/* A destructor of the lowest priority number runs last: after atexit
 * handlers and C++ static destructors, which may still free blocks. */
__attribute__((destructor(101))) static void dump_at_exit(void)
{
    dump();
}
