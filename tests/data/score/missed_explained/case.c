//@ title: a scoring case
#include <stdlib.h>
void f(void) {
    mmap(0); //~ LEAK definite size=4096 region=private-anon
    //~^[valgrind] MISS: memcheck does not track mmap
}
