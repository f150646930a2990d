//@ title: a scoring case
#include <stdlib.h>
void f(void) {
    malloc(12); //~ LEAK definite size=12
}
