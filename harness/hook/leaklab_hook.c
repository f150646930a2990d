/* leaklab_hook.c: the `hook` backend's LD_PRELOAD shim.
 *
 * It interposes the allocator's entry points (the malloc family, every form
 * of operator new/delete as their mangled C symbols, mmap/munmap/mremap),
 * remembers every live block with a call stack walked along frame pointers,
 * checks every free against its allocation (mismatched, double, invalid),
 * and writes what is still outstanding, with /proc/self/maps, when the
 * process exits or receives LEAKLAB_HOOK_SIGNAL (SIGUSR2 by default). The
 * Rust side (harness/backends/hook.rs) parses and symbolizes the dump.
 *
 * Rules that keep the target alive:
 * - the bookkeeping never calls the allocator it hooks: its tables live in
 *   memory from raw mmap syscalls, and dlsym's own allocations during
 *   start-up come from a small static arena;
 * - a per-thread guard makes any allocation made while the shim is working
 *   (pthread_getattr_np, the real operator new) pass straight through;
 * - a stack walk only reads words inside the thread's own stack, between
 *   the current frame and the stack's top, in increasing order.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define MAX_FRAMES 24
/* 16 groups of 16 shards: the group comes from the address's 64 MiB
 * region, which is one glibc arena's heap, so that the blocks of one thread
 * (one arena) mostly live in shards only its core touches. */
#define GROUP_BITS 4
#define SUB_BITS 4
#define NSHARDS (1 << (GROUP_BITS + SUB_BITS))
#define INITIAL_SLOTS 64
#define STACK_SLOTS (1u << 20)
#define STACK_CHUNK (1u << 20)
#define FREED_RING 16
#define MAX_ERRORS 4096
#define MAX_REGIONS 16384
#define MAX_RANGES 256
#define MAX_OWN 4096
#define UNLOADED_BYTES (256u << 10)

/* ---- allocation APIs ------------------------------------------------- */

enum api {
    A_MALLOC, A_CALLOC, A_REALLOC, A_REALLOCARRAY, A_POSIX_MEMALIGN, A_ALIGNED_ALLOC,
    A_MEMALIGN, A_VALLOC, A_PVALLOC, A_NEW, A_NEW_ARRAY, A_NEW_ALIGNED, A_NEW_ARRAY_ALIGNED,
};
static const char *const api_names[] = {
    "malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "new", "new[]", "new(align)", "new[](align)",
};

enum dealloc { D_FREE, D_REALLOC, D_DELETE, D_DELETE_ARRAY, D_DELETE_ALIGNED, D_DELETE_ARRAY_ALIGNED };
static const char *const dealloc_names[] = {
    "free", "realloc", "delete", "delete[]", "delete(align)", "delete[](align)",
};

/* Which deallocator each allocator pairs with, as a family number. */
static int family_of_api(int api)
{
    switch (api) {
    case A_NEW: return 1;
    case A_NEW_ARRAY: return 2;
    case A_NEW_ALIGNED: return 3;
    case A_NEW_ARRAY_ALIGNED: return 4;
    default: return 0;
    }
}

static int family_of_dealloc(int d)
{
    switch (d) {
    case D_DELETE: return 1;
    case D_DELETE_ARRAY: return 2;
    case D_DELETE_ALIGNED: return 3;
    case D_DELETE_ARRAY_ALIGNED: return 4;
    default: return 0;
    }
}

/* ---- the real functions ---------------------------------------------- */

static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);
static void *(*real_mremap)(void *, size_t, size_t, int, ...);
/* libstdc++'s operators, for the failure path only: they call the
 * new_handler and throw std::bad_alloc, which C cannot do. */
static void *(*real_new)(size_t);
static void *(*real_new_array)(size_t);
static void *(*real_new_aligned)(size_t, size_t);
static void *(*real_new_array_aligned)(size_t, size_t);

static int g_ready;        /* the real functions are resolved */
/* libstdc++'s __gnu_cxx::__freeres: frees the emergency exception pool, a
 * one-time allocation that is not a leak (valgrind calls it too). */
static void (*cxx_freeres)(void);
static int g_dump_signal = SIGUSR2;
static char g_out_pattern[1024];
static volatile sig_atomic_t g_dump_pending;
static unsigned g_signal_dumps;
static int g_no_exit_dump;

/* ---- per-thread state ------------------------------------------------ */

static TLS int t_guard;           /* >0 while the shim itself runs */
static TLS uint32_t t_tid;
static TLS uintptr_t t_stack_hi;  /* 0: not known yet; 1: unknown */

static void unguard(int *unused)
{
    (void)unused;
    t_guard--;
}
#define GUARD int guard_ __attribute__((cleanup(unguard), unused)) = (t_guard++, 0)

static uint32_t tid(void)
{
    if (UNLIKELY(t_tid == 0))
        t_tid = (uint32_t)syscall(SYS_gettid);
    return t_tid;
}

/* ---- raw memory and locks -------------------------------------------- */

typedef struct { volatile int v; } spinlock;

static inline __attribute__((always_inline)) void lock(spinlock *l)
{
    for (unsigned spins = 0; __atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE); spins++) {
        while (__atomic_load_n(&l->v, __ATOMIC_RELAXED)) {
            if (++spins > 64)
                syscall(SYS_sched_yield);
            else
                __builtin_ia32_pause();
        }
    }
}

static inline __attribute__((always_inline)) void unlock(spinlock *l)
{
    __atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}

/* Every mapping the shim makes for itself, published in the table so that
 * the harness neither takes its bookkeeping for roots nor for mmap leaks. */
struct own_range { uintptr_t start, end; };
static struct own_range g_own[MAX_OWN];
static uint64_t g_nown, g_own_dropped;
static spinlock g_own_lock; /* innermost: taken under the shard and stack locks */

static void *raw_map(size_t len)
{
    long r = syscall(SYS_mmap, NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r < 0 && r > -4096)
        return NULL;
    lock(&g_own_lock);
    if (g_nown < MAX_OWN)
        g_own[g_nown++] = (struct own_range){(uintptr_t)r, (uintptr_t)r + len};
    else
        g_own_dropped++;
    unlock(&g_own_lock);
    return (void *)r;
}

static void raw_unmap(void *p, size_t len)
{
    lock(&g_own_lock);
    for (uint64_t i = 0; i < g_nown; i++) {
        if (g_own[i].start == (uintptr_t)p) {
            g_own[i] = g_own[--g_nown];
            break;
        }
    }
    unlock(&g_own_lock);
    syscall(SYS_munmap, p, len);
}

/* ---- the start-up arena (dlsym allocates before malloc is resolved) --- */

static char g_arena[64 * 1024] __attribute__((aligned(16)));
static size_t g_arena_used;

static void *arena_alloc(size_t n)
{
    size_t want = (n + 16 + 15) & ~(size_t)15;
    size_t at = __atomic_fetch_add(&g_arena_used, want, __ATOMIC_RELAXED);
    if (at + want > sizeof g_arena)
        return NULL;
    size_t *hdr = (size_t *)(g_arena + at);
    *hdr = n;
    return g_arena + at + 16;
}

static int arena_owns(const void *p)
{
    return (const char *)p >= g_arena && (const char *)p < g_arena + sizeof g_arena;
}

