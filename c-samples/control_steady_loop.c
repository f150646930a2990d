//@ title: a loop that allocates and frees on every pass: busy, but it does not grow
//@ teaches: a steady process allocates all the time too; what marks a leak is memory that keeps growing, which `leaklab watch` measures per class of mappings
//@ args: 100
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "leaklab.h"

int main(int argc, char **argv) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    long n = leaklab_iterations(argc, argv, 100);
    size_t total = 0;
    for (long i = 0; n == 0 || i < n; i++) {
        // Small blocks from [heap], and one large enough for malloc to
        // give it its own mapping: both are returned before the next pass.
        char *small = malloc(32 + (size_t)(i % 64));
        char *big = malloc(256 * 1024);
        char *map = mmap(NULL, 64 * 1024, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (small == NULL || big == NULL || map == MAP_FAILED) {
            perror("allocation");
            return 1;
        }
        memset(small, 'x', 32);
        memset(big, 'y', 4096);
        memset(map, 'z', 4096);
        total += (size_t)(small[0] + big[0] + map[0]);
        munmap(map, 64 * 1024);
        free(big);
        free(small);
        if (n == 0)
            usleep(500);
    }
    printf("checksum %zu\n", total);
    leaklab_checkpoint();
    return 0;
}
