//@ title: a new[] whose delete[] is skipped when an exception unwinds past it
//@ teaches: exceptions turn every raw new into a leak waiting for a throw; RAII (unique_ptr, vector) is the fix
#include <cstdio>
#include <stdexcept>
#include "leaklab.h"

static void check(int value)
{
    if (value % 3 == 0)
        throw std::runtime_error("multiple of three");
}

// Owns its scratch buffer with a raw pointer: when check() throws, the
// unwinder leaves this frame and delete[] never runs.
static int process(int value)
{
    int *scratch = new int[64]; //~ LEAK definite size=256 count=2
    scratch[0] = value;
    check(value);
    int result = scratch[0] * 2;
    delete[] scratch;
    return result;
}

int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    for (int v = 1; v <= 6; v++) {
        try {
            printf("%d -> %d\n", v, process(v));
        } catch (const std::exception &e) {
            printf("%d -> error: %s\n", v, e.what());
        }
    }
    leaklab_checkpoint();
    return 0;
}