static size_t arena_size(const void *p)
{
    return *(const size_t *)((const char *)p - 16);
}

/* ---- code ranges, to walk past libraries without frame pointers -------
 * glibc and libstdc++ are built without frame pointers: when one of them
 * calls malloc (strdup, getline, std::string), the saved frame pointer is
 * not theirs and the walk would skip the caller's frame. For those, the
 * stack is scanned for the first return address into code with frame
 * pointers, checked to follow a call instruction. */

/* nofp: 0 code with frame pointers, 1 a library without, 2 the shim itself */
struct range { uintptr_t lo, hi; int nofp; };
static struct range g_ranges[MAX_RANGES];
static int g_nranges;

static int is_nofp_object(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    static const char *const names[] = {"libc.so", "libstdc++.so", "libgcc_s.so", "libm.so", "ld-linux", "libpthread.so", "libdl.so"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strncmp(base, names[i], strlen(names[i])) == 0)
            return 1;
    return 0;
}

static int add_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    const char *name = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : "";
    int nofp = is_nofp_object(name);
    for (int i = 0; i < info->dlpi_phnum && g_nranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        /* The shim's own code is never a caller worth reporting: words
         * pointing into it are stale, left by its earlier calls. */
        uintptr_t self = (uintptr_t)add_object;
        g_ranges[g_nranges++] = (struct range){lo, hi, (self >= lo && self < hi) ? 2 : nofp};
    }
    return 0;
}

static TLS const struct range *t_last_range;

static const struct range *range_of(uintptr_t pc)
{
    const struct range *last = t_last_range;
    if (last && pc >= last->lo && pc < last->hi)
        return last;
    for (int i = 0; i < g_nranges; i++)
        if (pc >= g_ranges[i].lo && pc < g_ranges[i].hi)
            return t_last_range = &g_ranges[i];
    return NULL;
}

/* Whether the bytes before `r` end with a call instruction (e8 rel32, or
 * ff /2 in its register, disp8, disp32 and SIB forms). */
static int follows_call(uintptr_t r, const struct range *rg)
{
    if (r < rg->lo + 7)
        return 0;
    const unsigned char *p = (const unsigned char *)r;
    if (p[-5] == 0xe8)
        return 1;
    for (int back = 2; back <= 7; back++)
        if (p[-back] == 0xff && (p[-back + 1] & 0x38) == 0x10)
            return 1;
    return 0;
}

/* Whether `r` returns from a call that can have led into a library: an
 * indirect call, or a direct call to a PLT stub (`jmp *GOT(%rip)`, after
 * an optional endbr64 and bnd prefix). A direct call to a function of the
 * program would have left that function's frame on the stack instead: such
 * a word is a stale return address from an earlier call. */
static int calls_into_library(uintptr_t r, const struct range *rg)
{
    if (!follows_call(r, rg))
        return 0;
    const unsigned char *p = (const unsigned char *)r;
    if (p[-5] != 0xe8)
        return 1;
    int32_t rel;
    memcpy(&rel, p - 4, sizeof rel);
    uintptr_t t = r + (intptr_t)rel;
    const struct range *tr = range_of(t);
    if (!tr)
        return 0;
    if (tr->nofp)
        return 1;
    if (t + 12 > tr->hi)
        return 0;
    const unsigned char *q = (const unsigned char *)t;
    if (q[0] == 0xf3 && q[1] == 0x0f && q[2] == 0x1e && q[3] == 0xfa)
        q += 4;
    if (q[0] == 0xf2)
        q++;
    return q[0] == 0xff && q[1] == 0x25;
}

/* ---- stacks ------------------------------------------------------------ */

static void stack_bounds(void)
{
    pthread_attr_t a;
    t_stack_hi = 1;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&a, &addr, &size) == 0)
            t_stack_hi = (uintptr_t)addr + size;
        pthread_attr_destroy(&a);
    }
}

/* The last few calls made straight from code with frame pointers: their
 * return address and the stack slot it was pushed to. The shim and glibc
 * copy such a return address into their own frames (spills, saved
 * registers); a later scan through a library's frames must not mistake
 * such a copy, found anywhere but in its own slot, for a live return. */
#define RECENT 4
static TLS uintptr_t t_recent_ret[RECENT], t_recent_slot[RECENT];
static TLS unsigned t_recent_next;

static int stale_copy(const uintptr_t *w)
{
    for (int i = 0; i < RECENT; i++)
        if (t_recent_ret[i] == *w && t_recent_slot[i] != (uintptr_t)w)
            return 1;
    return 0;
}

static inline int on_stack(uintptr_t p, uintptr_t lo)
{
    return p > lo && p + 2 * sizeof(uintptr_t) <= t_stack_hi && (p & 7) == 0;
}

/* Fills pcs[] from the hook's frame `fp` (whose return address is `ret0`). */
static int capture(uintptr_t *pcs, uintptr_t *fp, uintptr_t ret0)
{
    int n = 0;
    pcs[n++] = ret0;
    if (UNLIKELY(t_stack_hi == 0))
        stack_bounds();
    uintptr_t lo = (uintptr_t)fp;
    if (!on_stack(lo, lo - 1))
        return n;
    uintptr_t *next = (uintptr_t *)fp[0];
    const struct range *r0 = range_of(ret0);
    if (r0 && !r0->nofp) {
        unsigned k = t_recent_next++ % RECENT;
        t_recent_ret[k] = ret0;
        t_recent_slot[k] = (uintptr_t)(fp + 1);
    } else if (r0 && r0->nofp) {
        uintptr_t *found = NULL;
        const struct range *nr = NULL;
        int next_ok = on_stack((uintptr_t)next, (uintptr_t)(fp + 2)) && (nr = range_of(next[1])) && nr->nofp != 2 &&
                      follows_call(next[1], nr);
        if (next_ok && next - fp < 4096) {
            /* The frame pointer survived the library: the caller's return
             * address is the highest one below the caller's frame record.
             * Deeper words may be stale copies left by earlier calls. */
            for (uintptr_t *w = next - 1; w >= fp + 2; w--) {
                const struct range *rg = range_of(*w);
                if (rg && !rg->nofp && calls_into_library(*w, rg) && !stale_copy(w)) {
                    found = w;
                    break;
                }
            }
        }
        for (uintptr_t *w = fp + 2; !found && w < fp + 2 + 512 && on_stack((uintptr_t)w, lo); w++) {
            const struct range *rg = range_of(*w);
            if (rg && !rg->nofp && calls_into_library(*w, rg) && !stale_copy(w))
                found = w;
        }
        if (!found)
            return n;
        pcs[n++] = *found;
        lo = (uintptr_t)found;
        if (!(next_ok && next > found)) {
            /* The library used the frame-pointer register for itself: find
             * the caller's frame record (saved fp, return after a call). */
            next = NULL;
            for (uintptr_t *a = found + 1; a < found + 512 && on_stack((uintptr_t)a, lo); a++) {
                const struct range *rg;
                if (on_stack(a[0], (uintptr_t)a) && (rg = range_of(a[1])) && rg->nofp != 2 && follows_call(a[1], rg)) {
                    next = a;
                    break;
                }
            }
        }
    }
    uintptr_t *f = next;
    while (n < MAX_FRAMES && f && on_stack((uintptr_t)f, lo)) {
        uintptr_t ret = f[1];
        if (ret < 4096)
            break;
        pcs[n++] = ret;
        lo = (uintptr_t)f;
        f = (uintptr_t *)f[0];
    }
    return n;
}

