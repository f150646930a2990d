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
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define MAX_FRAMES 24
/* Live blocks: a 16-byte header before each block (in-band, on the cache
 * line the allocator touches anyway) and a 16-byte entry in a dense array
 * of chunks, which is what the harness enumerates. */
#define HDR 16
#define CHUNK_BITS 12
#define CHUNK_ENTRIES (1u << CHUNK_BITS)
#define MAX_CHUNKS 65536
#define FREED_CACHE 64
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
static size_t (*real_usable_size)(void *);
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

/* ---- per-thread state ------------------------------------------------
 * One TLS block: a hook reaches every field from one address (each TLS
 * variable of a shared object costs a load of its offset from the GOT).
 * TLS is a root of the harness's marking: no field may hold a heap
 * address once the hook that wrote it has returned. */

#define RECENT 4
#define ID_CACHE 256
struct range;
struct entry_list { uint32_t head, count; }; /* head: an index plus 1 */
/* A recent free (see note_freed): the address complemented, the free's
 * call site with the block's api in the top byte. */
struct freed {
    uintptr_t not_addr;
    uintptr_t free_pc_api;
};
/* A stack id cached by its walk's hash (see stack_id). */
struct id_slot {
    uint64_t hash;
    uint32_t depth, id;
};

struct thread_state {
    int guard;                        /* >0 while the shim itself runs */
    uint32_t tid;
    uintptr_t stack_hi;               /* 0: not known yet; 1: unknown */
    const struct range *last_range;   /* the code range of the last lookup */
    unsigned recent_next;
    uintptr_t recent_ret[RECENT], recent_slot[RECENT]; /* see stale_copy */
    struct entry_list free, spare;    /* free entries (see entry_new) */
    uint32_t bump, bump_end;          /* unused entries of a fresh chunk */
    int registered;                   /* thread_gone will run at its exit */
    struct freed freed[FREED_CACHE];
    uintptr_t pcs[MAX_FRAMES];        /* the stack being recorded (see stack_id_slow) */
    struct id_slot ids[ID_CACHE];
};
static TLS struct thread_state tls;


static void unguard(int *unused)
{
    (void)unused;
    tls.guard--;
}
#define GUARD int guard_ __attribute__((cleanup(unguard), unused)) = (tls.guard++, 0)

static uint32_t tid(void)
{
    if (UNLIKELY(tls.tid == 0))
        tls.tid = (uint32_t)syscall(SYS_gettid);
    return tls.tid;
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
static spinlock g_own_lock; /* innermost: taken under the entry pool and stack locks */

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

static __attribute__((noinline)) const struct range *range_search(uintptr_t pc)
{
    for (int i = 0; i < g_nranges; i++)
        if (pc >= g_ranges[i].lo && pc < g_ranges[i].hi)
            return tls.last_range = &g_ranges[i];
    return NULL;
}

static inline const struct range *range_of(uintptr_t pc)
{
    const struct range *last = tls.last_range;
    if (LIKELY(last && pc >= last->lo && pc < last->hi))
        return last;
    return range_search(pc);
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

/* A stack's hash, one step per frame: computed while the frames are walked,
 * where it costs nothing (the walk waits on each frame's load). */
#define HASH_SEED 0xcbf29ce484222325ull
#define HASH_STEP(h, pc) (((h) ^ (pc)) * 0x9e3779b97f4a7c15ull)
static inline uint64_t hash_end(uint64_t h, int n)
{
    h ^= (uint64_t)n;
    return (h ^ (h >> 29) ^ (h >> 47)) | 1;
}

static __attribute__((noinline)) void stack_bounds(void)
{
    GUARD; /* pthread_getattr_np allocates */
    pthread_attr_t a;
    tls.stack_hi = 1;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&a, &addr, &size) == 0)
            tls.stack_hi = (uintptr_t)addr + size;
        pthread_attr_destroy(&a);
    }
}

/* Whether the word at `w` copies the return address of one of the last
 * few calls made straight from code with frame pointers (tls.recent_ret,
 * pushed to tls.recent_slot) without being its slot. The shim and glibc
 * copy such a return address into their own frames (spills, saved
 * registers); a later scan through a library's frames must not mistake
 * such a copy for a live return. */
static int stale_copy(const uintptr_t *w)
{
    for (int i = 0; i < RECENT; i++)
        if (tls.recent_ret[i] == *w && tls.recent_slot[i] != (uintptr_t)w)
            return 1;
    return 0;
}

static inline int on_stack(uintptr_t p, uintptr_t lo)
{
    return p > lo && p + 2 * sizeof(uintptr_t) <= tls.stack_hi && (p & 7) == 0;
}

/* The allocation's caller is a library without frame pointers (`fp` is
 * the hook's frame, `next` its saved frame pointer): finds the caller's
 * return address on the stack (appended to pcs[*n]) and returns the frame
 * record to walk on from, with *lo the lowest address it may lie above;
 * NULL when there is nothing more to walk. */
static __attribute__((noinline)) uintptr_t *past_library(uintptr_t *pcs, int *n, uintptr_t *fp, uintptr_t *next, uintptr_t *lo)
{
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
    for (uintptr_t *w = fp + 2; !found && w < fp + 2 + 512 && on_stack((uintptr_t)w, *lo); w++) {
        const struct range *rg = range_of(*w);
        if (rg && !rg->nofp && calls_into_library(*w, rg) && !stale_copy(w))
            found = w;
    }
    if (!found)
        return NULL;
    pcs[(*n)++] = *found;
    *lo = (uintptr_t)found;
    if (next_ok && next > found)
        return next;
    /* The library used the frame-pointer register for itself: find the
     * caller's frame record (saved fp, return after a call). */
    for (uintptr_t *a = found + 1; a < found + 512 && on_stack((uintptr_t)a, *lo); a++) {
        const struct range *rg;
        if (on_stack(a[0], (uintptr_t)a) && (rg = range_of(a[1])) && rg->nofp != 2 && follows_call(a[1], rg))
            return a;
    }
    return NULL;
}

/* Walks the frame records from `f` up (each above `lo`, below the stack's
 * top), appending their return addresses to pcs[] (when not NULL) and to
 * the hash *h; returns the new depth. */
