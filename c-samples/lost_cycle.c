//@ title: a ring of three nodes pointing at each other, all lost together
//@ teaches: reference cycles do not fool a tracing detector; memcheck calls one node of the ring definitely lost (the lowest address) and the others indirectly lost
#include <stdio.h>
#include <stdlib.h>
#include "leaklab.h"

struct node {
    struct node *next;
    long value;
};

static struct node *new_node(long value)
{
    struct node *n = malloc(sizeof *n); //~ LEAK definite size=16 count=1
    //~^ LEAK indirect size=16 count=2
    //~^^[lsan] MISS: every block of a cycle is pointed to by another lost block, so LSan calls them all indirect and none direct
    n->next = NULL; //~^^^[dmalloc] MISS: dmalloc has neither kinds nor stacks: blocks of one size are one shape, so the indirect blocks are counted with the definite one
    n->value = value; //~^^^^[asan] MISS: every block of a cycle is pointed to by another lost block, so ASan's LeakSanitizer calls them all indirect and none direct
    return n; //~^^^^^[lsan-clang] MISS: every block of a cycle is pointed to by another lost block, so LSan calls them all indirect and none direct
} //~^^^^^^[asan-clang] MISS: every block of a cycle is pointed to by another lost block, so ASan's LeakSanitizer calls them all indirect and none direct

// Every node is pointed to, but nothing outside the ring points in.
// All three come from one line, so the split above does not depend on
// which node ends up at the lowest address.
static void make_ring(void)
{
    struct node *a = new_node(1), *b = new_node(2), *c = new_node(3);
    a->next = b;
    b->next = c;
    c->next = a;
    printf("ring: %ld -> %ld -> %ld -> %ld\n", a->value, a->next->value,
           a->next->next->value, a->next->next->next->value);
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    make_ring();
    leaklab_checkpoint();
    return 0;
}
