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
        //~^^^[tcmalloc] MISS: the heap checker reports unreachable blocks only: a block still reachable at exit is not a leak to it
        //~^^^^[asan] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
        instance->used = 0;
        instance->slots = new char[4096]; //~ LEAK reachable size=4096 count=1
        //~^[lsan] MISS: LSan reports leaks only: a block still reachable at exit is not one
        //~^^[bcc] MISS: libstdc++'s operator new has no frame pointer: the kernel's stack walk skips the frame that called new, and the block lands on its caller's line (line 27)
        //~^^^[tcmalloc] MISS: the heap checker reports unreachable blocks only: a block still reachable at exit is not a leak to it
        //~^^^^[asan] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
    }
    return *instance;
}

static void remember(const char *s)
{
    Cache &c = cache(); //~[bcc] FALSE: the blocks of lines 18 and 20 land here: operator new has no frame pointer, so the walk skips cache()
    size_t n = std::strlen(s) + 1;
    std::memcpy(c.slots + c.used, s, n);
    c.used += n;
}

int main()
{
    remember("alpha");
    remember("beta");
    std::printf("cache holds %zu bytes\n", cache().used);
    leaklab_checkpoint();
    return 0;
}
