/* inband.c: what the hook's in-band block headers must get right.
 *
 * Aligned blocks (posix_memalign, aligned_alloc, memalign, valloc, pvalloc)
 * keep their alignment and usable size; realloc keeps contents, also of an
 * aligned block, and realloc(p, 0) frees; frees of pointers the shim did
 * not hand out are reported and survived: an interior pointer whose bytes
 * in front copy a live block's header, a page-aligned pointer after an
 * unmapped page, a block freed twice (a small one and one too big for
 * glibc's caches); and threads free each other's blocks.
 *
 * Leaks on purpose, exactly: one aligned_alloc(4096, 5000), one
 * posix_memalign(64, 100), and THREADS x 10 blocks of 100 + thread bytes.
 * Exit 3 when a check of its own fails. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define THREADS 8
#define PER_THREAD 20000
#define SLOTS 256

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "inband: %s\n", what);
        failures++;
    }
}

static void *kept_aligned, *kept_posix;

static void aligned_blocks(void)
{
    void *p = NULL;
    check(posix_memalign(&p, 64, 100) == 0 && (uintptr_t)p % 64 == 0, "posix_memalign(64) alignment");
    check(malloc_usable_size(p) >= 100, "posix_memalign usable size");
    memset(p, 1, 100);
    kept_posix = p;
    check(posix_memalign(&p, 24, 10) != 0, "posix_memalign(24) accepted");
    kept_aligned = aligned_alloc(4096, 5000);
    check((uintptr_t)kept_aligned % 4096 == 0, "aligned_alloc(4096) alignment");
    memset(kept_aligned, 2, 5000);
    char *m = memalign(256, 33);
    check((uintptr_t)m % 256 == 0 && malloc_usable_size(m) >= 33, "memalign(256)");
    memcpy(m, "aligned block contents, 33 bytes", 33);
    /* realloc of an aligned block: the contents move to a plain block. */
    m = realloc(m, 5000);
    check(m && memcmp(m, "aligned block contents, 33 bytes", 33) == 0, "realloc of an aligned block");
    free(m);
    char *v = valloc(10);
    check((uintptr_t)v % 4096 == 0 && malloc_usable_size(v) >= 10, "valloc");
    free(v);
    char *pv = pvalloc(10);
    check((uintptr_t)pv % 4096 == 0 && malloc_usable_size(pv) >= 4096, "pvalloc rounds up to a page");
    memset(pv, 3, 4096);
    free(pv);
}

static void reallocs(void)
{
    char *s = malloc(8);
    strcpy(s, "1234567");
    for (size_t n = 16; n <= (1u << 20); n *= 4) {
        s = realloc(s, n);
        check(s && memcmp(s, "1234567", 8) == 0 && malloc_usable_size(s) >= n, "realloc grows");
    }
    s = realloc(s, 4);
    check(s && memcmp(s, "1234", 4) == 0, "realloc shrinks");
    check(realloc(s, 0) == NULL, "realloc(p, 0) frees");
    char *c = calloc(100, 10);
    int zero = 1;
    for (int i = 0; i < 1000; i++)
        zero &= c[i] == 0;
    check(zero && malloc_usable_size(c) >= 1000, "calloc zeroes");
    free(c);
}

static void foreign_frees(void)
{
    /* An interior pointer whose 16 bytes in front are a copy of a live
     * block's header: still not a block of its own. */
    char *a = malloc(64), *b = malloc(64);
    memcpy(a, b - 16, 16);
    char *volatile inner = a + 16;        /* (volatile: no compiler warning) */
    free(inner);                          /* invalid */
    free(b);
    free(b);                              /* double */
    /* A block too big for glibc's caches, freed twice: the first free may
     * merge it into the top chunk and leave the bytes in front as they
     * were, so only the shim's own mark tells the second free. */
    char *big = malloc(48 * 1024);
    free(big);
    free(big);                            /* double */
    /* A page-aligned pointer after an unmapped page. */
    char *pages = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pages, 4096);
    char *volatile after = pages + 4096;
    free(after);                          /* invalid */
    munmap(pages + 4096, 4096);
    free(a);
}

/* Blocks handed from thread to thread through a shared board: each thread
 * frees whatever the slot it picks holds, whoever allocated it. */
static void *board[SLOTS];
static pthread_mutex_t board_lock = PTHREAD_MUTEX_INITIALIZER;
static void *lost[THREADS][10];

static void *worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg, r = t * 2654435761u + 1;
    for (int i = 0; i < PER_THREAD; i++) {
        r = r * 1103515245u + 12345u;
        void *mine = (i & 1) ? malloc(16 + r % 2000) : calloc(1, 16 + r % 300);
        pthread_mutex_lock(&board_lock);
        unsigned k = (r >> 8) % SLOTS;
        void *theirs = board[k];
        board[k] = mine;
        pthread_mutex_unlock(&board_lock);
        free(theirs);
    }
    /* Filled, because a block fresh from malloc may still hold the address
     * of another chunk (a free list's link) that later becomes one of these:
     * a checker would then rightly call that one indirect. */
    for (int i = 0; i < 10; i++)
        lost[t][i] = memset(malloc(100 + t), 'L', 100 + t);
    return NULL;
}

int main(void)
{
    aligned_blocks();
    reallocs();
    foreign_frees();
    pthread_t th[THREADS];
    for (uintptr_t t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, worker, (void *)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    for (int k = 0; k < SLOTS; k++)
        free(board[k]);
    /* Lose the kept blocks. */
    memset(lost, 0, sizeof lost);
    kept_aligned = kept_posix = NULL;
    if (failures)
        return 3;
    puts("inband: done");
    return 0;
}
