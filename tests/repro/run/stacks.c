/* stacks.c: what the hook's stack table and its placement of blocks must
 * get right, read through the table ABI (harness/hook/README.md: a header
 * {u64 size_api, u32 check, u32 entry} in the 16 bytes before each block,
 * and its entry {u64 addr, u32 tid, u32 stack} in the chunk directory of
 * the descriptor `leaklab_hook_table`).
 *
 * - Blocks made at one call site along one path share one stack; a block
 *   from another site, or from the same site reached through another
 *   caller, has another.
 * - Blocks that start a page (their header lies on the page before): the
 *   plain ones among 40,000 mallocs, callocs and reallocs of every size,
 *   which keep calloc's zeroes, realloc's contents and their usable size,
 *   and 2,000 valloc blocks live at once, freed by another thread; then one
 *   of them freed twice, which must be reported, not done.
 *
 * With the argument `hook` it reads the headers (only the hook puts them
 * there); without it, it skips that check and the double free.
 * Leaks on purpose, exactly: 7 blocks of 24 bytes from make() called by
 * first(), 3 of 24 from make() called by second(), 5 of 40 from other().
 * Exit 3 when a check of its own fails. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, hook;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "stacks: %s\n", what);
        failures++;
    }
}

/* The block's entry, through the descriptor: the chunk directory's
 * address at offset 56, the entries per chunk at offset 24. */
static const uint32_t *entry_of(const void *p)
{
    const char *table = dlsym(RTLD_DEFAULT, "leaklab_hook_table");
    if (!table)
        return NULL;
    uint32_t entry = ((const uint32_t *)p)[-1], per_chunk;
    const uint64_t *dir;
    memcpy(&per_chunk, table + 24, sizeof per_chunk);
    memcpy(&dir, table + 56, sizeof dir);
    const char *chunk = (const char *)(uintptr_t)dir[entry / per_chunk];
    return (const uint32_t *)(chunk + 16 * (entry % per_chunk));
}

static uint32_t stack_of(const void *p)
{
    const uint32_t *e = entry_of(p);
    return e && *(const void *const *)e == p ? e[3] : 0;
}

static uint64_t size_of(const void *p)
{
    return ((const uint64_t *)p)[-2] & ((1ull << 48) - 1);
}

__attribute__((noinline)) static void *make(size_t n)
{
    return malloc(n);
}

__attribute__((noinline)) static void *first(void)
{
    return make(24);
}

__attribute__((noinline)) static void *second(void)
{
    return make(24);
}

__attribute__((noinline)) static void *other(void)
{
    return malloc(40);
}

static void *kept[15];

static void shared_stacks(void)
{
    for (int i = 0; i < 7; i++)
        kept[i] = first();
    for (int i = 7; i < 10; i++)
        kept[i] = second();
    for (int i = 10; i < 15; i++)
        kept[i] = other();
    if (!hook)
        return;
    for (int i = 0; i < 15; i++)
        check(stack_of(kept[i]) != 0, "a block without a stack");
    for (int i = 1; i < 7; i++)
        check(stack_of(kept[i]) == stack_of(kept[0]), "one path, two stacks");
    for (int i = 8; i < 10; i++)
        check(stack_of(kept[i]) == stack_of(kept[7]), "one path, two stacks");
    for (int i = 11; i < 15; i++)
        check(stack_of(kept[i]) == stack_of(kept[10]), "one path, two stacks");
    check(stack_of(kept[0]) != stack_of(kept[7]), "one site through two callers shares a stack");
    check(stack_of(kept[0]) != stack_of(kept[10]) && stack_of(kept[7]) != stack_of(kept[10]), "two sites share a stack");
    check(size_of(kept[0]) == 24 && size_of(kept[10]) == 40, "the header's size");
}

#define ROUNDS 40000

static void page_starts(void)
{
    static void *live[64];
    unsigned seed = 12345;
    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 8) % 5000;
        int slot = (int)((seed >> 20) & 63);
        free(live[slot]);
        char *p;
        switch (i % 4) {
        case 0:
            p = malloc(n);
            break;
        case 1:
            p = calloc(1, n);
            if (p) {
                size_t z = 0;
                while (z < n && p[z] == 0)
                    z++;
                check(z == n, "calloc's block is not zeroed");
            }
            break;
        case 2:
            p = (char *)realloc(NULL, n);
            break;
        default:
            p = malloc(16);
            if (p) {
                memcpy(p, "sixteen bytes!!", 16);
                p = realloc(p, n + 16);
                check(p && memcmp(p, "sixteen bytes!!", 16) == 0, "realloc lost the contents");
            }
            break;
        }
        if (!p) {
            check(0, "out of memory");
            live[slot] = NULL;
            continue;
        }
        size_t want = i % 4 == 3 ? n + 16 : n;
        check(malloc_usable_size(p) >= want, "usable size below the request");
        memset(p, 0x5a, want);
        live[slot] = p;
    }
    for (int i = 0; i < 64; i++)
        free(live[i]);
}

#define PAGES 2000
static void *pages[PAGES];

static void *free_pages(void *unused)
{
    (void)unused;
    for (int i = 0; i < PAGES; i++)
        free(pages[i]);
    return NULL;
}

static void page_aligned(void)
{
    for (int i = 0; i < PAGES; i++) {
        pages[i] = valloc(16 + i % 100);
        check(pages[i] && ((uintptr_t)pages[i] & 4095) == 0, "valloc");
        if (pages[i])
            memset(pages[i], 1, 16 + i % 100);
    }
    pthread_t t;
    check(pthread_create(&t, NULL, free_pages, NULL) == 0 && pthread_join(t, NULL) == 0, "the freeing thread");
    char *volatile again = valloc(100);
    check(again && ((uintptr_t)again & 4095) == 0, "valloc");
    free(again);
    if (hook)
        free(again); /* a double free the hook reports; glibc would abort */
}

int main(int argc, char **argv)
{
    hook = argc > 1 && strcmp(argv[1], "hook") == 0;
    shared_stacks();
    memset(kept, 0, sizeof kept); /* lost: definite leaks */
    page_starts();
    page_aligned();
    return failures ? 3 : 0;
}
