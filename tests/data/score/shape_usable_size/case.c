//@ title: a heap walker sees glibc's usable sizes, not the requested ones
#include <stdlib.h>
void f(void) {
    s = strdup("test_memory"); //~ LEAK definite size=12 count=10 content="test_memory"
    p = malloc(34); //~ LEAK indirect size=34 count=2
    q = malloc(41); //~ LEAK indirect size=41 count=2
    big = malloc(1048576); //~ LEAK definite size=1048576 count=3
}
