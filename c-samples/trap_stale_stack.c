//@ title: a lost block whose address lingers in a dead stack frame below the stack pointer
//@ teaches: only the live part of the stack (from SP up) holds roots; a scanner that reads the whole [stack] mapping finds the stale copy and wrongly calls the block reachable
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

#define DEPTH 2048 // 16 KiB of frame: far deeper than what runs afterwards

// The block's address is written to the far (lowest) end of a big frame.
// After return the frame is dead, but nothing shallow overwrites it, so the
// bytes stay in the [stack] mapping until something calls this deep again.
static void lose_block(void)
{
    volatile uintptr_t frame[DEPTH];
    char *p = malloc(64); //~ LEAK definite size=64 count=1
    strcpy(p, "forgotten");
    frame[0] = (uintptr_t)p;
    printf("block at %p, stale copy at %p\n", (void *)p, (void *)&frame[0]);
    fflush(stdout);
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    lose_block();
    leaklab_checkpoint();
    return 0;
}
