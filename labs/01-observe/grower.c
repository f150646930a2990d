/* grower.c: lab 01's background job. Run it and watch it from outside:
 * the lab is to find out from /proc what it does with its memory.
 *     cc -g grower.c -o grower && ./grower &
 * With no argument it runs until killed; `./grower 20` stops after 20 ticks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TICK_US 250000           /* four ticks a second */
#define RECORDS_PER_TICK 8
#define RECORD_SIZE (16 * 1024)
#define RECORD_WRITTEN 1000
#define TABLE_SIZE (6 << 20)

int main(int argc, char **argv)
{
    long ticks = argc > 1 ? strtol(argv[1], NULL, 10) : 0;

    unsigned char *table = mmap(NULL, TABLE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(table, 0x5a, TABLE_SIZE);

    printf("grower: pid %d\n", (int)getpid());
    fflush(stdout);

    for (long t = 0; ticks == 0 || t < ticks; t++) {
        for (int i = 0; i < RECORDS_PER_TICK; i++) {
            char *record = malloc(RECORD_SIZE);
            if (record == NULL)
                return 1;
            memset(record, 'r', RECORD_WRITTEN);
        }
        usleep(TICK_US);
    }
    munmap(table, TABLE_SIZE);
    return 0;
}
