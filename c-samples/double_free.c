//@ title: a cleanup path frees the same buffer twice
//@ teaches: a double free is a heap corruption, not a leak: glibc aborts on it ("free(): double free detected"), so only tools that intercept free let the program go on and say where both frees are
//@ backends: hook, valgrind, asan
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

struct request {
    char *body;
    size_t len;
};

static void request_done(struct request *r)
{
    free(r->body); //~ BADFREE double
    r->len = 0;    // the bug: r->body is not set to NULL
}

int main(void)
{
    struct request r;
    r.body = malloc(32);
    strcpy(r.body, "GET / HTTP/1.0");
    r.len = strlen(r.body);
    printf("%zu bytes\n", r.len);
    request_done(&r);
    request_done(&r); // an error path calls it again
    leaklab_checkpoint();
    return 0;
}
