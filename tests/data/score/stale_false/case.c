//@ title: a scoring case
#include <stdlib.h>
void f(void) {
    hide(malloc(32)); //~ NOLEAK (hidden)
    //~^[valgrind] FALSE: the pointer is hidden
}