/* ---- the table of live blocks ------------------------------------------ */

/* A call stack, stored once however many blocks share it. */
struct stack {
    uint64_t hash;
    uint32_t depth;
    uint32_t unused;
    uintptr_t pcs[];
};

struct block {
    uintptr_t addr; /* 0: empty slot */
    size_t size;
    const struct stack *stack; /* NULL when the stack table is full */
    uint32_t tid;
    uint8_t api;
};

/* ---- the table of stacks: lock-free lookups, inserts by CAS ------------- */

static struct stack *volatile *g_stack_slots;
static size_t g_nstacks, g_stacks_dropped;
static spinlock g_stack_lock; /* the slot array's creation and the chunk allocator */
static char *g_chunk_cur, *g_chunk_end;

static uint64_t hash_pcs(const uintptr_t *pcs, int n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h ^= pcs[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h | 1;
}

static struct stack *new_stack(const uintptr_t *pcs, int n, uint64_t h)
{
    size_t want = sizeof(struct stack) + (size_t)n * sizeof(uintptr_t);
    lock(&g_stack_lock);
    if (!g_chunk_cur || g_chunk_cur + want > g_chunk_end) {
        g_chunk_cur = raw_map(STACK_CHUNK);
        g_chunk_end = g_chunk_cur ? g_chunk_cur + STACK_CHUNK : NULL;
    }
    struct stack *st = NULL;
    if (g_chunk_cur) {
        st = (struct stack *)g_chunk_cur;
        g_chunk_cur += want;
    }
    unlock(&g_stack_lock);
    if (st) {
        st->hash = h;
        st->depth = (uint32_t)n;
        memcpy(st->pcs, pcs, (size_t)n * sizeof(uintptr_t));
    }
    return st;
}

static const struct stack *intern_stack(const uintptr_t *pcs, int n)
{
    struct stack *volatile *slots = __atomic_load_n(&g_stack_slots, __ATOMIC_ACQUIRE);
    if (UNLIKELY(!slots)) {
        lock(&g_stack_lock);
        if (!g_stack_slots)
            __atomic_store_n(&g_stack_slots, raw_map(STACK_SLOTS * sizeof(struct stack *)), __ATOMIC_RELEASE);
        slots = g_stack_slots;
        unlock(&g_stack_lock);
        if (!slots)
            return NULL;
    }
    uint64_t h = hash_pcs(pcs, n);
    struct stack *fresh = NULL;
    for (size_t i = h & (STACK_SLOTS - 1), probes = 0; probes < 64; i = (i + 1) & (STACK_SLOTS - 1), probes++) {
        struct stack *st = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE);
        if (!st) {
            if (__atomic_load_n(&g_nstacks, __ATOMIC_RELAXED) > STACK_SLOTS / 4 * 3)
                break;
            if (!fresh && !(fresh = new_stack(pcs, n, h)))
                break;
            struct stack *expected = NULL;
            if (__atomic_compare_exchange_n(&slots[i], &expected, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                __atomic_fetch_add(&g_nstacks, 1, __ATOMIC_RELAXED);
                return fresh;
            }
            st = expected; /* another thread filled this slot first */
        }
        if (st->hash == h && st->depth == (uint32_t)n) {
            int k = 0;
            while (k < n && st->pcs[k] == pcs[k])
                k++;
            if (k == n)
                return st; /* `fresh`, if any, stays unused in its chunk */
        }
    }
    __atomic_fetch_add(&g_stacks_dropped, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* A block freed recently, to tell a double free from a wild one. */
struct freed {
    uintptr_t addr;
    uintptr_t free_pc_api; /* the free's call site, the block's api in the top byte */
};

struct shard {
    spinlock lock;
    size_t cap, count;
    struct block *slots;
    struct freed ring[FREED_RING];
    unsigned ring_next;
} __attribute__((aligned(64)));

static struct shard g_shards[NSHARDS];

static inline uint64_t hash_addr(uintptr_t a)
{
    uint64_t h = (uint64_t)(a >> 4) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 31);
}

static inline struct shard *shard_of(uintptr_t addr, uint64_t h)
{
    uint64_t group = ((uint64_t)(addr >> 26) * 0x9E3779B97F4A7C15ull) >> (64 - GROUP_BITS);
    return &g_shards[(group << SUB_BITS) | (h >> (64 - SUB_BITS))];
}

static void place(struct block *slots, size_t cap, const struct block *b)
{
    size_t i = hash_addr(b->addr) & (cap - 1);
    while (slots[i].addr)
        i = (i + 1) & (cap - 1);
    slots[i] = *b;
}

/* Called with the shard locked. Returns 0 when the table cannot grow. */
static int reserve(struct shard *s)
{
    if (s->slots && (s->count + 1) * 2 <= s->cap)
        return 1;
    size_t cap = s->cap ? s->cap * 2 : INITIAL_SLOTS;
    struct block *slots = raw_map(cap * sizeof *slots);
    if (!slots)
        return s->slots && s->count + 1 < s->cap;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i].addr)
            place(slots, cap, &s->slots[i]);
    if (s->slots)
        raw_unmap(s->slots, s->cap * sizeof *s->slots);
    s->slots = slots;
    s->cap = cap;
    return 1;
}

static size_t find_slot(struct shard *s, uintptr_t addr, uint64_t h)
{
    if (!s->slots)
        return (size_t)-1;
    size_t mask = s->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (s->slots[i].addr == addr)
            return i;
        if (s->slots[i].addr == 0)
            return (size_t)-1;
    }
}

/* Backward-shift deletion: linear probing stays correct without tombstones. */
static void remove_slot(struct shard *s, size_t i)
{
    size_t mask = s->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (s->slots[j].addr == 0)
            break;
        size_t k = hash_addr(s->slots[j].addr) & mask;
        int between = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!between) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i].addr = 0;
    s->count--;
}

/* ---- free errors and mappings ------------------------------------------ */

enum bad_kind { BAD_MISMATCHED, BAD_DOUBLE, BAD_INVALID };
static const char *const bad_names[] = {"mismatched", "double", "invalid"};

struct bad_free {
    uintptr_t addr;
    size_t size;
    uint8_t kind, dealloc, api, depth, other_depth;
    uintptr_t pcs[MAX_FRAMES];       /* the bad free */
    uintptr_t other[MAX_FRAMES];     /* the allocation, or the first free */
};

static spinlock g_errors_lock;
static struct bad_free *g_errors;
static size_t g_nerrors, g_errors_dropped;

struct region {
    uintptr_t addr;
    size_t len;
    int prot, flags, file;
    uint32_t tid;
    uint8_t api, depth;
    uintptr_t pcs[MAX_FRAMES];
};

enum { R_MMAP, R_MMAP64, R_MREMAP };
static const char *const region_api_names[] = {"mmap", "mmap64", "mremap"};

static spinlock g_regions_lock;
static struct region *g_regions;
static size_t g_nregions, g_regions_dropped;

static void maybe_dump_pending(void);

