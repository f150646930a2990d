//@ title: three adjacent anonymous mappings that the kernel merged into one line of maps
#include <sys/mman.h>
void f(void) {
    p = mmap(0); //~ LEAK definite size=262144 count=3 region=private-anon
    q = mmap(0); //~ LEAK definite size=4096 count=2 region=shared-file
}
