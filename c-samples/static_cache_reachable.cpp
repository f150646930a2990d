//@ title: a function-local static pointer to a heap cache, never released
//@ teaches: a lazily built singleton is still reachable at exit (through .bss); valgrind lists it but it is not a growing leak
#include <cstdio>
#include <cstring>
#include "leaklab.h"

struct Cache {
    size_t used;
    char *slots;
}; // 16 bytes

static Cache &cache()
{
    // Built on first use, never destroyed: a static pointer, not a static
    // object, so no destructor runs at exit.
    static Cache *instance = nullptr;
    if (instance == nullptr) {
        instance = new Cache; //~ LEAK reachable size=16 count=1
        //~^[lsan] MISS: LSan reports leaks only: a block still reachable at exit is not one
        //~^^[bcc] MISS: libstdc++'s operator new has no frame pointer: the kernel's stack walk skips the frame that called new, and the block lands on its caller's line (line 27)
        instance->used = 0; //~^^^[mtrace] MISS: mtrace logs one caller, the malloc call inside libstdc++'s operator new, not the new-expression's line
        instance->slots = new char[4096]; //~ LEAK reachable size=4096 count=1
        //~^[lsan] MISS: LSan reports leaks only: a block still reachable at exit is not one
        //~^^[bcc] MISS: libstdc++'s operator new has no frame pointer: the kernel's stack walk skips the frame that called new, and the block lands on its caller's line (line 27)
    } //~^^^[dmalloc] MISS: stdout's 4096-byte buffer has this block's size and, under dmalloc, no stack either: it is counted with it
    return *instance; //~^^^^[mtrace] MISS: mtrace logs one caller, the malloc call inside libstdc++'s operator new, not the new-expression's line
} //~^^^^^^^^^[mtrace] FALSE: the blocks operator new allocated are reported with no site: their one logged caller is in libstdc++
//~^^^^^^^^^^[tcmalloc] MISS: the heap checker reports unreachable blocks only: a block still reachable at exit is not a leak to it
static void remember(const char *s) //~^^^^^^^^^^^[asan] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
{ //~^^^^^^^^[tcmalloc] MISS: the heap checker reports unreachable blocks only: a block still reachable at exit is not a leak to it
    Cache &c = cache(); //~[bcc] FALSE: the blocks of lines 18 and 20 land here: operator new has no frame pointer, so the walk skips cache()
    size_t n = std::strlen(s) + 1; //~^^^^^^^^^^[asan] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
    std::memcpy(c.slots + c.used, s, n); //~^^^^^^^^^^^^^^^[lsan-clang] MISS: LSan reports leaks only: a block still reachable at exit is not one
    c.used += n; //~^^^^^^^^^^^^[lsan-clang] MISS: LSan reports leaks only: a block still reachable at exit is not one
} //~^^^^^^^^^^^^^^^^^[asan-clang] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
//~^^^^^^^^^^^^^^[asan-clang] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    remember("alpha");
    remember("beta");
    std::printf("cache holds %zu bytes\n", cache().used);
    leaklab_checkpoint();
    return 0;
}
