/* The target of `leaklab bench --scan`: about SIZE MiB of heap in blocks of
 * 16 to 1024 bytes, every 16th of them leaked. Blocks hold mostly
 * non-pointer words, and every 4th kept block points to another kept one,
 * so the marker follows real pointers. Prints "blocks leaked" on stdout, then
 * stops itself for the scan when LEAKLAB_CHECKPOINT is set. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Not static: at -O2 a static only main uses may live in a register. */
uint64_t **g_slots;

int main(int argc, char **argv)
{
    size_t target = (size_t)strtoull(argc > 1 ? argv[1] : "1024", NULL, 10) << 20;
    size_t cap = target / 128 + 1024; /* blocks average 520 bytes */
    g_slots = malloc(cap * sizeof *g_slots);
    uint64_t x = 88172645463325252ull;
    size_t total = 0, n = 0, leaked = 0;
    while (total < target && n < cap) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t size = 16 + (size_t)(x % 1009);
        uint64_t *p = malloc(size);
        if (!p)
            return 1;
        for (size_t i = 0; i < size / 8; i++)
            p[i] = (x + i) & 0x00ffffffffffffffull; /* never a user-space pointer */
        if (n % 4 == 1 && n > 16)
            p[0] = (uint64_t)(uintptr_t)g_slots[(n - 5) | 1];
        g_slots[n++] = p;
        total += size;
    }
    for (size_t i = 0; i < n; i += 16) {
        g_slots[i] = NULL; /* lost: nothing else points to a block with an index divisible by 16 */
        leaked++;
    }
    printf("%zu %zu\n", n, leaked);
    fflush(stdout);
    if (getenv("LEAKLAB_CHECKPOINT"))
        raise(SIGSTOP);
    return 0;
}
