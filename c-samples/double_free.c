//@ title: a cleanup path frees the same buffer twice
//@ teaches: a double free is a heap corruption, not a leak: glibc aborts on it ("free(): double free detected"), so only tools that intercept free let the program go on and say where both frees are
//@ backends: hook, valgrind, dmalloc, efence, asan, asan-clang
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
    r->len = 0;    // the bug: r->body is not set to NULL //~^[efence] MISS: Electric Fence merges a freed block's slot with its free neighbours, so the second free finds no block: it aborts with "address not from malloc()", an invalid free to it
} //~^^[efence] FALSE: the second free is reported as invalid, not double: Electric Fence's message for it is "address not from malloc()"

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
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
