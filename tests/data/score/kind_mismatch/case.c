//@ title: a scoring case
#include <stdlib.h>
void f(void) {
    g = malloc(16); //~ LEAK reachable size=16
}
