//@ title: `char *shared_buffer;` written in two files: two tentative definitions merged into one COMMON symbol
//@ teaches: with -fcommon an uninitialised global defined in two files is one variable (a COMMON symbol merged into .bss), so the block allocated through one file's name is freed through the other's; since gcc 10 (-fno-common) the same link fails with "multiple definition" (`leaklab symbols common_symbols`)
//@ cflags: -fcommon
#include <stdio.h>
#include "leaklab.h"

void fill_buffer(void);    // filler.c
void release_buffer(void); // releaser.c

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    fill_buffer();
    release_buffer(); // frees the block through releaser.c's shared_buffer
    leaklab_checkpoint();
    return 0;
}
