/* server.c: a toy request loop, lab 05's program. It handles requests made up
 * from a fixed list; one of its functions leaks on one path. Find which, with
 * bcc's memleak on the running process:
 *     cc -g -fno-omit-frame-pointer -I../../c-samples server.c -o server
 *     ./server 0 &                       # 0: serve forever
 *     sudo memleak-bpfcc -p $! 5        # outstanding allocations every 5 s
 * Do not edit it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "leaklab.h"

struct session {
    char user[32];
    long requests;
};

static const char *const PATHS[] = {"/", "/stock", "/stock/bolts", "/login?user=ada", "/report", "/login?user=bob", "/stock/nuts"};
#define NPATHS (sizeof PATHS / sizeof PATHS[0])

static char *route_table;

static void build_routes(void)
{
    route_table = malloc(4096);
    if (route_table == NULL)
        exit(1);
    snprintf(route_table, 4096, "/ /stock /report /login");
}

static char *read_request(long n)
{
    char *buf = malloc(256);
    if (buf == NULL)
        exit(1);
    snprintf(buf, 256, "GET %s HTTP/1.0", PATHS[n % NPATHS]);
    return buf;
}

static char *copy_path(const char *request)
{
    const char *start = strchr(request, ' ') + 1;
    const char *end = strchr(start, ' ');
    return strndup(start, (size_t)(end - start));
}

static int login(const char *path, struct session **current)
{
    const char *user = strstr(path, "user=");
    if (user == NULL)
        return 400;
    struct session *s = calloc(1, sizeof *s);
    if (s == NULL)
        exit(1);
    snprintf(s->user, sizeof s->user, "%s", user + 5);
    *current = s;
    return 200;
}

static int handle(const char *request, struct session **current)
{
    char *path = copy_path(request);
    int status = 404;
    if (strncmp(path, "/login", 6) == 0)
        status = login(path, current);
    else if (strstr(route_table, path) != NULL || strncmp(path, "/stock/", 7) == 0)
        status = 200;
    if (*current != NULL)
        (*current)->requests++;
    free(path);
    return status;
}

int main(int argc, char **argv)
{
    long n = leaklab_iterations(argc, argv, 70);
    struct session *current = NULL;
    long ok = 0;
    build_routes();
    for (long i = 0; n == 0 || i < n; i++) {
        char *request = read_request(i);
        if (handle(request, &current) == 200)
            ok++;
        free(request);
        if (n == 0)
            usleep(20000);
    }
    printf("%ld requests, %ld ok, last user %s\n", n, ok, current ? current->user : "-");
    free(current);
    leaklab_checkpoint();
    return 0;
}
