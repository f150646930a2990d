//@ title: a binary tree of 7 nodes whose root pointer is dropped
//@ teaches: definite vs indirect: only the root is definitely lost; the nodes it points to are indirectly lost, and freeing the root's subtree fixes both
#include <stdio.h>
#include <stdlib.h>
#include "leaklab.h"

struct node {
    int key;
    struct node *left, *right;
}; // 24 bytes on LP64: int, padding, two pointers

static struct node *new_node(int key)
{
    struct node *n = malloc(sizeof *n); //~ LEAK definite size=24 count=1
    //~^ LEAK indirect size=24 count=6
    n->key = key; //~^^[dmalloc] MISS: dmalloc has neither kinds nor stacks: blocks of one size are one shape, so the indirect blocks are counted with the definite one
    n->left = n->right = NULL; //~^^^[jemalloc] MISS: jemalloc's profile counts each block at its size class (224 bytes in 7 blocks here), not at the size asked for
    return n; //~^^^^[tcmalloc] MISS: the heap checker counts 1 of the 7 nodes as live at exit (it reports 6): a root it scans still holds its address (the same on every run with a fixed layout)
}

// A complete tree of the given depth, keys in order.
static struct node *build(int depth, int *next)
{
    if (depth == 0)
        return NULL;
    struct node *left = build(depth - 1, next);
    struct node *n = new_node((*next)++);
    n->left = left;
    n->right = build(depth - 1, next);
    return n;
}

static int sum(const struct node *n)
{
    return n ? n->key + sum(n->left) + sum(n->right) : 0;
}

// The tree is used, then forgotten: no free_tree() call.
static void use_tree(void)
{
    int next = 1;
    struct node *root = build(3, &next);
    printf("sum of keys: %d\n", sum(root));
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    use_tree();
    leaklab_checkpoint();
    return 0;
}
