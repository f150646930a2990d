//@ title: leaks through an xmalloc() wrapper called from two places
//@ teaches: the innermost frame is the wrapper, so one source line collects the leaks of all its callers; the callers are one frame further out
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "leaklab.h"

static void *xmalloc(size_t size)
{
    void *p = malloc(size); //~ LEAK definite size=40 count=3
    if (p == NULL) { //~^[jemalloc] MISS: jemalloc's profile counts each block at its size class (144 bytes in 3 blocks here), not at the size asked for
        fputs("out of memory\n", stderr);
        exit(1);
    }
    return p;
}

struct user {
    char name[32];
    long uid;
}; // 40 bytes

static struct user *load_user(const char *name, long uid)
{
    struct user *u = xmalloc(sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->uid = uid;
    return u;
}

static char *format_line(long n)
{
    char *line = xmalloc(40);
    snprintf(line, 40, "line %ld", n);
    return line;
}

// Caller one leaks twice, caller two once: two loss records, one site.
static void run(void)
{
    for (long uid = 1000; uid < 1002; uid++)
        printf("user %s\n", load_user("alice", uid)->name);
    printf("%s\n", format_line(7));
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    run();
    leaklab_checkpoint();
    return 0;
}
