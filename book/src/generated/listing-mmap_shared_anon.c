//@ title: anonymous shared mappings (MAP_SHARED|MAP_ANONYMOUS) made and never unmapped
//@ teaches: shared anonymous memory is shmem: it counts in SHR and RssShmem, and shows as /dev/zero (deleted) in maps
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include "leaklab.h"

#define LEN (256 * 1024)

// The usual reason for such a mapping is memory a forked child will share;
// here nobody shares it and nobody unmaps it. Each one is its own shmem
// object, so unlike private ones they are not merged in /proc/PID/maps.
static void leak_mapping(int tag)
{
    char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0); //~ LEAK definite size=262144 count=3 region=shared-anon
    if (p == MAP_FAILED) {
        perror("mmap");
        return;
    }
    memset(p, 'a' + tag, LEN);
}
int main(void)
{
    for (int i = 0; i < 3; i++)
        leak_mapping(i);
    leaklab_checkpoint();
    return 0;
}