static void report_bad(int kind, uintptr_t addr, int dealloc, int api, size_t size, const uintptr_t *pcs, int depth,
                       const uintptr_t *other, int other_depth)
{
    lock(&g_errors_lock);
    if (!g_errors)
        g_errors = raw_map(MAX_ERRORS * sizeof *g_errors);
    if (!g_errors || g_nerrors >= MAX_ERRORS) {
        g_errors_dropped++;
    } else {
        struct bad_free *e = &g_errors[g_nerrors++];
        e->addr = addr;
        e->size = size;
        e->kind = (uint8_t)kind;
        e->dealloc = (uint8_t)dealloc;
        e->api = (uint8_t)api;
        e->depth = (uint8_t)depth;
        e->other_depth = (uint8_t)other_depth;
        memcpy(e->pcs, pcs, depth * sizeof *pcs);
        if (other_depth)
            memcpy(e->other, other, other_depth * sizeof *other);
    }
    unlock(&g_errors_lock);
}

/* ---- start-up ------------------------------------------------------------ */

static void resolve(void)
{
    GUARD;
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    real_valloc = dlsym(RTLD_NEXT, "valloc");
    real_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
    real_munmap = dlsym(RTLD_NEXT, "munmap");
    real_mremap = dlsym(RTLD_NEXT, "mremap");
    real_new = dlsym(RTLD_NEXT, "_Znwm");
    real_new_array = dlsym(RTLD_NEXT, "_Znam");
    real_new_aligned = dlsym(RTLD_NEXT, "_ZnwmSt11align_val_t");
    real_new_array_aligned = dlsym(RTLD_NEXT, "_ZnamSt11align_val_t");
    if (real_malloc && real_free && real_calloc && real_realloc && real_mmap && real_munmap)
        __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
}

static inline int ready(void)
{
    if (LIKELY(__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)))
        return 1;
    if (t_guard)
        return 0; /* inside dlsym: the arena serves */
    resolve();
    return g_ready;
}

/* ---- recording ----------------------------------------------------------- */

/* Zeroes a stack array of return addresses once used. Left behind, the
 * copies would be stale words that a later scan (past a library without
 * frame pointers, whose frames reuse this stack memory) takes for the
 * caller's return address. */
static inline void scrub(void *p, size_t n)
{
    memset(p, 0, n);
    __asm__ volatile("" : : "r"(p) : "memory");
}

static void record(void *p, size_t size, int api, uintptr_t *fp, uintptr_t ret0)
{
    GUARD;
    /* The shard and its slot are likely cold: fetch them while the stack
     * is walked and interned. */
    uint64_t h = hash_addr((uintptr_t)p);
    struct shard *s = shard_of((uintptr_t)p, h);
    __builtin_prefetch(s, 1);
    uintptr_t pcs[MAX_FRAMES];
    int n = capture(pcs, fp, ret0);
    struct block *slots = s->slots;
    if (LIKELY(slots != NULL))
        __builtin_prefetch(&slots[h & (s->cap - 1)], 1);
    struct block b;
    b.addr = (uintptr_t)p;
    b.size = size;
    b.tid = tid();
    b.api = (uint8_t)api;
    b.stack = intern_stack(pcs, n);
    scrub(pcs, (size_t)n * sizeof *pcs);
    lock(&s->lock);
    if (reserve(s)) {
        place(s->slots, s->cap, &b);
        s->count++;
    }
    unlock(&s->lock);
}

/* Forgets a block that is being freed. Returns 1 when the pointer may go to
 * the real free, 0 when it must not (a double or wild free, which would
 * crash the target; the event is reported instead). `kept` receives the
 * block for realloc. */
static int release(void *p, int dealloc, uintptr_t *fp, uintptr_t ret0, struct block *kept)
{
    GUARD;
    uintptr_t addr = (uintptr_t)p;
    uint64_t h = hash_addr(addr);
    struct shard *s = shard_of(addr, h);
    lock(&s->lock);
    size_t i = find_slot(s, addr, h);
    if (LIKELY(i != (size_t)-1)) {
        struct block *b = &s->slots[i];
        int mismatch = family_of_api(b->api) != family_of_dealloc(dealloc);
        struct block copy = *b;
        struct freed *fr = &s->ring[s->ring_next++ % FREED_RING];
        fr->addr = addr;
        fr->free_pc_api = (ret0 & ((1ull << 56) - 1)) | ((uintptr_t)b->api << 56);
        remove_slot(s, i);
        unlock(&s->lock);
        if (UNLIKELY(mismatch)) {
            uintptr_t pcs[MAX_FRAMES];
            int n = capture(pcs, fp, ret0);
            report_bad(BAD_MISMATCHED, addr, dealloc, copy.api, copy.size, pcs, n, copy.stack ? copy.stack->pcs : NULL,
                       copy.stack ? (int)copy.stack->depth : 0);
            scrub(pcs, sizeof pcs);
        }
        if (kept)
            *kept = copy;
        return 1;
    }
    struct freed before = {0};
    for (unsigned k = 0; k < FREED_RING; k++)
        if (s->ring[k].addr == addr)
            before = s->ring[k];
    unlock(&s->lock);
    uintptr_t pcs[MAX_FRAMES];
    int n = capture(pcs, fp, ret0);
    if (before.addr) {
        uintptr_t first_free = before.free_pc_api & ((1ull << 56) - 1);
        report_bad(BAD_DOUBLE, addr, dealloc, (int)(before.free_pc_api >> 56), 0, pcs, n, &first_free, 1);
        scrub(&first_free, sizeof first_free);
    }
    else
        report_bad(BAD_INVALID, addr, dealloc, 0xff, 0, pcs, n, NULL, 0);
    scrub(pcs, sizeof pcs);
    scrub(&before, sizeof before);
    return 0;
}

#define FRAME() ((uintptr_t *)__builtin_frame_address(0))
#define RET() ((uintptr_t)__builtin_return_address(0))

/* ---- the malloc family --------------------------------------------------- */

EXPORT void *malloc(size_t n)
{
    if (UNLIKELY(!ready()))
        return arena_alloc(n);
    void *p = real_malloc(n);
    if (LIKELY(p && !t_guard)) {
        record(p, n, A_MALLOC, FRAME(), RET());
        if (UNLIKELY(g_dump_pending))
            maybe_dump_pending();
    }
    return p;
}

EXPORT void free(void *p)
{
    if (!p || UNLIKELY(arena_owns(p)))
        return;
    if (UNLIKELY(!ready() || t_guard)) {
        if (real_free)
            real_free(p);
        return;
    }
    if (release(p, D_FREE, FRAME(), RET(), NULL))
        real_free(p);
    if (UNLIKELY(g_dump_pending))
        maybe_dump_pending();
}

EXPORT void *calloc(size_t n, size_t size)
{
    if (UNLIKELY(!ready())) {
        size_t total;
        if (__builtin_mul_overflow(n, size, &total))
            return NULL;
        return arena_alloc(total); /* static memory is zeroed */
    }
    void *p = real_calloc(n, size);
    if (LIKELY(p && !t_guard))
        record(p, n * size, A_CALLOC, FRAME(), RET());
    return p;
}

