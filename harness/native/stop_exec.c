/* stop_exec PROGRAM ARGS...: stops itself with SIGSTOP, and once continued
 * execs PROGRAM. The harness runs a target through it when a tracer (bcc's
 * memleak) must attach to the pid before the program runs: Rust's spawn
 * cannot stop before exec (it blocks until the exec happens), and a shell
 * would call malloc between the stop and the exec, which the tracer records.
 * Nothing here allocates: raise and execvp work on the stack. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: stop_exec PROGRAM [ARGS...]\n", stderr);
        return 2;
    }
    raise(SIGSTOP);
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
