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
    // (bcc's walk skips the frame that called new; leaklab finds it in the code: harness/backends/bcc/recover.rs)
}

int main()
{
    make_object();
    std::printf("second() = %d via a pointer to the middle of a Both\n", g_second->second());
    leaklab_checkpoint();
    return 0; // no delete g_second
}
