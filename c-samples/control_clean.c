//@ title: control: allocates, uses and frees everything (malloc, calloc, realloc, strdup)
//@ teaches: the baseline every detector must stay silent on
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

struct item {
    struct item *next;
    char *name;
};

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    struct item *head = NULL;
    for (int i = 0; i < 5; i++) {
        struct item *it = calloc(1, sizeof *it);
        it->name = strdup(i % 2 ? "odd" : "even");
        it->next = head;
        head = it;
    }
    char *buf = malloc(16);
    buf = realloc(buf, 1024); // (a real program keeps the old pointer until realloc succeeds)
    buf[0] = '\0';
    for (struct item *it = head; it != NULL; it = it->next)
        strcat(buf, it->name);
    printf("%s\n", buf);

    free(buf);
    while (head != NULL) {
        struct item *next = head->next;
        free(head->name);
        free(head);
        head = next;
    }
    leaklab_checkpoint();
    return 0;
}
