/* Wrong on purpose (the suite's test data): prints what the README shows
 * instead of reading the target's heap. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2 || strtol(argv[1], NULL, 10) <= 0 || strtol(argv[1], NULL, 10) > 4194304) {
        fprintf(stderr, "usage: heapdump PID\n");
        return 2;
    }
    printf("heap 55d0c1a2b000-55d0c1a4c000 135168 bytes\n");
    printf("     25 test_memory\n");
    printf("      3 hello\n");
    return 0;
}
