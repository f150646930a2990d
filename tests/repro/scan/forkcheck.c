// The target of the fork-snapshot soak (tests/scan_fork.rs): it checks
// itself after every scan and says what it saw. `forkcheck FIFO [seccomp]`.
//
// - A sender thread sends SIGUSR2 (kill, to the process) and SIGRTMIN
//   (sigqueue, with a sequence number), one at a time, each only once the
//   previous one was handled: a signal that does not arrive within 10 s is
//   counted lost, one with the wrong sequence number counted wrong.
// - The main thread blocks in read() on FIFO (interrupted by every handler,
//   SA_RESTART) with SIGUSR1 blocked and errno set to a magic value; for each
//   'c' it reads it checks its mask, errno, its children (in
//   /proc/self/task/*/children exactly its live child and its zombie; and
//   waitpid(-1, WNOHANG|__WALL) reaps exactly that zombie, then a new zombie
//   is made) and prints "OK n" or "BAD what". 'q' prints the counts and exits.
// - A sleeper thread (all signals blocked) loops in nanosleep(20 ms): it must
//   never return early or with an error (the kernel restarts it after a stop).
// - Three blocks of 48 bytes are lost at the start, one is kept.
// With `seccomp`, a filter (all threads) kills the process on clone, clone3
// and fork, and the check only looks at the children (it cannot fork).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int got_usr2, got_rt, rt_expected, rt_wrong, sent_usr2, sent_rt, lost;
static char bad[256];
static pid_t live, zombie;
void *g_kept;

static void flag(const char *what) {
    if (!bad[0]) snprintf(bad, sizeof bad, "%s", what);
}

static void on_usr2(int sig) {
    (void)sig;
    int e = errno;
    __atomic_add_fetch(&got_usr2, 1, __ATOMIC_SEQ_CST);
    errno = e;
}

static void on_rt(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    int e = errno;
    if (si->si_value.sival_int != __atomic_load_n(&rt_expected, __ATOMIC_SEQ_CST)) __atomic_add_fetch(&rt_wrong, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&got_rt, 1, __ATOMIC_SEQ_CST);
    errno = e;
}

static void block_all(void) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
}

/* Waits until *counter passes `was`: 10 s, then the signal is lost. */
static void wait_past(int *counter, int was) {
    for (int i = 0; i < 200000 && __atomic_load_n(counter, __ATOMIC_SEQ_CST) == was; i++) {
        struct timespec d = {0, 50000};
        nanosleep(&d, NULL);
    }
    if (__atomic_load_n(counter, __ATOMIC_SEQ_CST) == was) __atomic_add_fetch(&lost, 1, __ATOMIC_SEQ_CST);
}

static void *sender(void *arg) {
    (void)arg;
    block_all();
    for (;;) {
        int was = __atomic_load_n(&got_usr2, __ATOMIC_SEQ_CST);
        kill(getpid(), SIGUSR2);
        __atomic_add_fetch(&sent_usr2, 1, __ATOMIC_SEQ_CST);
        wait_past(&got_usr2, was);
        was = __atomic_load_n(&got_rt, __ATOMIC_SEQ_CST);
        int seq = __atomic_add_fetch(&sent_rt, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&rt_expected, seq, __ATOMIC_SEQ_CST);
        sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = seq});
        wait_past(&got_rt, was);
    }
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    block_all();
    for (;;) {
        struct timespec a, b, d = {0, 20 * 1000 * 1000};
        errno = 777;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int r = nanosleep(&d, NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        long ns = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
        if (r != 0) {
            char m[64];
            snprintf(m, sizeof m, "nanosleep failed: errno %d", errno);
            flag(m);
        } else if (ns < 20 * 1000 * 1000) {
            flag("nanosleep returned early");
        } else if (errno != 777) {
            flag("errno changed in the sleeper");
        }
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

/* Every child of every thread of this process, sorted; the count. */
static int children(int *out, int cap) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(path, "r");
        int pid;
        while (f && n < cap && fscanf(f, "%d", &pid) == 1) out[n++] = pid;
        if (f) fclose(f);
    }
    if (d) closedir(d);
    qsort(out, n, sizeof *out, cmp);
    return n;
}

static char state_of(pid_t pid) {
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] ? p[2] : 0;
}

static void make_zombie(void) {
    zombie = fork();
    if (zombie == 0) _exit(0);
    while (state_of(zombie) != 'Z') {
        struct timespec d = {0, 100000};
        nanosleep(&d, NULL);
    }
}

static void check(int can_fork, const sigset_t *mask) {
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    for (int s = 1; s < SIGRTMAX; s++)
        if (sigismember(&now, s) != sigismember(mask, s)) flag("the main thread's signal mask changed");
    if (errno != 4242) flag("errno changed in the main thread");
    int kids[64];
    int n = children(kids, 64);
    int want[2] = {live < zombie ? live : zombie, live < zombie ? zombie : live};
    if (n != 2 || kids[0] != want[0] || kids[1] != want[1]) {
        char m[128];
        snprintf(m, sizeof m, "%d children in /proc/self/task/*/children (%d %d ...), not the live one and the zombie", n, n > 0 ? kids[0] : 0, n > 1 ? kids[1] : 0);
        flag(m);
    }
    if (can_fork) {
        int reaped = 0, st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG | __WALL)) > 0) {
            if (p != zombie) {
                char m[96];
                snprintf(m, sizeof m, "waitpid(-1, WNOHANG|__WALL) reaped %d, not the zombie %d", p, zombie);
                flag(m);
            }
            reaped++;
        }
        if (reaped != 1) flag("waitpid(-1, WNOHANG|__WALL) did not reap exactly the zombie");
        make_zombie();
    }
    errno = 4242;
}

static void no_clone(void) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fork, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog)) {
        perror("seccomp");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int sec = argc > 2 && !strcmp(argv[2], "seccomp");
    for (int i = 0; i < 3; i++) memset(malloc(48), 'F', 48);
    g_kept = malloc(48);
    memset(g_kept, 'K', 48);

    live = fork();
    if (live == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) pause();
    }
    make_zombie();

    struct sigaction sa = {0};
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
    struct sigaction rt = {0};
    rt.sa_sigaction = on_rt;
    rt.sa_flags = SA_RESTART | SA_SIGINFO;
    sigaction(SIGRTMIN, &rt, NULL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_SETMASK, &mask, NULL);

    pthread_t t1, t2;
    pthread_create(&t1, NULL, sender, NULL);
    pthread_create(&t2, NULL, sleeper, NULL);
    if (sec) no_clone();

    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    printf("READY %d\n", getpid());
    fflush(stdout);
    int checks = 0;
    errno = 4242;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0) {
            char m[64];
            snprintf(m, sizeof m, "read failed: errno %d", errno);
            flag(m);
            errno = 4242;
            continue;
        }
        if (r == 0 || c == 'q') break;
        check(!sec, &mask);
        checks++;
        if (bad[0]) printf("BAD %s\n", bad);
        else printf("OK %d\n", checks);
        fflush(stdout);
    }
    printf("DONE checks %d usr2 %d/%d rt %d/%d wrong %d lost %d\n", checks, __atomic_load_n(&got_usr2, __ATOMIC_SEQ_CST), sent_usr2,
           __atomic_load_n(&got_rt, __ATOMIC_SEQ_CST), sent_rt, rt_wrong, lost);
    fflush(stdout);
    kill(live, SIGKILL);
    return 0;
}