static inline __attribute__((always_inline)) int walk_frames(uintptr_t *pcs, int n, uintptr_t *f, uintptr_t lo, uint64_t *h)
{
    uintptr_t hi = tls.stack_hi;
    uint64_t hash = *h;
    while (n < MAX_FRAMES) {
        uintptr_t a = (uintptr_t)f; /* NULL fails `a > lo` */
        if (!(a > lo && a + 2 * sizeof(uintptr_t) <= hi && (a & 7) == 0))
            break;
        uintptr_t ret = f[1];
        if (ret < 4096)
            break;
        if (pcs)
            pcs[n] = ret;
        n++;
        hash = HASH_STEP(hash, ret);
        lo = a;
        f = (uintptr_t *)f[0];
    }
    *h = hash;
    return n;
}

/* Remembers a call made straight from code with frame pointers (see tls.recent_ret). */
static inline __attribute__((always_inline)) void note_recent(uintptr_t ret0, uintptr_t *fp)
{
    unsigned k = tls.recent_next++ % RECENT;
    tls.recent_ret[k] = ret0;
    tls.recent_slot[k] = (uintptr_t)(fp + 1);
}

/* Whether the hook's frame `fp` can be walked at all (it lies on the stack). */
static inline __attribute__((always_inline)) int walkable(uintptr_t *fp)
{
    if (UNLIKELY(tls.stack_hi == 0))
        stack_bounds();
    uintptr_t lo = (uintptr_t)fp;
    return LIKELY(lo + 2 * sizeof(uintptr_t) <= tls.stack_hi && (lo & 7) == 0);
}

/* Fills pcs[] from the hook's frame `fp` (whose return address is `ret0`).
 * `recent`: whether to remember ret0 as a recent call (see note_recent). */
static inline __attribute__((always_inline)) int capture_from(uintptr_t *pcs, uintptr_t *fp, uintptr_t ret0, uint64_t *hash, int recent)
{
    int n = 1;
    pcs[0] = ret0;
    uint64_t h = HASH_STEP(HASH_SEED, ret0);
    if (!walkable(fp)) {
        *hash = hash_end(h, n);
        return n;
    }
    uintptr_t lo = (uintptr_t)fp;
    uintptr_t *f = (uintptr_t *)fp[0];
    const struct range *r0 = range_of(ret0);
    if (LIKELY(r0 && !r0->nofp)) {
        if (recent)
            note_recent(ret0, fp);
    } else if (r0) {
        f = past_library(pcs, &n, fp, f, &lo);
        if (n > 1)
            h = HASH_STEP(h, pcs[1]);
    }
    n = walk_frames(pcs, n, f, lo, &h);
    *hash = hash_end(h, n);
    return n;
}

static inline __attribute__((always_inline)) int capture(uintptr_t *pcs, uintptr_t *fp, uintptr_t ret0)
{
    uint64_t unused;
    return capture_from(pcs, fp, ret0, &unused, 1);
}

/* ---- the table of live blocks ------------------------------------------ */

/* A call stack, stored once however many blocks share it. */
struct stack {
    uint64_t hash;
    uint32_t depth;
    uint32_t unused;
    uintptr_t pcs[];
};

/* In front of each block the shim hands out: what the allocator's block
 * holds before the user's bytes. `size_api`: the requested size (bits
 * 0-47), the api (48-55), log2 of the distance from the allocator's
 * pointer to the user's (56-63: 4 for this header alone, more for an
 * aligned block). `check` binds the header to its address (hdr_check):
 * a free trusts a header that passes it without reading the entry, a
 * second cache miss that depends on the first; a free clears it. */
struct header {
    uint64_t size_api;
    uint32_t check;
    uint32_t entry;  /* the block's entry */
};

/* A block's entry, the table the harness reads. */
struct entry {
    uintptr_t addr;  /* the user's pointer; 0: free */
    uint32_t tid;
    union {
        uint32_t stack; /* live: a slot of the stack table plus 1; 0: none (table full) */
        uint32_t next;  /* free: the next free entry plus 1, 0 at the end of a list */
    };
};

/* The key of hdr_check, random per process (set before the first block). */
static uint64_t g_check_key;

/* A header's check: a keyed hash of the user's pointer and the header's
 * other fields, never 0. A pointer the shim did not hand out (or has
 * freed) passes it only by a 1 in 2^32 chance; such a free is then not
 * reported, and the real free gets the pointer as it would without the
 * shim. */
static inline uint32_t hdr_check(uintptr_t q, uint64_t size_api, uint32_t entry)
{
    uint64_t x = ((uint64_t)q ^ g_check_key ^ size_api ^ ((uint64_t)entry << 20)) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32) | 1;
}

#define HDR_SIZE_MASK ((1ull << 48) - 1)
static inline uint64_t hdr_pack(size_t size, int api, unsigned shift)
{
    return ((uint64_t)size & HDR_SIZE_MASK) | ((uint64_t)api << 48) | ((uint64_t)shift << 56);
}
static inline int hdr_api(const struct header *h) { return (int)((h->size_api >> 48) & 0xff); }
static inline size_t hdr_size(const struct header *h) { return (size_t)(h->size_api & HDR_SIZE_MASK); }
static inline size_t hdr_offset(const struct header *h) { return (size_t)1 << (h->size_api >> 56); }

/* ---- the table of stacks: lock-free lookups, inserts by CAS ------------- */

static struct stack *volatile *g_stack_slots;
static size_t g_nstacks, g_stacks_dropped;
static spinlock g_stack_lock; /* the slot array's creation and the chunk allocator */
static char *g_chunk_cur, *g_chunk_end;

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

/* The slot table, mapped at the first stack. */
static __attribute__((noinline)) struct stack *volatile *stack_slots_create(void)
{
    GUARD;
    lock(&g_stack_lock);
    if (!g_stack_slots)
        __atomic_store_n(&g_stack_slots, raw_map(STACK_SLOTS * sizeof(struct stack *)), __ATOMIC_RELEASE);
    struct stack *volatile *slots = g_stack_slots;
    unlock(&g_stack_lock);
    return slots;
}

