//@ title: a live block whose only pointer is hidden by XOR with a key, then unhidden and freed
//@ teaches: a scanner that looks for pointer values cannot see disguised ones (XOR lists, tagged or compressed pointers); a block it finds unreferenced may still be in use
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

#define KEY ((uintptr_t)0x5a5aa5a55a5aa5a5u)

static uintptr_t g_hidden; // the block's address, XORed: not a pointer to anything

static void hide_block(void)
{
    char *p = malloc(64); //~ NOLEAK (hidden by XOR, freed later)
    //~^[bcc] FALSE: memleak lists every block outstanding at the checkpoint; it cannot tell a hidden pointer from a lost one
    strcpy(p, "still in use"); //~^^[ptrace] FALSE: at the checkpoint no word holds the block's address (only its XOR), so a scan must call it lost
    g_hidden = (uintptr_t)p ^ KEY;
}

static void unhide_and_free(void)
{
    char *p = (char *)(g_hidden ^ KEY);
    printf("recovered: %s\n", p);
    free(p);
    g_hidden = 0;
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    hide_block();
    // Unlike the other samples, the checkpoint comes while the pointer is
    // hidden, not just before main returns: this is the moment a live
    // scanner sees an unreferenced block, and must not call it a leak
    // with certainty. By exit nothing is left, so valgrind is silent.
    leaklab_checkpoint();
    unhide_and_free();
    return 0;
}
