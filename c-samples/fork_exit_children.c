//@ title: three forked children each leak and leave with _exit, the parent waits
//@ teaches: every process has its own leaks; _exit skips atexit handlers and destructors, so a detector that reports from one must still see the child's memory
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "leaklab.h"

static void leak_one(void)
{
    char *p = malloc(48); //~ LEAK definite size=48 count=6
    memset(p, 'c', 48); //~^[debug-new] MISS: debug_new reports from a destructor that exit() runs and _exit() skips: the children never report
    //~^^[lsan] MISS: LeakSanitizer checks only in exit(): a child that leaves with _exit() is never checked (the report lists it as not analysed)
} //~^^^[bcc] MISS: memleak traces the one pid it attached to; forked children's allocations are not recorded
//~^^^^[heaptrack] MISS: the children are forked, and heaptrack stops recording in a forked child
static void child_work(int k) //~^^^^^[mtrace] MISS: the children leave with _exit, which does not flush their buffered mtrace log: they are listed as not analysed
{ //~^^^^^^[dmalloc] MISS: the children leave with _exit, which skips dmalloc's check at exit: they are listed as not analysed
    for (int i = 0; i <= k; i++) //~^^^^^^^[tcmalloc] MISS: gperftools' heap checker checks only the process it started in: a forked child is never checked (the report lists it as not analysed)
        leak_one(); //~^^^^^^^^[jemalloc] MISS: jemalloc writes its final profile in exit(): a child that leaves with _exit() never writes one (the report lists it as not analysed)
    _exit(0); //~^^^^^^^^^[asan] MISS: ASan's LeakSanitizer checks only in exit(): a child that leaves with _exit() is never checked (the report lists it as not analysed)
} //~^^^^^^^^^^[lsan-clang] MISS: LeakSanitizer checks only in exit(): a child that leaves with _exit() is never checked (the report lists it as not analysed)
//~^^^^^^^^^^^[asan-clang] MISS: ASan's LeakSanitizer checks only in exit(): a child that leaves with _exit() is never checked (the report lists it as not analysed)
int main(void)
{
    for (int k = 0; k < 3; k++) {
        pid_t pid = fork();
        if (pid == 0)
            child_work(k);
        waitpid(pid, NULL, 0);
    }
    char *mine = malloc(80); //~ LEAK definite size=80 count=1
    memset(mine, 'p', 80);
    mine = NULL;
    leaklab_checkpoint();
    return 0;
}
