//@ title: a scoring case
#include <stdlib.h>
void f(void) {
    s = strdup("test_memory"); //~ LEAK definite size=12 count=10 content="test_memory"
    t = malloc(12); //~ LEAK definite size=12 count=2
}
