//@ title: a buffer grown with realloc, then dropped
//@ teaches: the leak site is the last (re)allocation, not the original malloc: realloc gives a new block
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

static size_t fill_buffer(void)
{
    char *buf = malloc(16);
    strcpy(buf, "header:");
    char *bigger = realloc(buf, 4096); //~ LEAK definite size=4096 count=1
    if (bigger == NULL) { //~^[dmalloc] MISS: stdout's 4096-byte buffer has this block's size and, under dmalloc, no stack either: it is counted with it
        free(buf); //~^^[tcmalloc] MISS: the heap checker counts the block as live at exit: a root it scans still holds their addresses (the same on every run with a fixed layout)
        return 0;
    }
    memset(bigger + 7, 'x', 4000);
    bigger[4007] = '\0';
    return strlen(bigger); // ... and bigger is never freed
}

int main(void)
{
    printf("filled %zu bytes\n", fill_buffer());
    leaklab_checkpoint();
    return 0;
}
