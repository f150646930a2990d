//@ title: a std::vector<Widget*> cleared without deleting the Widgets
//@ teaches: containers of raw pointers own nothing: clear() and the vector's destructor free the array of pointers, not the pointees
#include <cstdio>
#include <vector>
#include "leaklab.h"

struct Widget {
    int id;
    char label[20];
    explicit Widget(int id) : id(id) { std::snprintf(label, sizeof label, "widget-%d", id); }
}; // 24 bytes

// The vector lives only in this function, so by the checkpoint its buffer
// (still holding stale copies of the pointers after clear()) is freed too.
static void build_and_reset()
{
    std::vector<Widget *> widgets;
    for (int i = 0; i < 5; i++)
        widgets.push_back(new Widget(i)); //~ LEAK definite size=24 count=5
    std::printf("%zu widgets, last is %s\n", widgets.size(), widgets.back()->label);
    widgets.clear(); // should have been: for (Widget *w : widgets) delete w;
}
//~^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (160 bytes in 5 blocks here), not at the size asked for
int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    build_and_reset();
    leaklab_checkpoint();
    return 0;
}
