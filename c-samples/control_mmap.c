//@ title: control: all four kinds of mapping made, touched and unmapped, plus strdup and free
//@ teaches: mappings undone with munmap leave nothing behind; a maps-reading detector must stay silent here
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "leaklab.h"

#define LEN (256 * 1024)

static int temp_file(void)
{
    char path[4096];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/leaklab-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0 || ftruncate(fd, LEN) != 0) {
        perror("temp file");
        exit(1);
    }
    unlink(path);
    return fd;
}

static void map_touch_unmap(int flags, int fd)
{
    char *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 'm', LEN);
    munmap(p, LEN);
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    map_touch_unmap(MAP_PRIVATE | MAP_ANONYMOUS, -1);
    map_touch_unmap(MAP_SHARED | MAP_ANONYMOUS, -1);
    for (int shared = 0; shared < 2; shared++) {
        int fd = temp_file();
        map_touch_unmap(shared ? MAP_SHARED : MAP_PRIVATE, fd);
        close(fd);
    }
    char *s = strdup("mapped and unmapped");
    puts(s);
    free(s);
    leaklab_checkpoint();
    return 0;
}
