//@ title: file-backed shared mappings (MAP_SHARED of a temp file) never unmapped
//@ teaches: a shared file mapping holds page-cache pages (SHR) and keeps an unlinked file alive: maps shows it as (deleted)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "leaklab.h"

#define LEN (256 * 1024)

// A fresh temp file of LEN bytes, already unlinked once mapped: the mapping
// is then the only thing keeping the file's blocks alive.
static int make_temp_file(char *path, size_t cap)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/leaklab-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, LEN) != 0) {
        perror("temp file");
        exit(1);
    }
    return fd;
}

static void leak_mapping(int tag)
{
    char path[4096];
    int fd = make_temp_file(path, sizeof path);
    char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0); //~ LEAK definite size=262144 count=3 region=shared-file
    //~^[valgrind] MISS: memcheck does not track mmap
    //~^^[lsan] MISS: LeakSanitizer tracks the heap (malloc, new), not mmap
    unlink(path); //~^^^[heaptrack] MISS: heaptrack records malloc, new and their kin, not mmap: a mapping is no heap block
    close(fd); // the mapping keeps its own reference to the file //~^^^^[mtrace] MISS: mtrace logs malloc, realloc and free only, not mmap
    if (p == MAP_FAILED) { //~^^^^^[dmalloc] MISS: dmalloc replaces malloc, not mmap
        perror("mmap"); //~^^^^^^[tcmalloc] MISS: tcmalloc's heap checker tracks heap allocations (malloc, new), not mmap
        exit(1); //~^^^^^^^[jemalloc] MISS: jemalloc profiles its own allocations (malloc, new), not mmap
    } //~^^^^^^^^[asan] MISS: ASan's LeakSanitizer tracks the heap (malloc, new), not mmap
    memset(p, '0' + tag, LEN); //~^^^^^^^^^[lsan-clang] MISS: LeakSanitizer tracks the heap (malloc, new), not mmap
} //~^^^^^^^^^^[asan-clang] MISS: ASan's LeakSanitizer tracks the heap (malloc, new), not mmap

int main(void)
{
    for (int i = 0; i < 3; i++)
        leak_mapping(i);
    leaklab_checkpoint();
    return 0;
}
