/* heapdump.c: copy the heap of a running process and list the strings in it
 * (reference solution of lab 06, after the source article's tool).
 *     cc -g -Wall heapdump.c -o heapdump && sudo ./heapdump PID
 * Output: the heap's range, then one line per distinct string (a run of at
 * least MIN_LEN printable bytes ended by a NUL), with how often it occurs,
 * most frequent first. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIN_LEN 4
#define PAGE 4096

struct string_count {
    const char *text;
    long count;
};

/* Finds the [heap] line of /proc/PID/maps. */
static int find_heap(long pid, unsigned long *start, unsigned long *end)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/maps", pid);
    FILE *maps = fopen(path, "r");
    if (maps == NULL) {
        fprintf(stderr, "heapdump: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[512];
    int found = -1;
    while (fgets(line, sizeof line, maps) != NULL) {
        if (strstr(line, "[heap]") != NULL && sscanf(line, "%lx-%lx", start, end) == 2) {
            found = 0;
            break;
        }
    }
    fclose(maps);
    if (found != 0)
        fprintf(stderr, "heapdump: process %ld has no [heap] mapping\n", pid);
    return found;
}

/* Copies [start, end) of the process's memory, page by page. A page that
 * cannot be read is left as zeros. */
static unsigned char *copy_range(long pid, unsigned long start, unsigned long end)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/mem", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "heapdump: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t len = end - start;
    unsigned char *buf = calloc(1, len);
    if (buf == NULL) {
        close(fd);
        return NULL;
    }
    for (size_t off = 0; off < len; off += PAGE) {
        size_t want = len - off < PAGE ? len - off : PAGE;
        if (pread(fd, buf + off, want, (off_t)(start + off)) != (ssize_t)want)
            fprintf(stderr, "heapdump: cannot read %zu bytes at %#lx: %s\n", want, start + off, strerror(errno));
    }
    close(fd);
    return buf;
}

static int by_count(const void *a, const void *b)
{
    const struct string_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->text, y->text);
}

/* Prints every NUL-terminated run of printable bytes, counted. */
static void print_strings(unsigned char *buf, size_t len)
{
    struct string_count *seen = NULL;
    size_t n = 0, cap = 0;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] >= 0x20 && buf[i] < 0x7f) {
            run++;
            continue;
        }
        if (buf[i] == '\0' && run >= MIN_LEN) {
            const char *text = (const char *)buf + i - run;  /* NUL-terminated in place */
            size_t k = 0;
            while (k < n && strcmp(seen[k].text, text) != 0)
                k++;
            if (k == n) {
                if (n == cap) {
                    cap = cap ? 2 * cap : 64;
                    struct string_count *grown = realloc(seen, cap * sizeof *seen);
                    if (grown == NULL)
                        break;
                    seen = grown;
                }
                seen[n++] = (struct string_count){text, 0};
            }
            seen[k].count++;
        }
        run = 0;
    }
    qsort(seen, n, sizeof *seen, by_count);
    for (size_t k = 0; k < n; k++)
        printf("%7ld %s\n", seen[k].count, seen[k].text);
    free(seen);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PID\n", argv[0]);
        return 2;
    }
    char *end;
    long pid = strtol(argv[1], &end, 10);
    if (*end != '\0' || pid <= 0) {
        fprintf(stderr, "heapdump: not a pid: %s\n", argv[1]);
        return 2;
    }

    /* Wrong on purpose (the suite's test data): a stop signal instead of
     * ptrace. The target holds still, but it is never traced. */
    if (kill((pid_t)pid, SIGSTOP) != 0) {
        fprintf(stderr, "heapdump: cannot stop %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    usleep(100000);

    unsigned long heap_start = 0, heap_end = 0;
    unsigned char *heap = NULL;
    if (find_heap(pid, &heap_start, &heap_end) == 0)
        heap = copy_range(pid, heap_start, heap_end);
    kill((pid_t)pid, SIGCONT);

    if (heap == NULL)
        return 1;
    printf("heap %lx-%lx %lu bytes\n", heap_start, heap_end, heap_end - heap_start);
    print_strings(heap, heap_end - heap_start);
    free(heap);
    return 0;
}
