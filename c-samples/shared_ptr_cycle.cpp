//@ title: two objects holding std::shared_ptr to each other
//@ teaches: reference counting cannot free a cycle; std::weak_ptr for the back edge breaks it. Each make_shared block holds the control block and the object together
#include <cstdio>
#include <memory>
#include <string>
#include "leaklab.h"

struct Peer {
    int id;
    std::shared_ptr<Peer> other; // should be std::weak_ptr<Peer>
    explicit Peer(int id) : id(id) {}
};

// One allocation per Peer: make_shared puts the count block (16 bytes
// after the vtable and counters) and the Peer (24 bytes) in one block.
// Both Peers come from this line, so it gets one definite and one indirect
// whichever of the two lands lower in memory.
static std::shared_ptr<Peer> make_peer(int id)
{
    return std::make_shared<Peer>(id); //~ LEAK definite size=40 count=1
    //~^ LEAK indirect size=40 count=1
    //~^^[lsan] MISS: every block of a cycle is pointed to by another lost block, so LSan calls them all indirect and none direct
    //~^^^[debug-new] MISS: make_shared allocates inside libstdc++'s templates through the plain operator new, which carries no __FILE__/__LINE__
} //~^^^^[dmalloc] MISS: dmalloc has neither kinds nor stacks: blocks of one size are one shape, so the indirect blocks are counted with the definite one
//~^^^^^[mtrace] MISS: mtrace logs one caller, the malloc call inside libstdc++'s operator new, not the new-expression's line
static void pair_up() //~^^^^^^[lsan-clang] MISS: every block of a cycle is pointed to by another lost block, so LSan calls them all indirect and none direct
{ //~^^^^^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (96 bytes in 2 blocks here), not at the size asked for
    std::shared_ptr<Peer> a = make_peer(1), b = make_peer(2); //~^^^^^^^^[asan] MISS: every block of a cycle is pointed to by another lost block, so ASan's LeakSanitizer calls them all indirect and none direct
    a->other = b; //~^^^^^^^^^[asan-clang] MISS: every block of a cycle is pointed to by another lost block, so ASan's LeakSanitizer calls them all indirect and none direct
    b->other = a;
    std::printf("a: %ld refs, b: %ld refs\n", a.use_count(), b.use_count());
} // a and b drop to 1 ref each, never to 0

int main() //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    pair_up();
    leaklab_checkpoint();
    return 0;
}