static void *do_realloc(void *p, size_t n, int api, uintptr_t *fp, uintptr_t ret0)
{
    if (UNLIKELY(p && arena_owns(p))) {
        void *q = malloc(n);
        if (q)
            memcpy(q, p, arena_size(p) < n ? arena_size(p) : n);
        return q;
    }
    if (UNLIKELY(!ready() || t_guard))
        return real_realloc ? real_realloc(p, n) : arena_alloc(n);
    if (!p) {
        void *q = real_malloc(n);
        if (q)
            record(q, n, api, fp, ret0);
        return q;
    }
    struct block old;
    if (!release(p, D_REALLOC, fp, ret0, &old)) {
        errno = EINVAL;
        return NULL;
    }
    void *q = real_realloc(p, n);
    if (q && n) {
        record(q, n, api, fp, ret0);
    } else if (!q && n) {
        /* The old block is still the caller's. */
        GUARD;
        uint64_t h = hash_addr(old.addr);
        struct shard *s = shard_of(old.addr, h);
        lock(&s->lock);
        if (reserve(s)) {
            place(s->slots, s->cap, &old);
            s->count++;
        }
        unlock(&s->lock);
    }
    return q;
}

EXPORT void *realloc(void *p, size_t n)
{
    return do_realloc(p, n, A_REALLOC, FRAME(), RET());
}

EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return do_realloc(p, total, A_REALLOCARRAY, FRAME(), RET());
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (UNLIKELY(!ready()))
        return ENOMEM;
    int r = real_posix_memalign(out, align, n);
    if (r == 0 && *out && !t_guard)
        record(*out, n, A_POSIX_MEMALIGN, FRAME(), RET());
    return r;
}

#define SIMPLE_ALIGNED(name, api, params, call, size)   \
    EXPORT void *name params                            \
    {                                                   \
        if (UNLIKELY(!ready()))                         \
            return NULL;                                \
        void *p = call;                                 \
        if (p && !t_guard)                              \
            record(p, size, api, FRAME(), RET());       \
        return p;                                       \
    }

SIMPLE_ALIGNED(aligned_alloc, A_ALIGNED_ALLOC, (size_t align, size_t n), real_aligned_alloc(align, n), n)
SIMPLE_ALIGNED(memalign, A_MEMALIGN, (size_t align, size_t n), real_memalign(align, n), n)
SIMPLE_ALIGNED(valloc, A_VALLOC, (size_t n), real_valloc(n), n)
SIMPLE_ALIGNED(pvalloc, A_PVALLOC, (size_t n), real_pvalloc(n), n)

/* ---- operator new and delete (Itanium C++ ABI names) --------------------- */

static void *new_slow(void *(*real)(size_t), size_t n)
{
    GUARD;
    return real ? real(n) : NULL; /* calls the new_handler, or throws */
}

static void *new_aligned_slow(void *(*real)(size_t, size_t), size_t n, size_t align)
{
    GUARD;
    return real ? real(n, align) : NULL;
}

static inline void *new_common(size_t n, int api, uintptr_t *fp, uintptr_t ret0, int nothrow)
{
    if (UNLIKELY(!ready()))
        return arena_alloc(n);
    void *p = real_malloc(n ? n : 1);
    if (UNLIKELY(!p) && !nothrow)
        p = new_slow(api == A_NEW ? real_new : real_new_array, n);
    if (p && !t_guard)
        record(p, n, api, fp, ret0);
    return p;
}

static inline void *new_aligned_common(size_t n, size_t align, int api, uintptr_t *fp, uintptr_t ret0, int nothrow)
{
    if (UNLIKELY(!ready()))
        return NULL;
    void *p = real_memalign(align, n ? n : 1);
    if (UNLIKELY(!p) && !nothrow)
        p = new_aligned_slow(api == A_NEW_ALIGNED ? real_new_aligned : real_new_array_aligned, n, align);
    if (p && !t_guard)
        record(p, n, api, fp, ret0);
    return p;
}

static inline void delete_common(void *p, int dealloc, uintptr_t *fp, uintptr_t ret0)
{
    if (!p || UNLIKELY(arena_owns(p)))
        return;
    if (UNLIKELY(!ready() || t_guard)) {
        if (real_free)
            real_free(p);
        return;
    }
    if (release(p, dealloc, fp, ret0, NULL))
        real_free(p);
}

typedef struct { char unused; } nothrow_t;

EXPORT void *_Znwm(size_t n) { return new_common(n, A_NEW, FRAME(), RET(), 0); }
EXPORT void *_Znam(size_t n) { return new_common(n, A_NEW_ARRAY, FRAME(), RET(), 0); }
EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const nothrow_t *t) { (void)t; return new_common(n, A_NEW, FRAME(), RET(), 1); }
EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const nothrow_t *t) { (void)t; return new_common(n, A_NEW_ARRAY, FRAME(), RET(), 1); }
EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t a) { return new_aligned_common(n, a, A_NEW_ALIGNED, FRAME(), RET(), 0); }
EXPORT void *_ZnamSt11align_val_t(size_t n, size_t a) { return new_aligned_common(n, a, A_NEW_ARRAY_ALIGNED, FRAME(), RET(), 0); }
EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const nothrow_t *t) { (void)t; return new_aligned_common(n, a, A_NEW_ALIGNED, FRAME(), RET(), 1); }
EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const nothrow_t *t) { (void)t; return new_aligned_common(n, a, A_NEW_ARRAY_ALIGNED, FRAME(), RET(), 1); }

EXPORT void _ZdlPv(void *p) { delete_common(p, D_DELETE, FRAME(), RET()); }
EXPORT void _ZdaPv(void *p) { delete_common(p, D_DELETE_ARRAY, FRAME(), RET()); }
EXPORT void _ZdlPvm(void *p, size_t n) { (void)n; delete_common(p, D_DELETE, FRAME(), RET()); }
EXPORT void _ZdaPvm(void *p, size_t n) { (void)n; delete_common(p, D_DELETE_ARRAY, FRAME(), RET()); }
EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const nothrow_t *t) { (void)t; delete_common(p, D_DELETE, FRAME(), RET()); }
EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const nothrow_t *t) { (void)t; delete_common(p, D_DELETE_ARRAY, FRAME(), RET()); }
EXPORT void _ZdlPvSt11align_val_t(void *p, size_t a) { (void)a; delete_common(p, D_DELETE_ALIGNED, FRAME(), RET()); }
EXPORT void _ZdaPvSt11align_val_t(void *p, size_t a) { (void)a; delete_common(p, D_DELETE_ARRAY_ALIGNED, FRAME(), RET()); }
EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a) { (void)n; (void)a; delete_common(p, D_DELETE_ALIGNED, FRAME(), RET()); }
EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a) { (void)n; (void)a; delete_common(p, D_DELETE_ARRAY_ALIGNED, FRAME(), RET()); }
EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const nothrow_t *t) { (void)a; (void)t; delete_common(p, D_DELETE_ALIGNED, FRAME(), RET()); }
EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const nothrow_t *t) { (void)a; (void)t; delete_common(p, D_DELETE_ARRAY_ALIGNED, FRAME(), RET()); }

/* ---- mappings -------------------------------------------------------------- */

static size_t page_round(size_t len)
{
    size_t page = 4096;
    return (len + page - 1) & ~(page - 1);
}