/* A stack seen for the first time: stored, and claimed from slot `i` on. */
static __attribute__((noinline)) uint32_t intern_new(struct stack *volatile *slots, size_t i, size_t probes, const uintptr_t *pcs, int n, uint64_t h)
{
    GUARD;
    struct stack *fresh = NULL;
    for (; probes < 64; i = (i + 1) & (STACK_SLOTS - 1), probes++) {
        struct stack *st = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE);
        if (!st) {
            if (__atomic_load_n(&g_nstacks, __ATOMIC_RELAXED) > STACK_SLOTS / 4 * 3)
                break;
            if (!fresh && !(fresh = new_stack(pcs, n, h)))
                break;
            struct stack *expected = NULL;
            if (__atomic_compare_exchange_n(&slots[i], &expected, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                __atomic_fetch_add(&g_nstacks, 1, __ATOMIC_RELAXED);
                return (uint32_t)i + 1;
            }
            st = expected; /* another thread filled this slot first */
        }
        if (st->hash == h && st->depth == (uint32_t)n) {
            int k = 0;
            while (k < n && st->pcs[k] == pcs[k])
                k++;
            if (k == n)
                return (uint32_t)i + 1; /* `fresh`, if any, stays unused in its chunk */
        }
    }
    __atomic_fetch_add(&g_stacks_dropped, 1, __ATOMIC_RELAXED);
    return 0;
}

/* Returns the stack's id: its slot plus 1, or 0 when the table is full.
 * A stack already stored is found without a write (the common case). */
static inline __attribute__((always_inline)) uint32_t intern_stack(const uintptr_t *pcs, int n, uint64_t h)
{
    struct stack *volatile *slots = __atomic_load_n(&g_stack_slots, __ATOMIC_ACQUIRE);
    if (UNLIKELY(!slots) && !(slots = stack_slots_create()))
        return 0;
    size_t i = h & (STACK_SLOTS - 1), probes = 0;
    for (; probes < 64; i = (i + 1) & (STACK_SLOTS - 1), probes++) {
        struct stack *st = __atomic_load_n(&slots[i], __ATOMIC_ACQUIRE);
        if (!st)
            break;
        if (st->hash == h && st->depth == (uint32_t)n) {
            int k = 0;
            while (k < n && st->pcs[k] == pcs[k])
                k++;
            if (LIKELY(k == n))
                return (uint32_t)i + 1;
        }
    }
    return intern_new(slots, i, probes, pcs, n, h);
}

static const struct stack *stack_of(uint32_t id)
{
    struct stack *volatile *slots = __atomic_load_n(&g_stack_slots, __ATOMIC_ACQUIRE);
    return id && slots && id <= STACK_SLOTS ? slots[id - 1] : NULL;
}

/* ---- the entries of live blocks ------------------------------------------
 * A dense array of 16-byte entries in chunks of CHUNK_ENTRIES, mapped as
 * needed and never moved: a block's header holds its entry's index, so a
 * free finds it without a search and touches one small, hot line. Free
 * entries are kept in per-thread lists (no lock on the fast path: whoever
 * frees a block owns its entry); a thread that has freed two lists' worth
 * hands a full list to the shared pool, and a thread that runs dry takes
 * one from there before mapping a new chunk. A thread's lists go to the
 * pool when it exits. */

static struct entry *g_chunks[MAX_CHUNKS];
static uint64_t g_nchunks;
static uint64_t g_chunks_dropped;

#define POOL_LISTS 4096
static struct entry_list g_pool[POOL_LISTS];
static unsigned g_npool;
static spinlock g_pool_lock;

static pthread_key_t g_exit_key;
static int g_exit_key_ok;

static inline struct entry *entry_at(uint32_t i)
{
    struct entry *c = g_chunks[i >> CHUNK_BITS];
    return &c[i & (CHUNK_ENTRIES - 1)];
}

static void pool_put(struct entry_list l)
{
    if (!l.head)
        return;
    lock(&g_pool_lock);
    if (g_npool < POOL_LISTS)
        g_pool[g_npool++] = l;
    unlock(&g_pool_lock); /* a full pool drops the list: free entries, not blocks */
}

static void thread_gone(void *unused)
{
    (void)unused;
    GUARD;
    pool_put(tls.free);
    pool_put(tls.spare);
    tls.free = tls.spare = (struct entry_list){0, 0};
    /* The rest of a fresh chunk, as one more list. */
    struct entry_list rest = {0, 0};
    for (uint32_t i = tls.bump; i < tls.bump_end; i++) {
        entry_at(i)->next = rest.head;
        rest.head = i + 1;
        rest.count++;
    }
    tls.bump = tls.bump_end = 0;
    pool_put(rest);
    tls.registered = 0;
}

static uint32_t entry_new_slow(void);

/* An unused entry's index, or UINT32_MAX when no chunk can be mapped. */
static inline __attribute__((always_inline)) uint32_t entry_new(void)
{
    if (LIKELY(tls.free.head)) {
        uint32_t i = tls.free.head - 1;
        tls.free.head = entry_at(i)->next;
        tls.free.count--;
        return i;
    }
    return entry_new_slow();
}

/* The thread's free list is empty: the rest of its fresh chunk, its
 * spare list, a list from the pool, or a new chunk. */
static __attribute__((noinline)) uint32_t entry_new_slow(void)
{
    GUARD; /* pthread_setspecific may allocate; the pool's lock */
    if (tls.bump < tls.bump_end)
        return tls.bump++;
    if (tls.spare.head) {
        tls.free = tls.spare;
        tls.spare = (struct entry_list){0, 0};
        return entry_new();
    }
    if (UNLIKELY(!tls.registered) && g_exit_key_ok) {
        tls.registered = 1;
        pthread_setspecific(g_exit_key, (void *)1);
    }
    lock(&g_pool_lock);
    if (g_npool) {
        tls.free = g_pool[--g_npool];
        unlock(&g_pool_lock);
        return entry_new();
    }
    uint64_t c = g_nchunks;
    struct entry *chunk = c < MAX_CHUNKS ? raw_map(CHUNK_ENTRIES * sizeof(struct entry)) : NULL;
    if (chunk) {
        g_chunks[c] = chunk;
        __atomic_store_n(&g_nchunks, c + 1, __ATOMIC_RELEASE);
    } else {
        g_chunks_dropped++;
    }
    unlock(&g_pool_lock);
    if (!chunk)
        return UINT32_MAX;
    tls.bump = (uint32_t)(c << CHUNK_BITS);
    tls.bump_end = tls.bump + CHUNK_ENTRIES;
    return tls.bump++;
}

