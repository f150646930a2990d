//@ title: an array of strings freed without freeing the strings
//@ teaches: free() is shallow: releasing a container leaves its elements definitely lost (they were indirect while the array lived)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

static char **split_words(const char *text, int *count)
{
    char **words = malloc(8 * sizeof *words);
    int n = 0;
    const char *p = text;
    while (*p != '\0' && n < 8) {
        size_t len = strcspn(p, " ");
        words[n] = malloc(16); //~ LEAK definite size=16 count=4
        snprintf(words[n++], 16, "%.*s", (int)len, p);
        p += len;
        p += strspn(p, " ");
    }
    *count = n;
    return words;
}

static void print_words(void)
{
    int n;
    char **words = split_words("four words leak here", &n);
    for (int i = 0; i < n; i++)
        printf("[%s]", words[i]);
    printf("\n");
    free(words); // should first free(words[i]) for each i
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    print_words();
    leaklab_checkpoint();
    return 0;
}
