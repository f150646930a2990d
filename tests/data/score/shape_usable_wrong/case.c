//@ title: a usable size that no request of the annotated size gives is not a match
#include <stdlib.h>
void f(void) {
    p = malloc(34); //~ LEAK definite size=34 count=2
}