/* The free list is full: it becomes the spare, the old spare goes to the pool. */
static __attribute__((noinline)) void entry_list_full(void)
{
    GUARD;
    if (tls.spare.head)
        pool_put(tls.spare);
    tls.spare = tls.free;
    tls.free = (struct entry_list){0, 0};
}

/* Puts entry `i` on the thread's free list; returns whether the list is
 * now full (entry_list_full is then owed). */
static inline __attribute__((always_inline)) int entry_push(uint32_t i, struct entry *e)
{
    e->next = tls.free.head;
    tls.free.head = i + 1;
    return ++tls.free.count == CHUNK_ENTRIES;
}

static inline __attribute__((always_inline)) void entry_free(uint32_t i, struct entry *e)
{
    if (UNLIKELY(entry_push(i, e)))
        entry_list_full();
}

/* ---- blocks that start a page ------------------------------------------------
 * A block whose user's pointer starts a page has its header on the page
 * before, and a wild pointer there may have nothing mapped before it. The
 * shim's page-aligned blocks are kept in this set (open addressing, by
 * CAS; 1 in a few hundred plain blocks, and aligned ones), so that their
 * free reads the header at once; any other page-aligned pointer is first
 * probed with process_vm_readv, a syscall. A full set costs only that.
 * Addresses are kept complemented, so that the set is never a root. */
#define PAGE_SET 8192
#define PAGE_PROBES 32
#define PAGE_GONE 1 /* a removed address; ~addr is never 0 or 1 */
static uintptr_t g_page_set[PAGE_SET];

static inline size_t page_slot(uintptr_t q)
{
    return (size_t)(((q >> 12) * 0x9e3779b97f4a7c15ull) >> 51) & (PAGE_SET - 1);
}