static void record_region(void *p, size_t len, int prot, int flags, int fd, int api, uintptr_t *fp, uintptr_t ret0)
{
    GUARD;
    struct region r;
    r.addr = (uintptr_t)p;
    r.len = page_round(len);
    r.prot = prot;
    r.flags = flags;
    r.file = !(flags & MAP_ANONYMOUS) && fd >= 0;
    r.tid = tid();
    r.api = (uint8_t)api;
    r.depth = (uint8_t)capture(r.pcs, fp, ret0);
    lock(&g_regions_lock);
    if (!g_regions)
        g_regions = raw_map(MAX_REGIONS * sizeof *g_regions);
    if (g_regions && g_nregions < MAX_REGIONS)
        g_regions[g_nregions++] = r;
    else
        g_regions_dropped++;
    unlock(&g_regions_lock);
    scrub(&r, sizeof r);
}

/* Forgets [a, a+len) from the recorded mappings: whole, head, tail or middle. */
static void forget_range(uintptr_t a, size_t len)
{
    uintptr_t e = a + page_round(len);
    lock(&g_regions_lock);
    for (size_t i = 0; i < g_nregions;) {
        struct region *r = &g_regions[i];
        uintptr_t rs = r->addr, re = r->addr + r->len;
        if (e <= rs || a >= re) {
            i++;
            continue;
        }
        if (a <= rs && e >= re) {
            *r = g_regions[--g_nregions];
            continue;
        }
        if (a <= rs) {
            r->addr = e;
            r->len = re - e;
        } else if (e >= re) {
            r->len = a - rs;
        } else {
            r->len = a - rs;
            if (g_nregions < MAX_REGIONS) {
                struct region tail = *r;
                tail.addr = e;
                tail.len = re - e;
                g_regions[g_nregions++] = tail;
            }
        }
        i++;
    }
    unlock(&g_regions_lock);
}

static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off, int api, uintptr_t *fp, uintptr_t ret0)
{
    if (UNLIKELY(!ready())) {
        long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
        if (r < 0 && r > -4096) {
            errno = (int)-r;
            return MAP_FAILED;
        }
        return (void *)r;
    }
    void *p = real_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && !t_guard) {
        if (flags & MAP_FIXED)
            forget_range((uintptr_t)p, len); /* it replaced what was there */
        record_region(p, len, prot, flags, fd, api, fp, ret0);
    }
    return p;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return do_mmap(addr, len, prot, flags, fd, off, R_MMAP, FRAME(), RET());
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return do_mmap(addr, len, prot, flags, fd, off, R_MMAP64, FRAME(), RET());
}

EXPORT int munmap(void *addr, size_t len)
{
    if (UNLIKELY(!ready()))
        return (int)syscall(SYS_munmap, addr, len);
    int r = real_munmap(addr, len);
    if (r == 0 && !t_guard)
        forget_range((uintptr_t)addr, len);
    return r;
}

EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    if (UNLIKELY(!ready()))
        return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, want);
    void *p = real_mremap(old, old_len, new_len, flags, want);
    if (p == MAP_FAILED || t_guard)
        return p;
    /* Keep the old mapping's kind; the new range gets the mremap's stack. */
    int prot = PROT_READ | PROT_WRITE, mflags = MAP_PRIVATE | MAP_ANONYMOUS, fd = -1;
    lock(&g_regions_lock);
    for (size_t i = 0; i < g_nregions; i++) {
        if (g_regions[i].addr == (uintptr_t)old) {
            prot = g_regions[i].prot;
            mflags = g_regions[i].flags;
            fd = g_regions[i].file ? 0 : -1;
            break;
        }
    }
    unlock(&g_regions_lock);
    forget_range((uintptr_t)old, old_len);
    record_region(p, new_len, prot, mflags & ~MAP_FIXED, fd, R_MREMAP, FRAME(), RET());
    return p;
}

/* ---- modules unloaded by dlclose --------------------------------------------
 * A block allocated by a library that is dlclose()d before exit has return
 * addresses into a module that is no longer mapped. Before each dlclose the
 * shim copies that module's lines of /proc/self/maps here, so that the
 * harness can symbolize with the modules as they were when the block was
 * made. Text in the format of /proc/PID/maps, appended; full: dropped. */

static char *g_unloaded;
static uint64_t g_unloaded_len, g_unloaded_dropped;
static spinlock g_unloaded_lock;
static int (*real_dlclose)(void *);

static void note_module_maps(const char *path)
{
    size_t plen = strlen(path);
    if (plen == 0)
        return;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    lock(&g_unloaded_lock);
    if (!g_unloaded)
        g_unloaded = raw_map(UNLOADED_BYTES);
    char buf[4096], line[4096 + 256];
    size_t ll = 0;
    ssize_t r;
    while (g_unloaded && ((r = read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))) {
        for (ssize_t i = 0; i < r; i++) {
            if (ll < sizeof line)
                line[ll++] = buf[i];
            if (buf[i] != '\n')
                continue;
            /* A line of the module: its path is the line's last field. */
            if (ll > plen + 1 && ll <= sizeof line && memcmp(line + ll - 1 - plen, path, plen) == 0 && line[ll - 2 - plen] == ' ') {
                if (g_unloaded_len + ll <= UNLOADED_BYTES) {
                    memcpy(g_unloaded + g_unloaded_len, line, ll);
                    g_unloaded_len += ll;
                } else {
                    g_unloaded_dropped++;
                }
            }
            ll = 0;
        }
    }
    unlock(&g_unloaded_lock);
    close(fd);
}

EXPORT int dlclose(void *handle)
{
    if (!real_dlclose)
        real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    if (!real_dlclose)
        return -1;
    struct link_map *lm = NULL;
    if (!t_guard && dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name) {
        GUARD;
        note_module_maps(lm->l_name);
    }
    return real_dlclose(handle);
}

/* ---- exec: ask to be inspected before the image goes ------------------------
 * After a successful execve the old image's memory is gone, and with it its
 * leaks. When the harness traces the run it sets LEAKLAB_INSPECT_ON_SIGSTOP
 * (harness/trace.rs): the shim then queues itself a SIGSTOP carrying
 * INSPECT_VALUE just before each exec, which the tracer takes as a request
 * to inspect the process, suppresses, and lets the exec go on. glibc's exec
 * functions call its internal execve, so each one is interposed. */

#define INSPECT_VALUE 0x4c4b4c42 /* "LKLB" */
static int g_inspect_on_exec;

/* Whether the image has anything to report. One with nothing (a launcher
 * such as the harness's own stop_exec, which allocates nothing) is not
 * worth a stop. */
static int anything_outstanding(void)
{
    for (int k = 0; k < NSHARDS; k++)
        if (__atomic_load_n(&g_shards[k].count, __ATOMIC_RELAXED))
            return 1;
    return __atomic_load_n(&g_nregions, __ATOMIC_RELAXED) || __atomic_load_n(&g_nerrors, __ATOMIC_RELAXED);
}

static void before_exec(void)
{
    if (!g_inspect_on_exec || !anything_outstanding())
        return;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = SIGSTOP;
    info.si_code = SI_QUEUE;
    info.si_pid = getpid();
    info.si_uid = getuid();
    info.si_value.sival_int = INSPECT_VALUE;
    /* To this thread: the stop is taken on the syscall's return, before the exec. */
    syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), SIGSTOP, &info);
}

