//@ title: a scoring case
#include <stdlib.h>
void f(void) {
    n = malloc(24); //~ LEAK definite size=24
    //~^ LEAK indirect size=24 count=6
}
