/* heapdump.c: copy the heap of a running process and list the strings in it.
 * Lab 06: complete it (README.md has the steps and the output format).
 *     cc -g -Wall heapdump.c -o heapdump && sudo ./heapdump PID
 *
 * As it stands it checks its argument and stops there. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>

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

    /* 1. Attach with PTRACE_ATTACH and wait until the process has stopped. */
    /* 2. Find the [heap] line of /proc/PID/maps: its start and end address. */
    /* 3. Read that range from /proc/PID/mem, page by page, into a buffer. */
    /* 4. Detach with PTRACE_DETACH, so the process runs on. */
    /* 5. Print the heap's range, then every string in the buffer, counted. */
    return 0;
}