#define REAL(type, name) ((type)dlsym(RTLD_NEXT, name))
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    before_exec();
    return REAL(execve_fn, "execve")(path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
    before_exec();
    return REAL(execv_fn, "execv")(path, argv);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    before_exec();
    return REAL(execv_fn, "execvp")(file, argv);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    before_exec();
    return REAL(execve_fn, "execvpe")(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    before_exec();
    return REAL(fexecve_fn, "fexecve")(fd, argv, envp);
}

/* The list forms, collected into an argument vector on the stack (as
 * glibc does; bounded by the stack the caller has). */
#define COLLECT_ARGS(arg0, ap, argv)                          \
    size_t argc_ = 1;                                         \
    va_start(ap, arg0);                                       \
    while (va_arg(ap, const char *))                          \
        argc_++;                                              \
    va_end(ap);                                               \
    const char *argv[argc_ + 1];                              \
    argv[0] = arg0;                                           \
    va_start(ap, arg0);                                       \
    for (size_t i_ = 1; i_ <= argc_; i_++)                    \
        argv[i_] = va_arg(ap, const char *);

EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    COLLECT_ARGS(arg, ap, argv);
    va_end(ap);
    before_exec();
    return REAL(execv_fn, "execv")(path, (char *const *)argv);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    COLLECT_ARGS(arg, ap, argv);
    va_end(ap);
    before_exec();
    return REAL(execv_fn, "execvp")(file, (char *const *)argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    COLLECT_ARGS(arg, ap, argv);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    before_exec();
    return REAL(execve_fn, "execve")(path, (char *const *)argv, envp);
}

/* ---- the published table ------------------------------------------------------
 * The harness stops the process (at exit, at the checkpoint, or live) and
 * reads the shim's tables out of a copy of its memory, starting from this
 * descriptor, found by its dynamic symbol. Version 1's layout is documented
 * in harness/hook/README.md; every size is in the descriptor so that a
 * reader can check it knows this layout. It lives in .data (not .rodata)
 * so that a copy of the writable mappings holds it. */

struct leaklab_hook_table {
    char magic[8];                  /* "LLHOOKT\0" */
    uint32_t version, size;         /* 1, sizeof this struct */
    uint32_t nshards, shard_stride; /* g_shards[nshards], each shard_stride bytes */
    uint32_t shard_slots_at, shard_cap_at; /* offsets of `slots` and `cap` in a shard */
    uint32_t block_size, stack_header;     /* a block record; a stack's header before its pcs */
    uint32_t region_size, bad_free_size;
    uint32_t max_frames, pid;      /* the pid that last wrote `pid` (set at start and in fork children) */
    uintptr_t shards;
    uintptr_t regions, nregions;   /* addresses of g_regions (a pointer) and g_nregions */
    uintptr_t errors, nerrors;
    uintptr_t own, nown;           /* the shim's own mappings: own_range[nown] */
    uintptr_t arena_start, arena_end; /* dlsym's start-up allocations: the runtime's */
    uintptr_t unloaded, unloaded_len; /* addresses of g_unloaded (a pointer) and its length */
    uintptr_t dropped_stacks, dropped_regions, dropped_errors; /* addresses of the counters */
};

_Static_assert(sizeof(struct block) == 32, "block record of the table ABI");
_Static_assert(sizeof(struct region) == 40 + 8 * MAX_FRAMES, "region record of the table ABI");
_Static_assert(sizeof(struct bad_free) == 24 + 16 * MAX_FRAMES, "bad free record of the table ABI");
_Static_assert(sizeof(struct stack) == 16, "stack header of the table ABI");

EXPORT struct leaklab_hook_table leaklab_hook_table = {
    .magic = "LLHOOKT",
    .version = 1,
    .size = sizeof(struct leaklab_hook_table),
    .nshards = NSHARDS,
    .shard_stride = sizeof(struct shard),
    .shard_slots_at = offsetof(struct shard, slots),
    .shard_cap_at = offsetof(struct shard, cap),
    .block_size = sizeof(struct block),
    .stack_header = sizeof(struct stack),
    .region_size = sizeof(struct region),
    .bad_free_size = sizeof(struct bad_free),
    .max_frames = MAX_FRAMES,
    .shards = (uintptr_t)g_shards,
    .regions = (uintptr_t)&g_regions,
    .nregions = (uintptr_t)&g_nregions,
    .errors = (uintptr_t)&g_errors,
    .nerrors = (uintptr_t)&g_nerrors,
    .own = (uintptr_t)g_own,
    .nown = (uintptr_t)&g_nown,
    .arena_start = (uintptr_t)g_arena,
    .arena_end = (uintptr_t)(g_arena + sizeof g_arena),
    .unloaded = (uintptr_t)&g_unloaded,
    .unloaded_len = (uintptr_t)&g_unloaded_len,
    .dropped_stacks = (uintptr_t)&g_stacks_dropped,
    .dropped_regions = (uintptr_t)&g_regions_dropped,
    .dropped_errors = (uintptr_t)&g_errors_dropped,
};

/* ---- the dump ----------------------------------------------------------------- */

struct out {
    int fd;
    size_t used;
    char buf[1 << 16];
};

static struct out g_out;
static spinlock g_dump_lock;

static void out_flush(struct out *o)
{
    size_t done = 0;
    while (done < o->used) {
        ssize_t w = write(o->fd, o->buf + done, o->used - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    o->used = 0;
}

static void out_bytes(struct out *o, const char *s, size_t n)
{
    while (n) {
        if (o->used == sizeof o->buf)
            out_flush(o);
        size_t k = sizeof o->buf - o->used;
        if (k > n)
            k = n;
        memcpy(o->buf + o->used, s, k);
        o->used += k;
        s += k;
        n -= k;
    }
}

static void out_str(struct out *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

static void out_dec(struct out *o, unsigned long long v)
{
    char tmp[24];
    int i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out_bytes(o, tmp + i, sizeof tmp - i);
}

static void out_hex(struct out *o, unsigned long long v)
{
    char tmp[20];
    int i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    tmp[--i] = 'x';
    tmp[--i] = '0';
    out_bytes(o, tmp + i, sizeof tmp - i);
}

static void out_pcs(struct out *o, const uintptr_t *pcs, int n)
{
    for (int i = 0; i < n; i++) {
        out_str(o, " ");
        out_hex(o, pcs[i]);
    }
}

/* The output path: the pattern with %p replaced by the pid, plus a suffix. */
static void out_path(char *dst, size_t cap, const char *suffix, unsigned seq)
{
    const char *pat = g_out_pattern[0] ? g_out_pattern : "leaklab-hook.%p.dump";
    size_t n = 0;
    char pid[24];
    int pl = 0;
    for (long v = getpid(); v; v /= 10)
        pid[pl++] = (char)('0' + v % 10);
    for (const char *c = pat; *c && n + 24 < cap; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            for (int i = pl - 1; i >= 0; i--)
                dst[n++] = pid[i];
            c++;
        } else {
            dst[n++] = *c;
        }
    }
    for (const char *c = suffix; *c && n + 12 < cap; c++)
        dst[n++] = *c;
    if (seq) {
        char tmp[12];
        int k = 0;
        for (unsigned v = seq; v; v /= 10)
            tmp[k++] = (char)('0' + v % 10);
        while (k)
            dst[n++] = tmp[--k];
    }
    dst[n] = 0;
}

static void dump(const char *why)
{
    GUARD;
    lock(&g_dump_lock);
    char path[1100];
    if (why[0] == 's')
        out_path(path, sizeof path, ".signal", ++g_signal_dumps);
    else
        out_path(path, sizeof path, "", 0);
    struct out *o = &g_out;
    o->used = 0;
    o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (o->fd < 0) {
        unlock(&g_dump_lock);
        return;
    }
    out_str(o, "leaklab-hook 1\npid ");
    out_dec(o, (unsigned long long)getpid());
    out_str(o, "\nreason ");
    out_str(o, why);
    out_str(o, "\n");
    for (int k = 0; k < NSHARDS; k++) {
        struct shard *s = &g_shards[k];
        lock(&s->lock);
        for (size_t i = 0; s->slots && i < s->cap; i++) {
            const struct block *b = &s->slots[i];
            if (!b->addr)
                continue;
            out_str(o, "B ");
            out_hex(o, b->addr);
            out_str(o, " ");
            out_dec(o, b->size);
            out_str(o, " ");
            out_str(o, api_names[b->api]);
            out_str(o, " ");
            out_dec(o, b->tid);
            if (b->stack)
                out_pcs(o, b->stack->pcs, (int)b->stack->depth);
            out_str(o, "\n");
        }
        unlock(&s->lock);
    }
    lock(&g_regions_lock);
    for (size_t i = 0; i < g_nregions; i++) {
        const struct region *r = &g_regions[i];
        out_str(o, "R ");
        out_hex(o, r->addr);
        out_str(o, " ");
        out_dec(o, r->len);
        out_str(o, " ");
        out_str(o, region_api_names[r->api]);
        out_str(o, (r->flags & MAP_SHARED) ? " shared " : " private ");
        out_str(o, r->file ? "file " : "anon ");
        out_dec(o, (unsigned)r->prot);
        out_str(o, " ");
        out_dec(o, r->tid);
        out_pcs(o, r->pcs, r->depth);
        out_str(o, "\n");
    }
    if (g_stacks_dropped) {
        out_str(o, "dropped stacks ");
        out_dec(o, g_stacks_dropped);
        out_str(o, "\n");
    }
    if (g_regions_dropped) {
        out_str(o, "dropped regions ");
        out_dec(o, g_regions_dropped);
        out_str(o, "\n");
    }
    unlock(&g_regions_lock);
    lock(&g_errors_lock);
    for (size_t i = 0; i < g_nerrors; i++) {
        const struct bad_free *e = &g_errors[i];
        out_str(o, "F ");
        out_str(o, bad_names[e->kind]);
        out_str(o, " ");
        out_hex(o, e->addr);
        out_str(o, " ");
        out_str(o, dealloc_names[e->dealloc]);
        out_str(o, " ");
        out_str(o, e->api == 0xff ? "-" : api_names[e->api]);
        out_str(o, " ");
        out_dec(o, e->size);
        out_pcs(o, e->pcs, e->depth);
        out_str(o, " |");
        out_pcs(o, e->other, e->other_depth);
        out_str(o, "\n");
    }
    if (g_errors_dropped) {
        out_str(o, "dropped errors ");
        out_dec(o, g_errors_dropped);
        out_str(o, "\n");
    }
    unlock(&g_errors_lock);
    out_str(o, "maps\n");
    int mfd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (mfd >= 0) {
        char chunk[4096];
        ssize_t r;
        while ((r = read(mfd, chunk, sizeof chunk)) > 0 || (r < 0 && errno == EINTR))
            if (r > 0)
                out_bytes(o, chunk, (size_t)r);
        close(mfd);
    }
    lock(&g_unloaded_lock);
    if (g_unloaded_len) {
        out_str(o, "unloaded\n");
        out_bytes(o, g_unloaded, g_unloaded_len);
    }
    unlock(&g_unloaded_lock);
    out_str(o, "end\n");
    out_flush(o);
    close(o->fd);
    unlock(&g_dump_lock);
}

static void maybe_dump_pending(void)
{
    if (!t_guard && __atomic_exchange_n(&g_dump_pending, 0, __ATOMIC_ACQ_REL))
        dump("signal");
}

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    /* A thread interrupted inside the shim may hold a lock: dump later, at
     * the next allocation or free outside the shim. */
    if (t_guard)
        g_dump_pending = 1;
    else
        dump("signal");
    errno = saved;
}

/* ---- fork ----------------------------------------------------------------------- */

static void fork_prepare(void)
{
    lock(&g_dump_lock);
    for (int k = 0; k < NSHARDS; k++)
        lock(&g_shards[k].lock);
    lock(&g_regions_lock);
    lock(&g_errors_lock);
    lock(&g_stack_lock);
    lock(&g_unloaded_lock);
    lock(&g_own_lock);
}

static void fork_parent(void)
{
    unlock(&g_own_lock);
    unlock(&g_unloaded_lock);
    unlock(&g_stack_lock);
    unlock(&g_errors_lock);
    unlock(&g_regions_lock);
    for (int k = NSHARDS - 1; k >= 0; k--)
        unlock(&g_shards[k].lock);
    unlock(&g_dump_lock);
}

static void fork_child(void)
{
    fork_parent();
    t_tid = 0; /* the child's only thread has a new id */
    leaklab_hook_table.pid = (uint32_t)getpid();
}

/* ---- life cycle -------------------------------------------------------------------- */

static int parse_signal(const char *s)
{
    static const struct { const char *name; int sig; } names[] = {
        {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGHUP", SIGHUP}, {"SIGPROF", SIGPROF},
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP}, {"PROF", SIGPROF},
    };
    if (!strcmp(s, "none") || !strcmp(s, "0"))
        return 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i].name))
            return names[i].sig;
    long v = strtol(s, NULL, 10);
    return v > 0 && v < 65 ? (int)v : SIGUSR2;
}

__attribute__((constructor(101))) static void hook_init(void)
{
    GUARD;
    ready();
    leaklab_hook_table.pid = (uint32_t)getpid();
    const char *out = getenv("LEAKLAB_HOOK_OUT");
    if (out && strlen(out) < sizeof g_out_pattern)
        strcpy(g_out_pattern, out);
    g_inspect_on_exec = getenv("LEAKLAB_INSPECT_ON_SIGSTOP") != NULL;
    /* `none`: the harness reads the table out of the stopped process. */
    g_no_exit_dump = out && !strcmp(out, "none");
    const char *sig = getenv("LEAKLAB_HOOK_SIGNAL");
    g_dump_signal = sig ? parse_signal(sig) : SIGUSR2;
    dl_iterate_phdr(add_object, NULL);
    cxx_freeres = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (g_dump_signal) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(g_dump_signal, &sa, NULL);
    }
}

/* Runs inside _dl_fini, after the program's atexit handlers and static
 * destructors, so that what they free is not reported. */
__attribute__((destructor(101))) static void hook_fini(void)
{
    if (cxx_freeres)
        cxx_freeres();
    if (!g_no_exit_dump)
        dump("exit");
}
