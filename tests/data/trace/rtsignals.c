// rtsignals N: a child queues N realtime signals to its parent (SIGRTMIN,
// SIGRTMIN+1, SIGRTMIN+2, each with a sequence number), retrying while the queue is full,
// then writes N to a pipe. The parent counts what its handler saw and exits
// 0 when every signal arrived, 1 otherwise ("sent S received R").
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t received;

static void on_signal(int sig, siginfo_t *info, void *ctx)
{
    (void)sig, (void)info, (void)ctx;
    received++;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 3000;
    struct sigaction sa = { .sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset(&sa.sa_mask);
    int sigs[3] = { SIGRTMIN, SIGRTMIN + 1, SIGRTMIN + 2 };
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, NULL);
    int fd[2];
    if (pipe(fd) < 0)
        return 2;
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        long sent = 0;
        for (long i = 0; i < n; i++) {
            int sig = sigs[i % 3];
            union sigval v = { .sival_int = (int)i };
            while (sigqueue(parent, sig, v) < 0) {
                if (errno != EAGAIN)
                    _exit(3);
                usleep(100);
            }
            sent++;
        }
        if (write(fd[1], &sent, sizeof sent) != sizeof sent)
            _exit(4);
        _exit(0);
    }
    long sent = 0;
    while (read(fd[0], &sent, sizeof sent) < 0 && errno == EINTR)
        ;
    waitpid(child, NULL, 0);
    // The last queued signals may still be on their way: wait a little for them.
    for (int i = 0; i < 2000 && received < sent; i++)
        usleep(1000);
    printf("sent %ld received %ld\n", sent, (long)received);
    return received == sent ? 0 : 1;
}
