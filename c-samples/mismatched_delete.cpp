//@ title: blocks released with the wrong function: new[] with delete, malloc with delete, new with free
//@ teaches: each allocator has its own release; glibc lets these slide for plain bytes, but with destructors or another allocator they corrupt the heap, and tools that check frees report them (valgrind's MismatchedFree)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "leaklab.h"

// Plain bytes and ints have no destructors and no array cookie, so glibc
// survives each mistake below: nothing leaks and nothing crashes, which is
// why only a tool that pairs every free with its allocation sees them.
static void array_with_delete()
{
    char *name = new char[32];
    std::strcpy(name, "new[] needs delete[]");
    std::puts(name);
    delete name; //~ BADFREE mismatched
} //~^[efence] MISS: Electric Fence does not check which function releases a block

static void malloc_with_delete()
{
    int *counts = static_cast<int *>(std::malloc(8 * sizeof(int)));
    for (int i = 0; i < 8; i++)
        counts[i] = i;
    std::printf("%d\n", counts[7]);
    delete counts; //~ BADFREE mismatched
} //~^[efence] MISS: Electric Fence does not check which function releases a block

static void new_with_free()
{
    long *total = new long(42);
    std::printf("%ld\n", *total);
    std::free(total); //~ BADFREE mismatched
} //~^[efence] MISS: Electric Fence does not check which function releases a block

int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    array_with_delete();
    malloc_with_delete();
    new_with_free();
    leaklab_checkpoint();
    return 0;
}
