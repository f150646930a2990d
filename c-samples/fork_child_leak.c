//@ title: a forked child leaks two blocks and exits; the parent waits and leaks nothing
//@ teaches: after fork the child is a separate process with its own heap: its leaks end with it, and only a tool that follows children sees them
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "leaklab.h"

static void child_work(void)
{
    for (int i = 0; i < 2; i++) {
        char *msg = malloc(64); //~ LEAK definite size=64 count=2
        //~^[bcc] MISS: memleak -p traces one process; the leak happens in the forked child, which is another pid
        snprintf(msg, 64, "child %d, message %d", (int)getpid(), i); //~^^[heaptrack] MISS: heaptrack stops recording in a forked child: the child's blocks are never seen
        puts(msg); //~^^^[tcmalloc] MISS: gperftools' heap checker checks only the process it started in: a forked child is never checked (the report lists it as not analysed)
    }
}

int main(void) //~[dmalloc] FALSE: under dmalloc no block has a stack: the runtime's own (stdout's buffer, libstdc++'s emergency pool, a thread's TLS) are reported with the program's, and blocks that match no annotation's shape stay unexplained by line
{
    fflush(stdout); // nothing buffered may be printed twice
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        child_work();
        exit(0); // the child never reaches the checkpoint below
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child exited with %d\n", WEXITSTATUS(status));
    // A live inspector stopped here sees only the parent: the child and
    // its leak are already gone.
    leaklab_checkpoint();
    return 0;
}
