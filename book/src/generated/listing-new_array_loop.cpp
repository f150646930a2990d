//@ title: new int[102400] in a loop, part of it touched, the pointer dropped (the article's first program)
//@ teaches: a steady heap leak; run with 0 to watch VIRT and RES climb in top, pidstat -r and /proc/PID/maps
//@ args: 10
#include <cstdio>
#include <cstring>
#include <unistd.h>
#include "leaklab.h"

// The leak sits in a helper so that main's frame never holds the pointer:
// a stale copy there would make a scanner (and valgrind) call it reachable.
static void leak_one_array()
{
    int *p = new int[102400]; //~ LEAK definite size=409600 count=10
    // Only written pages become resident: touching a quarter makes RES grow
    // about a quarter as fast as VIRT.
    memset(p, 0x5a, sizeof(int) * 102400 / 4);
}

int main(int argc, char **argv)
{
    long n = leaklab_iterations(argc, argv, 10);
    if (n == 0) {
        printf("pid %d: leaking 400 KiB per second, Ctrl-C to stop\n", (int)getpid());
        fflush(stdout);
    }
    for (long i = 0; n == 0 || i < n; i++) {
        leak_one_array();
        if (n == 0)
            sleep(1); // slow enough to watch
    }
    leaklab_checkpoint();
    return 0;
}
