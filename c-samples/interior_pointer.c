//@ title: only a pointer into the middle of a block survives, in a global
//@ teaches: "possibly lost": memcheck cannot tell an interior pointer from a lost block whose address happens to be nearby
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

// A length-prefixed string: 16 bytes of header, then the text. Callers
// only ever see the text, so only the interior pointer is kept.
static char *g_name;

static char *make_name(const char *text)
{
    size_t len = strlen(text);
    char *block = malloc(16 + len + 1); //~ LEAK possible size=33 count=1
    //~^[lsan] MISS: LSan takes a pointer into a block's middle as a reference: it has no "possibly lost"
    memcpy(block, &len, sizeof len); //~^^[tcmalloc] MISS: the heap checker takes a pointer into a block's middle (up to HEAP_CHECK_MAX_POINTER_OFFSET, 1 KiB) as a reference: it has no "possibly lost"
    memcpy(block + 16, text, len + 1); //~^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (48 bytes in 1 block here), not at the size asked for
    return block + 16; // the start of the block is forgotten here //~^^^^[asan] MISS: ASan's LeakSanitizer takes a pointer into a block's middle as a reference: it has no "possibly lost"
} //~^^^^^[lsan-clang] MISS: LSan takes a pointer into a block's middle as a reference: it has no "possibly lost"
//~^^^^^^[asan-clang] MISS: ASan's LeakSanitizer takes a pointer into a block's middle as a reference: it has no "possibly lost"
int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    g_name = make_name("interior pointer");
    printf("%s\n", g_name);
    leaklab_checkpoint();
    return 0;
}
