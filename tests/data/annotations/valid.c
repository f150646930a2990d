//@ title: every annotation form once
//@ args: 3
#include <stdlib.h>
int main(void)
{
    char *s = malloc(12);      //~ LEAK definite size=12 count=3 content="test_memory"
    void *n = malloc(24);      //~ LEAK definite size=24
    //~^ LEAK indirect size=24 count=6
    void *m = 0;               //~ LEAK definite size=4096 region=shared-file
    //~^[valgrind] MISS: memcheck does not track mmap
    void *o = 0;               //~ LEAK reachable size=16 type=Circle
    void *x = 0;               //~ NOLEAK (hidden by XOR, freed later)
    void *y = 0;               //~ NOLEAK
    void *z = 0;               //~[hook] FALSE: a stale copy of the pointer
    char *q = 0;               //~ LEAK possible size=8 content="say \"hi\""
    //~^^^^[ptrace] MISS: the carets point four lines up
    return !s + !n + !m + !o + !x + !y + !z + !q;
}
