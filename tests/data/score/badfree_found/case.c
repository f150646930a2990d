//@ title: a scoring case
#include <stdlib.h>
void f(char *p) {
    free(p); //~ BADFREE double
}
