//@ title: the BADFREE annotations
#include <stdlib.h>
int main(void)
{
    char *a = malloc(8);
    char *b = malloc(8);
    free(a);
    free(a);                   //~ BADFREE double
    delete b;                  //~ BADFREE mismatched
    free(a + 1);               //~ BADFREE invalid
    //~^[lsan] MISS: LeakSanitizer does not check frees
    return 0;
}
