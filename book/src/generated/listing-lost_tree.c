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
    n->key = key;
    n->left = n->right = NULL;
    return n;
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

int main(void)
{
    use_tree();
    leaklab_checkpoint();
    return 0;
}
