//@ title: a scoring case
#include <stdlib.h>
void f(void) {
    mmap(0); //~ LEAK definite size=65536 region=shared-anon
}
