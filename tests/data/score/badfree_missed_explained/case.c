//@ title: a scoring case
#include <stdlib.h>
void f(char *p) {
    free(p); //~ BADFREE mismatched
    //~^[valgrind] MISS: a made-up limit, to test explanations
}
