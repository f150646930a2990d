//@ title: a weak default make_label() in one file, replaced by a strong definition in another
//@ teaches: the linker prefers a strong definition to a weak one, without a complaint: how a library ships defaults you may override, and how a leak tracker replaces malloc (`leaklab symbols weak_symbols`)
#include <stdio.h>
#include <stdlib.h>
#include "leaklab.h"

char *make_label(int id); // weak in default_label.c, strong in custom_label.c

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    char *first = make_label(1);
    char *second = make_label(2);
    printf("%s, %s\n", first, second); // "custom-1, custom-2": the strong one ran
    free(first);
    second = NULL; // the second label is lost; its site is in custom_label.c
    leaklab_checkpoint();
    return 0;
}
