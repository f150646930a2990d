/* Preloaded by the efence backend (harness/backends/efence.rs): Electric
 * Fence's finding is a crash (SIGSEGV on a guard page at the bad access,
 * SIGILL from its abort on a bad free), and the crash's stack says where.
 * On a deadly signal this writes, to $LEAKLAB_CRASH_STACK.PID,
 *   signal N ADDR W     the signal, the faulting address (si_addr) and, for
 *                       SIGSEGV, whether the access was a write (1) or not
 *   pc HEX              one line per return address, innermost first
 *   maps                then /proc/self/maps, to symbolize them
 * and then dies of the signal. backtrace() is warmed up in the constructor:
 * its first call loads libgcc_s, which must not happen in the handler. */
#define _GNU_SOURCE
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

static char base[PATH_MAX];

static void on_crash(int sig, siginfo_t *info, void *context)
{
    char path[PATH_MAX + 32], line[64];
    snprintf(path, sizeof path, "%s.%ld", base, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        void *pcs[128];
        int n = backtrace(pcs, 128);
        /* The page fault's error code: bit 1 is set for a write. */
        ucontext_t *uc = context;
        int write_access = sig == SIGSEGV && uc && (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
        int len = snprintf(line, sizeof line, "signal %d %lx %d\n", sig, (unsigned long)info->si_addr, write_access);
        ssize_t unused = write(fd, line, (size_t)len);
        for (int i = 0; i < n; i++) {
            len = snprintf(line, sizeof line, "pc %lx\n", (unsigned long)pcs[i]);
            unused = write(fd, line, (size_t)len);
        }
        unused = write(fd, "maps\n", 5);
        int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
        char buf[4096];
        ssize_t got;
        while (maps >= 0 && (got = read(maps, buf, sizeof buf)) > 0)
            unused = write(fd, buf, (size_t)got);
        (void)unused;
        if (maps >= 0)
            close(maps);
        close(fd);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

__attribute__((constructor)) static void leaklab_crash_stack_start(void)
{
    const char *b = getenv("LEAKLAB_CRASH_STACK");
    if (!b || strlen(b) >= sizeof base)
        return;
    strcpy(base, b);
    void *warm[2];
    backtrace(warm, 2);
    static const int deadly[] = { SIGSEGV, SIGBUS, SIGILL, SIGABRT, SIGFPE };
    for (size_t i = 0; i < sizeof deadly / sizeof deadly[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_crash;
        sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
        sigaction(deadly[i], &sa, NULL);
    }
}