static __attribute__((noinline)) void page_note(uintptr_t q)
{
    size_t i = page_slot(q);
    for (int k = 0; k < PAGE_PROBES; k++, i = (i + 1) & (PAGE_SET - 1)) {
        uintptr_t v = __atomic_load_n(&g_page_set[i], __ATOMIC_RELAXED);
        if ((v == 0 || v == PAGE_GONE) && __atomic_compare_exchange_n(&g_page_set[i], &v, ~q, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            return;
    }
}

/* Finds q's slot, or NULL. */
static uintptr_t *page_find(uintptr_t q)
{
    size_t i = page_slot(q);
    for (int k = 0; k < PAGE_PROBES; k++, i = (i + 1) & (PAGE_SET - 1)) {
        uintptr_t v = __atomic_load_n(&g_page_set[i], __ATOMIC_ACQUIRE);
        if (v == ~q)
            return &g_page_set[i];
        if (v == 0)
            return NULL;
    }
    return NULL;
}

static void page_forget(uintptr_t q)
{
    uintptr_t *slot = page_find(q), want = ~q;
    if (slot)
        __atomic_compare_exchange_n(slot, &want, PAGE_GONE, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* Whether `len` bytes at `a` can be read (for a pointer whose header would
 * lie on the page before it: a wild pointer there may be unmapped). */
static int readable(uintptr_t a, size_t len)
{
    char buf[HDR];
    struct iovec local = {buf, len}, remote = {(void *)a, len};
    return syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0) == (long)len;
}

/* The entry of the live block the shim handed out at `q`, or NULL: a
 * pointer the shim did not allocate (or no longer has) fails a check. */
static inline struct entry *entry_of(uintptr_t q, struct header **hp, uint32_t *ip)
{
    if (UNLIKELY((q & 15) || q < 4096))
        return NULL;
    if (UNLIKELY((q & 4095) < HDR) && !page_find(q) && !readable(q - HDR, HDR))
        return NULL;
    struct header *h = (struct header *)(q - HDR);
    uint32_t i = h->entry;
    if (UNLIKELY((i >> CHUNK_BITS) >= __atomic_load_n(&g_nchunks, __ATOMIC_ACQUIRE)))
        return NULL;
    struct entry *e = entry_at(i);
    if (UNLIKELY(__atomic_load_n(&e->addr, __ATOMIC_RELAXED) != q))
        return NULL;
    *hp = h;
    *ip = i;
    return e;
}

/* Notes a free in this thread's cache of recent frees, by address: to
 * tell a double free from a wild one. The address is kept complemented:
 * TLS is a root, and the address may be a live block's again. */
static inline void note_freed(uintptr_t addr, uintptr_t pc, int api)
{
    struct freed *f = &tls.freed[(addr >> 4) & (FREED_CACHE - 1)];
    f->not_addr = ~addr;
    f->free_pc_api = (pc & ((1ull << 56) - 1)) | ((uintptr_t)api << 56);
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
    real_usable_size = dlsym(RTLD_NEXT, "malloc_usable_size");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
    real_munmap = dlsym(RTLD_NEXT, "munmap");
    real_mremap = dlsym(RTLD_NEXT, "mremap");
    real_new = dlsym(RTLD_NEXT, "_Znwm");
    real_new_array = dlsym(RTLD_NEXT, "_Znam");
    real_new_aligned = dlsym(RTLD_NEXT, "_ZnwmSt11align_val_t");
    real_new_array_aligned = dlsym(RTLD_NEXT, "_ZnamSt11align_val_t");
    /* The kernel's random bytes for this process (glibc takes the first
     * eight for the stack protector); the address alone still differs
     * per process under ASLR. The same value on every call. */
    uint64_t key = (uint64_t)(uintptr_t)&g_check_key, rnd;
    const unsigned char *random = (const unsigned char *)getauxval(AT_RANDOM);
    if (random) {
        memcpy(&rnd, random + 8, sizeof rnd);
        key ^= rnd;
    }
    __atomic_store_n(&g_check_key, key, __ATOMIC_RELAXED);
    if (real_malloc && real_free && real_calloc && real_realloc && real_mmap && real_munmap)
        __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
}

static inline int ready(void)
{
    if (LIKELY(__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)))
        return 1;
    if (tls.guard)
        return 0; /* inside dlsym: the arena serves */
    resolve();
    return g_ready;
}

/* ---- recording ----------------------------------------------------------- */

#define FRAME() ((uintptr_t *)__builtin_frame_address(0))
#define RET() ((uintptr_t)__builtin_return_address(0))
#define SHIFT_HDR 4 /* log2(HDR) */

/* Zeroes a stack array of return addresses once used. Left behind, the
 * copies would be stale words that a later scan (past a library without
 * frame pointers, whose frames reuse this stack memory) takes for the
 * caller's return address. */
static inline void scrub(void *p, size_t n)
{
    memset(p, 0, n);
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* The ids of the stacks this thread recorded last, by hash: a stack seen
 * before is known by its walk alone, without storing its frames or
 * comparing them with the table's. Two stacks are taken for one only when
 * their depths and 64-bit hashes agree. Holds no address: TLS is a root. */
static inline struct id_slot *id_slot_of(uint64_t hash)
{
    return &tls.ids[(hash >> 1) & (ID_CACHE - 1)]; /* bit 0 is always set */
}

/* The stack walked in full, stored and interned; `cache`: the walk was
 * one stack_id can hash (its ret0 already noted as recent). The frames
 * go to tls.pcs rather than the stack: a copy of return addresses left in
 * a dead frame would be a stale word that a later scan (past a library
 * without frame pointers, whose frames reuse that stack memory) takes for
 * the caller's return address. They are zeroed once interned: a walk
 * through a library's frames can take a data word (a heap pointer) for a
 * return address, and left in TLS, a root, it would keep that block
 * reachable. */
static __attribute__((noinline)) uint32_t stack_id_slow(uintptr_t *fp, uintptr_t ret0, int cache)
{
    uintptr_t *pcs = tls.pcs;
    uint64_t hash;
    int n = capture_from(pcs, fp, ret0, &hash, !cache);
    uint32_t id = intern_stack(pcs, n, hash);
    for (int k = 0; k < n; k++)
        pcs[k] = 0;
    if (cache && id)
        *id_slot_of(hash) = (struct id_slot){hash, (uint32_t)n, id};
    return id;
}

/* The id of the stack from the hook's frame `fp`. A caller with frame
 * pointers (the common case) is walked without storing a frame, and its
 * stack found in the thread's cache; anything else takes the full walk. */
static inline __attribute__((always_inline)) uint32_t stack_id(uintptr_t *fp, uintptr_t ret0)
{
    const struct range *r0;
    if (LIKELY(walkable(fp) && (r0 = range_of(ret0)) && !r0->nofp)) {
        note_recent(ret0, fp);
        uint64_t h = HASH_STEP(HASH_SEED, ret0);
        int n = walk_frames(NULL, 1, (uintptr_t *)fp[0], (uintptr_t)fp, &h);
        uint64_t hash = hash_end(h, n);
        const struct id_slot *c = id_slot_of(hash);
        if (LIKELY(c->hash == hash && c->depth == (uint32_t)n))
            return c->id;
        return stack_id_slow(fp, ret0, 1);
    }
    return stack_id_slow(fp, ret0, 0);
}

/* What a block needs besides the allocator's memory: an entry (UINT32_MAX
 * when none could be mapped) and the caller's stack. Claimed before the
 * allocator is called, so that no slow path of the shim (the full walk,
 * a new chunk of entries) runs while a pointer to the new block is live:
 * a copy spilled to a frame that dies would be a stale word that a later
 * frame leaves in place, a root that keeps the block reachable. */
struct claim {
    uint32_t entry, stack;
};

static inline __attribute__((always_inline)) struct claim claim(uintptr_t *fp, uintptr_t ret0)
{
    struct claim c = {entry_new(), 0};
    if (LIKELY(c.entry != UINT32_MAX))
        c.stack = stack_id(fp, ret0);
    return c;
}

/* The allocator failed: the claimed entry goes back to the thread's list. */
static void unclaim(struct claim c)
{
    if (c.entry != UINT32_MAX)
        entry_free(c.entry, entry_at(c.entry));
}

/* Stamps the allocator's block `p` as the user's block `size` bytes at
 * p + 2^shift: writes the header in front of it and the block's entry. */
static inline __attribute__((always_inline)) void *stamp(char *p, size_t size, int api, unsigned shift, struct claim c)
{
    uintptr_t q = (uintptr_t)p + ((size_t)1 << shift);
    struct header *h = (struct header *)(q - HDR);
    uint64_t size_api = hdr_pack(size, api, shift);
    h->size_api = size_api;
    h->check = hdr_check(q, size_api, c.entry);
    h->entry = c.entry;
    struct entry *e = entry_at(c.entry);
    e->stack = c.stack;
    e->tid = tid();
    __atomic_store_n(&e->addr, q, __ATOMIC_RELEASE);
    if (UNLIKELY((q & 4095) == 0))
        page_note(q);
    return (void *)q;
}

/* Records the allocator's block `p` (2^shift bytes bigger than asked) and
 * returns the user's pointer; `p` NULL (the allocator failed) gives NULL.
 * Without memory for an entry the block goes out unrecorded, as the
 * allocator made it (its free is then reported). */
static inline __attribute__((always_inline)) void *record(void *p, size_t size, int api, unsigned shift, struct claim c)
{
    if (UNLIKELY(!p)) {
        unclaim(c);
        return NULL;
    }
    if (UNLIKELY(c.entry == UINT32_MAX))
        return p;
    return stamp(p, size, api, shift, c);
}

/* A block freed by the wrong deallocator (new[] by delete, malloc by delete...). */
static __attribute__((noinline, cold)) void report_mismatch(uintptr_t addr, int dealloc, const struct header *h, uint32_t stack, uintptr_t *fp, uintptr_t ret0)
{
    GUARD;
    uintptr_t pcs[MAX_FRAMES];
    int n = capture(pcs, fp, ret0);
    const struct stack *st = stack_of(stack);
    int api = hdr_api(h);
    report_bad(BAD_MISMATCHED, addr, dealloc, api, hdr_size(h), pcs, n, st ? st->pcs : NULL, st ? (int)st->depth : 0);
    scrub(pcs, sizeof pcs);
}

/* Forgets a block that is being freed. Returns the allocator's pointer to
 * pass to the real free, or NULL when nothing may be freed (a double or
 * wild free, which would crash the target: the event is reported
 * instead). With `kept` (realloc), the entry is kept, claimed, in *kept. */
static __attribute__((noinline)) void *release(void *q, int dealloc, uintptr_t *fp, uintptr_t ret0, uint32_t *kept)
{
    GUARD;
    uintptr_t addr = (uintptr_t)q;
    struct header *h;
    uint32_t i;
    struct entry *e = entry_of(addr, &h, &i);
    /* No atomic exchange: two threads freeing one block at once is a race
     * in the program, and a locked instruction here costs a tenth of a free. */
    if (LIKELY(e != NULL)) {
        __atomic_store_n(&e->addr, 0, __ATOMIC_RELAXED);
        h->check = 0; /* a second free fails the check */
        int api = hdr_api(h);
        note_freed(addr, ret0, api);
        if (UNLIKELY(family_of_api(api) != family_of_dealloc(dealloc)))
            report_mismatch(addr, dealloc, h, e->stack, fp, ret0);
        void *p = (char *)q - hdr_offset(h);
        if ((addr & 4095) == 0)
            page_forget(addr); /* before the real free: the page before may go with it */
        if (kept)
            *kept = i;
        else
            entry_free(i, e);
        return p;
    }
    struct freed before = tls.freed[(addr >> 4) & (FREED_CACHE - 1)];
    uintptr_t pcs[MAX_FRAMES];
    int n = capture(pcs, fp, ret0);
    if (before.not_addr == ~addr) {
        uintptr_t first_free = before.free_pc_api & ((1ull << 56) - 1);
        report_bad(BAD_DOUBLE, addr, dealloc, (int)(before.free_pc_api >> 56), 0, pcs, n, &first_free, 1);
        scrub(&first_free, sizeof first_free);
    } else {
        report_bad(BAD_INVALID, addr, dealloc, 0xff, 0, pcs, n, NULL, 0);
    }
    scrub(pcs, sizeof pcs);
    scrub(&before, sizeof before);
    return NULL;
}


/* ---- the malloc family ---------------------------------------------------
 * Every block the shim records is the allocator's block grown by its
 * header (or, aligned, by the alignment, the header at its end). */

EXPORT void *malloc(size_t n)
{
    if (UNLIKELY(!ready()))
        return arena_alloc(n);
    if (UNLIKELY(tls.guard))
        return real_malloc(n);
    if (UNLIKELY(n > SIZE_MAX - 4096)) {
        errno = ENOMEM;
        return NULL;
    }
    if (UNLIKELY(g_dump_pending))
        maybe_dump_pending();
    struct claim c = claim(FRAME(), RET());
    return record(real_malloc(n + HDR), n, A_MALLOC, SHIFT_HDR, c);
}

static void free_slow(void *q, int dealloc, uintptr_t *fp, uintptr_t ret0);

/* The rest of a free that needs more than the real free: a full list of
 * free entries, a dump asked for by signal. Out of line, so that the
 * common path holds no value across a call. */
static __attribute__((noinline)) void free_rare(void *p, int full)
{
    if (full)
        entry_list_full();
    real_free(p);
    if (UNLIKELY(g_dump_pending))
        maybe_dump_pending();
}

/* The deallocators' common path: a block the shim handed out, its header
 * on the same page as the pointer and passing its check, freed by its
 * family's deallocator. Anything else takes free_slow, which checks the
 * pointer against its entry and reports what it must: a pointer the shim
 * did not hand out, one it freed already, one of the start-up arena, a
 * mismatched deallocator. Under the guard a recorded block is released
 * the same way. */
static inline __attribute__((always_inline)) void free_common(void *q, int dealloc, uintptr_t *fp, uintptr_t ret0)
{
    uintptr_t addr = (uintptr_t)q;
    if (!q)
        return;
    if (UNLIKELY((addr & 4095) < HDR) || UNLIKELY(addr & 15) || UNLIKELY(addr < 4096)) {
        free_slow(q, dealloc, fp, ret0);
        return;
    }
    struct header *h = (struct header *)(addr - HDR);
    uint64_t size_api = h->size_api;
    uint32_t i = h->entry;
    int api = (int)((size_api >> 48) & 0xff);
    struct entry *c;
    if (UNLIKELY(h->check != hdr_check(addr, size_api, i) || family_of_api(api) != family_of_dealloc(dealloc) ||
                 !(c = g_chunks[(i >> CHUNK_BITS) & (MAX_CHUNKS - 1)]))) {
        free_slow(q, dealloc, fp, ret0);
        return;
    }
    h->check = 0; /* a second free fails the check */
    struct entry *e = &c[i & (CHUNK_ENTRIES - 1)];
    __atomic_store_n(&e->addr, 0, __ATOMIC_RELAXED);
    note_freed(addr, ret0, api);
    int full = entry_push(i, e);
    void *p = (char *)q - ((size_t)1 << (size_api >> 56));
    if (UNLIKELY(full | g_dump_pending)) {
        free_rare(p, full);
        return;
    }
    real_free(p);
}

static __attribute__((noinline)) void free_slow(void *q, int dealloc, uintptr_t *fp, uintptr_t ret0)
{
    if (UNLIKELY(arena_owns(q)))
        return;
    if (UNLIKELY(!ready())) {
        if (real_free)
            real_free(q);
        return;
    }
    if (UNLIKELY(tls.guard)) {
        /* The shim's own calls free what they allocated, raw; a recorded
         * block is still released as one. */
        struct header *h;
        uint32_t i;
        if (!entry_of((uintptr_t)q, &h, &i)) {
            real_free(q);
            return;
        }
    }
    void *p = release(q, dealloc, fp, ret0, NULL);
    if (LIKELY(p != NULL))
        real_free(p);
    if (UNLIKELY(g_dump_pending))
        maybe_dump_pending();
}

EXPORT void free(void *p)
{
    free_common(p, D_FREE, FRAME(), RET());
}

EXPORT void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total) || total > SIZE_MAX - 4096) {
        errno = ENOMEM;
        return NULL;
    }
    if (UNLIKELY(!ready()))
        return arena_alloc(total); /* static memory is zeroed */
    if (UNLIKELY(tls.guard))
        return real_calloc(n, size);
    struct claim c = claim(FRAME(), RET());
    return record(real_calloc(1, total + HDR), total, A_CALLOC, SHIFT_HDR, c);
}

