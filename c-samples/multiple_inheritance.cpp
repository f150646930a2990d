//@ title: a global keeps an object through its second base class, a pointer into the middle of the object
//@ teaches: converting Both* to Second* adds an offset, so the only pointer is an interior one; memcheck's multipleinheritance heuristic (on by default) recognises the vtable there and calls the block reachable
#include <cstdio>
#include "leaklab.h"

struct First {
    virtual ~First() {}
    virtual int first() const { return 1; }
    long a = 10;
};

struct Second {
    virtual ~Second() {}
    virtual int second() const { return 2; }
    long b = 20;
};

struct Both : First, Second {
    long c = 30;
}; // First (16) + Second (16) + c (8) = 40 bytes

// == (char *)object + 16. Under --leak-check-heuristics=none memcheck
// calls the block "possibly lost".
static Second *g_second;

static void make_object()
{
    g_second = new Both; //~ LEAK reachable size=40 count=1 type=Both
    //~^[lsan] MISS: LSan reports leaks only: a block still reachable at exit is not one
    // (bcc's walk skips the frame that called new; leaklab finds it in the code: harness/backends/bcc/recover.rs) //~^^[lsan-clang] MISS: LSan reports leaks only: a block still reachable at exit is not one
} //~^^^[dmalloc] MISS: dmalloc knows no C++ type of a block, and the annotation matches by type
//~^^^^[asan-clang] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
int main()
{ //~^[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
    make_object();
    std::printf("second() = %d via a pointer to the middle of a Both\n", g_second->second()); //~^^^^^^^^[tcmalloc] MISS: the heap checker reports unreachable blocks only: a block still reachable at exit is not a leak to it
    leaklab_checkpoint(); //~^^^^^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (48 bytes in 1 block here), not at the size asked for
    return 0; // no delete g_second //~^^^^^^^^^^[asan] MISS: ASan's LeakSanitizer reports leaks only: a block still reachable at exit is not one
}
