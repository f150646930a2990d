//@ title: a global holds a new[] array of objects with destructors: its pointer is 8 bytes into the block
//@ teaches: new[] of a class with a destructor stores the element count in front, so the program's pointer is an interior one; memcheck's newarray heuristic still calls the block reachable, a naive start-pointer scanner would not
#include <cstdio>
#include <cstring>
#include "leaklab.h"

struct Slot {
    char name[24];
    Slot() { std::strcpy(name, "empty"); }
    ~Slot() { name[0] = '\0'; } // non-trivial: new[] must remember the count
};

static Slot *g_slots; // points 8 bytes past the start of the block

// 4 * 24 bytes of Slots + the 8-byte count = 104. Under
// --leak-check-heuristics=none memcheck calls this block "possibly lost".

static void init_slots()
{
    g_slots = new Slot[4]; //~ LEAK reachable size=104 count=1
    //~^[lsan] MISS: LSan reports leaks only: a block still reachable at exit is not one
    // (bcc's walk skips the frame that called new; leaklab finds it in the code: harness/backends/bcc/recover.rs) //~^^[lsan-clang] MISS: LSan reports leaks only: a block still reachable at exit is not one
} //~^^^[asan-clang] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one

int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{ //~^^^^^^[tcmalloc] MISS: the heap checker reports unreachable blocks only: a block still reachable at exit is not a leak to it
    init_slots();
    std::printf("block starts at %p, g_slots is %p\n", //~^^^^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (112 bytes in 1 block here), not at the size asked for
                (void *)(reinterpret_cast<char *>(g_slots) - sizeof(size_t)), (void *)g_slots); //~^^^^^^^^^[asan] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
    leaklab_checkpoint();
    return 0; // no delete[] g_slots
}
