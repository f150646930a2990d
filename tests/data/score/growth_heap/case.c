//@ title: a scoring case: a loop leaking small blocks grows [heap]
#include <stdlib.h>
void f(void) {
    s = strdup("x"); //~ LEAK definite size=12 count=10
}
