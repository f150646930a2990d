//@ title: an early return on an error path skips the free
//@ teaches: the most common C leak: every exit from a function must release what it took; goto-cleanup or a single exit fixes it
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

// Returns the number of digits in `s`, or -1 if it holds anything else.
static int count_digits(const char *s)
{
    size_t len = strlen(s);
    char *copy = malloc(len + 1); //~ LEAK definite size=8 count=2
    memcpy(copy, s, len + 1);
    int digits = 0;
    for (char *c = copy; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return -1; // error path: copy is never freed
        digits++;
    }
    free(copy);
    return digits;
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    // Inputs of 7 chars each: the two bad ones leak 8 bytes apiece.
    const char *inputs[] = {"1234567", "12a4567", "7654321", "x234567"};
    for (int i = 0; i < 4; i++)
        printf("%s: %d\n", inputs[i], count_digits(inputs[i]));
    leaklab_checkpoint();
    return 0;
}
