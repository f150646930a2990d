//@ title: anonymous private mappings (MAP_PRIVATE|MAP_ANONYMOUS) made and never unmapped
//@ teaches: an mmap leak is not a heap leak: it shows as extra anonymous lines in /proc/PID/maps, not a bigger [heap]
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include "leaklab.h"

#define LEN (256 * 1024)

// Returns nothing: once it returns, no pointer to the mapping remains.
// Note for maps readers: the kernel merges adjacent anonymous private
// mappings with equal permissions, so the three leaks usually show as ONE
// rw-p line of 768 KiB (or more, merged with a neighbour), not three.
static void leak_mapping(int tag)
{
    char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); //~ LEAK definite size=262144 count=3 region=private-anon
    //~^[valgrind] MISS: memcheck does not track mmap
    //~^^[lsan] MISS: LeakSanitizer tracks the heap (malloc, new), not mmap
    if (p == MAP_FAILED) { //~^^^[heaptrack] MISS: heaptrack records malloc, new and their kin, not mmap: a mapping is no heap block
        perror("mmap"); //~^^^^[mtrace] MISS: mtrace logs malloc, realloc and free only, not mmap
        return; //~^^^^^[dmalloc] MISS: dmalloc replaces malloc, not mmap
    } //~^^^^^^[tcmalloc] MISS: tcmalloc's heap checker tracks heap allocations (malloc, new), not mmap
    memset(p, 'A' + tag, LEN); // touched pages count in RES, not just VIRT //~^^^^^^^[jemalloc] MISS: jemalloc profiles its own allocations (malloc, new), not mmap
} //~^^^^^^^^[asan] MISS: ASan's LeakSanitizer tracks the heap (malloc, new), not mmap
//~^^^^^^^^^[lsan-clang] MISS: LeakSanitizer tracks the heap (malloc, new), not mmap
int main(void) //~^^^^^^^^^^[asan-clang] MISS: ASan's LeakSanitizer tracks the heap (malloc, new), not mmap
{
    for (int i = 0; i < 3; i++)
        leak_mapping(i);
    leaklab_checkpoint();
    return 0;
}
