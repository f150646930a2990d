/* mystery.c: a word-frequency counter that leaks in several ways.
 * Lab 07: write the LEAK annotation of every leak valgrind finds (the
 * grammar is in c-samples/README.md). Change nothing but comments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct word {
    char *text;
    int count;
    struct word *left, *right;
};

static const char *const TEXT[] = {"the", "cat", "sat", "saw", "the", "mat", "and", "the", "dog", "sat", "too"};
#define NTEXT (sizeof TEXT / sizeof TEXT[0])

/* Kept for the whole run: the program prints it again at the end. */
static char *title;
/* Where the next free slot of the stop-word table is. */
static const char **stop_cursor;

static struct word *insert(struct word *tree, const char *text)
{
    if (tree == NULL) {
        struct word *w = calloc(1, sizeof *w);  //~ LEAK definite size=32
        //~^ LEAK indirect size=32 count=7
        w->text = strdup(text);  //~ LEAK indirect size=4 count=8
        w->count = 1;
        return w;
    }
    int c = strcmp(text, tree->text);
    if (c == 0)
        tree->count++;
    else if (c < 0)
        tree->left = insert(tree->left, text);
    else
        tree->right = insert(tree->right, text);
    return tree;
}

static void print_tree(const struct word *tree)
{
    if (tree == NULL)
        return;
    print_tree(tree->left);
    printf("%-4s %d\n", tree->text, tree->count);
    print_tree(tree->right);
}

static char *shout(const char *s)
{
    char *loud = malloc(strlen(s) + 2);  //~ LEAK definite size=8 count=3
    size_t i;
    for (i = 0; s[i] != '\0'; i++)
        loud[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    loud[i] = '!';
    loud[i + 1] = '\0';
    return loud;
}

int main(void)
{
    title = strdup("word counts");  //~ LEAK reachable size=16
    const char **stop_words = malloc(4 * sizeof *stop_words);  //~ LEAK possible size=32
    stop_words[0] = "the";
    stop_cursor = stop_words + 1;

    struct word *tree = NULL;
    for (size_t i = 0; i < NTEXT; i++)
        tree = insert(tree, TEXT[i]);
    print_tree(tree);

    for (size_t i = 0; i < 3; i++) {
        char *loud = shout(TEXT[i]);
        printf("%s ", loud);
    }
    char *last = shout("end");
    printf("%s\n", last);
    free(last);

    printf("%s (%d stop word)\n", title, (int)(stop_cursor - stop_words));
    tree = NULL;
    return 0;
}