EXPORT size_t malloc_usable_size(void *q)
{
    if (!q)
        return 0;
    if (UNLIKELY(arena_owns(q)))
        return arena_size(q);
    if (UNLIKELY(!ready()) || !real_usable_size)
        return 0;
    struct header *h;
    uint32_t i;
    if (entry_of((uintptr_t)q, &h, &i)) {
        size_t off = hdr_offset(h);
        return real_usable_size((char *)q - off) - off;
    }
    return real_usable_size(q);
}

static void *do_realloc(void *q, size_t n, int api, uintptr_t *fp, uintptr_t ret0)
{
    if (UNLIKELY(q && arena_owns(q))) {
        void *r = malloc(n);
        if (r)
            memcpy(r, q, arena_size(q) < n ? arena_size(q) : n);
        return r;
    }
    if (UNLIKELY(!ready() || tls.guard))
        return real_realloc ? real_realloc(q, n) : arena_alloc(n);
    if (UNLIKELY(n > SIZE_MAX - 4096)) {
        errno = ENOMEM;
        return NULL;
    }
    if (!q) {
        struct claim c = claim(fp, ret0);
        return record(real_malloc(n + HDR), n, api, SHIFT_HDR, c);
    }
    uint32_t i;
    char *p = release(q, D_REALLOC, fp, ret0, &i);
    if (!p) {
        errno = EINVAL;
        return NULL;
    }
    struct entry *e = entry_at(i);
    struct header *h = (struct header *)((char *)q - HDR);
    if (n == 0) {
        /* glibc frees the block and returns NULL. */
        entry_free(i, e);
        real_free(p);
        return NULL;
    }
    size_t off = hdr_offset(h), old = hdr_size(h);
    uint32_t stack = stack_id(fp, ret0); /* before the new block exists (see claim) */
    char *np;
    if (off == HDR) {
        np = real_realloc(p, n + HDR);
    } else {
        /* An aligned block: a plain one takes its place (realloc keeps no alignment). */
        np = real_malloc(n + HDR);
        if (np) {
            memcpy(np + HDR, q, old < n ? old : n);
            real_free(p);
        }
    }
    if (!np) {
        /* The old block is still the caller's. */
        h->check = hdr_check((uintptr_t)q, h->size_api, i);
        __atomic_store_n(&e->addr, (uintptr_t)q, __ATOMIC_RELEASE);
        if (((uintptr_t)q & 4095) == 0)
            page_note((uintptr_t)q);
        return NULL;
    }
    GUARD;
    return stamp(np, n, api, SHIFT_HDR, (struct claim){i, stack});
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

/* log2 of the distance from the allocator's pointer to the user's for an
 * alignment (rounded up to a power of two, as glibc's memalign does), or
 * -1 when it cannot be honoured. */
static int align_shift(size_t align)
{
    if (align > ((size_t)1 << 40))
        return -1;
    unsigned s = SHIFT_HDR;
    while (((size_t)1 << s) < align)
        s++;
    return (int)s;
}

/* The allocator's block for a user's block of n bytes aligned to 2^shift. */
static void *real_aligned(unsigned shift, size_t n)
{
    size_t off = (size_t)1 << shift;
    if (n > SIZE_MAX - off - 4096)
        return NULL;
    return shift == SHIFT_HDR ? real_malloc(n + HDR) : real_memalign(off, n + off);
}

static void *aligned_common(size_t align, size_t n, int api, uintptr_t *fp, uintptr_t ret0)
{
    if (UNLIKELY(!ready()))
        return NULL;
    if (UNLIKELY(tls.guard))
        return real_memalign(align, n);
    int shift = align_shift(align);
    if (shift < 0) {
        errno = EINVAL;
        return NULL;
    }
    struct claim c = claim(fp, ret0);
    void *p = real_aligned((unsigned)shift, n);
    if (!p)
        errno = ENOMEM;
    return record(p, n, api, (unsigned)shift, c);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (UNLIKELY(!ready()))
        return ENOMEM;
    if (UNLIKELY(tls.guard))
        return real_posix_memalign(out, align, n);
    if (align == 0 || (align & (align - 1)) || align % sizeof(void *))
        return EINVAL;
    int saved = errno;
    void *p = aligned_common(align, n, A_POSIX_MEMALIGN, FRAME(), RET());
    int r = p ? 0 : errno;
    errno = saved;
    if (p)
        *out = p;
    return r;
}

EXPORT void *aligned_alloc(size_t align, size_t n) { return aligned_common(align, n, A_ALIGNED_ALLOC, FRAME(), RET()); }
EXPORT void *memalign(size_t align, size_t n) { return aligned_common(align, n, A_MEMALIGN, FRAME(), RET()); }
EXPORT void *valloc(size_t n) { return aligned_common(4096, n, A_VALLOC, FRAME(), RET()); }

EXPORT void *pvalloc(size_t n)
{
    size_t rounded = n ? (n + 4095) & ~(size_t)4095 : 4096;
    if (rounded < n) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned_common(4096, rounded, A_PVALLOC, FRAME(), RET());
}

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

/* Inlined into each operator: the api and nothrow are then constants. */
static inline __attribute__((always_inline)) void *new_common(size_t n, int api, uintptr_t *fp, uintptr_t ret0, int nothrow)
{
    if (UNLIKELY(!ready()))
        return arena_alloc(n);
    if (UNLIKELY(tls.guard))
        return real_malloc(n ? n : 1);
    /* Too big: the real operator fails as it should (throws, or NULL). */
    size_t want = n > SIZE_MAX - 4096 ? SIZE_MAX : n + HDR;
    struct claim c = claim(fp, ret0);
    void *p = want == SIZE_MAX ? NULL : real_malloc(want);
    if (UNLIKELY(!p) && !nothrow) {
        /* The real operator calls the new_handler, or throws: the entry
         * goes back first. */
        unclaim(c);
        p = new_slow(api == A_NEW ? real_new : real_new_array, want);
        c = claim(fp, ret0);
    }
    return record(p, n, api, SHIFT_HDR, c);
}

static inline void *new_aligned_common(size_t n, size_t align, int api, uintptr_t *fp, uintptr_t ret0, int nothrow)
{
    if (UNLIKELY(!ready()))
        return NULL;
    if (UNLIKELY(tls.guard))
        return real_memalign(align, n ? n : 1);
    int shift = align_shift(align);
    struct claim c = claim(fp, ret0);
    void *p = shift < 0 ? NULL : real_aligned((unsigned)shift, n);
    if (UNLIKELY(!p) && !nothrow) {
        size_t off = shift < 0 ? 0 : (size_t)1 << shift;
        unclaim(c);
        p = new_aligned_slow(api == A_NEW_ALIGNED ? real_new_aligned : real_new_array_aligned,
                             shift < 0 || n > SIZE_MAX - off - 4096 ? SIZE_MAX : n + off, shift < 0 ? align : off);
        c = claim(fp, ret0);
    }
    return record(p, n, api, (unsigned)shift, c);
}

static inline __attribute__((always_inline)) void delete_common(void *p, int dealloc, uintptr_t *fp, uintptr_t ret0)
{
    free_common(p, dealloc, fp, ret0);
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
    if (p != MAP_FAILED && !tls.guard) {
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
    if (r == 0 && !tls.guard)
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
    if (p == MAP_FAILED || tls.guard)
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
    if (!tls.guard && dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name) {
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
    uint64_t chunks = __atomic_load_n(&g_nchunks, __ATOMIC_ACQUIRE);
    for (uint64_t c = 0; c < chunks; c++)
        for (uint32_t k = 0; k < CHUNK_ENTRIES; k++)
            if (__atomic_load_n(&g_chunks[c][k].addr, __ATOMIC_RELAXED))
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
    uint32_t version, size;         /* 3, sizeof this struct */
    uint32_t entry_size, header_size;      /* a live block's entry; its header before the user's bytes */
    uint32_t chunk_entries, max_chunks;    /* entries per chunk; the chunk directory's length */
    uint32_t stack_slots, stack_header;    /* the stack table's length; a stack's header before its pcs */
    uint32_t region_size, bad_free_size;
    uint32_t max_frames, pid;      /* the pid that last wrote `pid` (set at start and in fork children) */
    uintptr_t chunks, nchunks;     /* g_chunks (entry chunk pointers) and the address of its u64 count */
    uintptr_t stacks;              /* the address of the pointer to the stack slots */
    uintptr_t regions, nregions;   /* addresses of g_regions (a pointer) and g_nregions */
    uintptr_t errors, nerrors;
    uintptr_t own, nown;           /* the shim's own mappings: own_range[nown] */
    uintptr_t arena_start, arena_end; /* dlsym's start-up allocations: the runtime's */
    uintptr_t unloaded, unloaded_len; /* addresses of g_unloaded (a pointer) and its length */
    uintptr_t dropped_stacks, dropped_regions, dropped_errors; /* addresses of the counters */
};

_Static_assert(sizeof(struct entry) == 16, "entry record of the table ABI");
_Static_assert(sizeof(struct header) == HDR, "block header of the table ABI");
_Static_assert(sizeof(struct region) == 40 + 8 * MAX_FRAMES, "region record of the table ABI");
_Static_assert(sizeof(struct bad_free) == 24 + 16 * MAX_FRAMES, "bad free record of the table ABI");
_Static_assert(sizeof(struct stack) == 16, "stack header of the table ABI");
_Static_assert(sizeof(struct leaklab_hook_table) == 184, "descriptor of the table ABI");

EXPORT struct leaklab_hook_table leaklab_hook_table = {
    .magic = "LLHOOKT",
    .version = 3,
    .size = sizeof(struct leaklab_hook_table),
    .entry_size = sizeof(struct entry),
    .header_size = sizeof(struct header),
    .chunk_entries = CHUNK_ENTRIES,
    .max_chunks = MAX_CHUNKS,
    .stack_slots = STACK_SLOTS,
    .stack_header = sizeof(struct stack),
    .region_size = sizeof(struct region),
    .bad_free_size = sizeof(struct bad_free),
    .max_frames = MAX_FRAMES,
    .chunks = (uintptr_t)g_chunks,
    .nchunks = (uintptr_t)&g_nchunks,
    .stacks = (uintptr_t)&g_stack_slots,
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
    /* Other threads may free while this runs: a block is written out
     * whole or not at all, from a copy of its entry and header. */
    uint64_t chunks = __atomic_load_n(&g_nchunks, __ATOMIC_ACQUIRE);
    for (uint64_t c = 0; c < chunks; c++) {
        for (uint32_t k = 0; k < CHUNK_ENTRIES; k++) {
            const struct entry *e = &g_chunks[c][k];
            uintptr_t addr = __atomic_load_n(&e->addr, __ATOMIC_ACQUIRE);
            if (!addr)
                continue;
            /* A copy that cannot fault: the block may be freed and unmapped meanwhile. */
            struct header h;
            struct iovec local = {&h, sizeof h}, remote = {(void *)(addr - HDR), sizeof h};
            if (syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0) != (long)sizeof h)
                continue;
            uint32_t tid_ = e->tid, stack = e->stack;
            if (__atomic_load_n(&e->addr, __ATOMIC_ACQUIRE) != addr || h.entry != (uint32_t)((c << CHUNK_BITS) | k) || hdr_api(&h) > A_NEW_ARRAY_ALIGNED)
                continue;
            const struct stack *st = stack_of(stack);
            out_str(o, "B ");
            out_hex(o, addr);
            out_str(o, " ");
            out_dec(o, hdr_size(&h));
            out_str(o, " ");
            out_str(o, api_names[hdr_api(&h)]);
            out_str(o, " ");
            out_dec(o, tid_);
            if (st)
                out_pcs(o, st->pcs, (int)st->depth);
            out_str(o, "\n");
        }
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
    if (!tls.guard && __atomic_exchange_n(&g_dump_pending, 0, __ATOMIC_ACQ_REL))
        dump("signal");
}

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    /* A thread interrupted inside the shim may hold a lock: dump later, at
     * the next allocation or free outside the shim. */
    if (tls.guard)
        g_dump_pending = 1;
    else
        dump("signal");
    errno = saved;
}

/* ---- fork ----------------------------------------------------------------------- */

static void fork_prepare(void)
{
    lock(&g_dump_lock);
    lock(&g_pool_lock);
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
    unlock(&g_pool_lock);
    unlock(&g_dump_lock);
}

static void fork_child(void)
{
    fork_parent();
    tls.tid = 0; /* the child's only thread has a new id */
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
    g_exit_key_ok = pthread_key_create(&g_exit_key, thread_gone) == 0;
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
