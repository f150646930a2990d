/* A program a user brings: a leak in a helper, a block a global keeps, a
 * forked child that leaks and exits, and one that leaves with _exit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *kept;

static char *make_name(const char *who)
{
    char *s = malloc(48);
    snprintf(s, 48, "name of %s", who);
    return s;
}

int main(int argc, char **argv)
{
    int children = argc > 1 && strcmp(argv[1], "fork") == 0;
    kept = strdup("kept by a global");
    char *lost = make_name("parent");
    printf("%s\n", lost);
    lost = NULL;
    if (children) {
        pid_t a = fork();
        if (a == 0) {
            char *c = malloc(200);
            memset(c, 'c', 200);
            c = NULL;
            exit(0);
        }
        waitpid(a, NULL, 0);
        pid_t b = fork();
        if (b == 0) {
            char *c = malloc(300);
            memset(c, 'd', 300);
            _exit(0);
        }
        waitpid(b, NULL, 0);
    }
    return 0;
}
