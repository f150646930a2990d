/* Preloaded after LeakSanitizer's runtime by the lsan backend
 * (harness/backends/lsan.rs), into a program of the user's and into the
 * catalogue's -fsanitize=leak builds alike.
 *
 * 1. It initialises LSan before main. gcc's liblsan.so initialises itself
 *    lazily, from its malloc interceptors (a -fsanitize=leak program calls
 *    __lsan_init from .preinit_array, through liblsan_preinit.o). Until
 *    then its interceptors' pointers to the real functions are NULL, and its
 *    `signal` interceptor jumps through one without a check: a program that
 *    calls signal() before its first malloc (git, any daemon) jumps to
 *    address 0.
 * 2. It records how each process of the run ends, so the harness can tell a
 *    process LSan checked from one it never saw (LSan checks only in
 *    exit(); nothing after _exit, exec, or a kill). One file per process,
 *    $LEAKLAB_LSAN_PROCS.PID, one line per event:
 *      start PPID NAME   an image began (NAME: \xNN-escaped file name)
 *      fork PPID         a forked child began
 *      exit STATUS       exit() ran; LSan's own check runs around it
 *      signal N          a deadly signal; LSan checked first (see 3)
 *      after             the check of --after ran (see 4)
 * 3. On a deadly signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP)
 *    it runs LSan's leak check first, as memcheck does, then hands the
 *    signal to LSan's own handler (which prints its report and exits) or,
 *    when LSan has none for it, dies of it. A handler the program installs
 *    later replaces this one, as it would replace LSan's.
 * 4. With $LEAKLAB_LSAN_AFTER_MS, a thread checks after that many
 *    milliseconds: LSan can only check a live process from inside it.
 * 5. In the llvm-symbolizer that clang's runtime starts
 *    ($LEAKLAB_LSAN_SYMBOLIZER) it does nothing.
 *
 * Everything after start-up runs in signal handlers or at exit, so it uses
 * only async-signal-safe calls (open, write, getpid). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* Weak: a runtime linked statically into the program (clang) exports them
 * from the executable; without them this file does nothing. */
extern void __lsan_init(void) __attribute__((weak));
extern void __lsan_do_leak_check(void) __attribute__((weak));

static char procs[4096];
static const int deadly[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP };
static struct sigaction previous[65];
static volatile sig_atomic_t crashed;

static size_t put_text(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at + 1 < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_number(char *buf, size_t at, size_t cap, long n)
{
    char digits[24];
    int len = 0;
    unsigned long u = n < 0 ? -(unsigned long)n : (unsigned long)n;
    do {
        digits[len++] = (char)('0' + u % 10);
        u /= 10;
    } while (u && len < 23);
    if (n < 0 && at + 1 < cap)
        buf[at++] = '-';
    while (len && at + 1 < cap)
        buf[at++] = digits[--len];
    return at;
}

/* Appends one line to this process's file. */
static void record(const char *line, size_t len)
{
    char path[sizeof procs + 24];
    if (!procs[0])
        return;
    size_t at = put_text(path, 0, sizeof path, procs);
    at = put_text(path, at, sizeof path, ".");
    at = put_number(path, at, sizeof path, (long)getpid());
    path[at] = 0;
    int saved = errno;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ssize_t unused = write(fd, line, len);
        (void)unused;
        close(fd);
    }
    errno = saved;
}

static void record_event(const char *word, long n, int with_number)
{
    char line[64];
    size_t at = put_text(line, 0, sizeof line, word);
    if (with_number) {
        at = put_text(line, at, sizeof line, " ");
        at = put_number(line, at, sizeof line, n);
    }
    line[at++] = '\n';
    record(line, at);
}

static void check_now(void)
{
    if (__lsan_do_leak_check)
        __lsan_do_leak_check();
}

static void at_exit(int status, void *unused)
{
    (void)unused;
    record_event("exit", status, 1);
}

/* The kernel saved the vector registers in the signal frame, on the stack
 * the check scans; LSan's own roots are the general registers only (what
 * PTRACE_GETREGS gives at exit), and SIMD code in libc leaves copies of
 * pointers there that would pass for live ones. The process is about to
 * die, so its saved vector state is wiped rather than restored. */
static void wipe_vector_registers(void *context)
{
    ucontext_t *uc = context;
    if (!uc || !uc->uc_mcontext.fpregs)
        return;
    unsigned char *area = (unsigned char *)uc->uc_mcontext.fpregs;
    memset(uc->uc_mcontext.fpregs->_xmm, 0, sizeof uc->uc_mcontext.fpregs->_xmm);
    /* The xsave extension (upper halves of YMM/ZMM, ...) follows the 512
     * bytes of legacy state and the 64-byte header, when the kernel's magic
     * words say it is there. */
    uint32_t magic1, xstate_size;
    memcpy(&magic1, area + 464, 4);
    memcpy(&xstate_size, area + 464 + 16, 4);
    if (magic1 == 0x46505853U /* FP_XSTATE_MAGIC1 */ && xstate_size > 576 && xstate_size < 65536)
        memset(area + 576, 0, xstate_size - 576);
}

/* Below the crash lie the dead frames of the calls it made (malloc's among
 * them, with the block's address), and the check's own frames leave most
 * of their slots unwritten: zeroed first, they cannot pass for roots. 32 KiB
 * covers the check's frames (its work runs on a thread of its own). */
__attribute__((noinline)) static void scrub_dead_stack(void)
{
    volatile unsigned char pad[32 * 1024];
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = 0;
}

/* The check, before the signal goes on. Not inlined: the handler's own
 * frame then holds only the interrupted registers it saves, not unwritten
 * slots with stale words in them. */
__attribute__((noinline)) static void check_at_crash(int sig, void *context)
{
    wipe_vector_registers(context);
    scrub_dead_stack();
    check_now();
    record_event("signal", sig, 1);
}

/* To LSan's handler (it prints its report and exits), or death by the signal. */
__attribute__((noinline)) static void pass_on(int sig, siginfo_t *info, void *context)
{
    struct sigaction *old = &previous[sig];
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, info, context);
    } else if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig);
}

static void on_deadly_signal(int sig, siginfo_t *info, void *context)
{
    if (!crashed) {
        crashed = 1;
        check_at_crash(sig, context);
    }
    pass_on(sig, info, context);
}

static void on_fork_child(void)
{
    crashed = 0;
    record_event("fork", (long)getppid(), 1);
}

static void *check_after(void *arg)
{
    long ms = (long)arg;
    struct timespec left = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
    check_now();
    record_event("after", 0, 0);
    return NULL;
}

/* `start PPID NAME` with the program's file name escaped (a name may hold a
 * newline or an escape sequence). */
static void record_start(void)
{
    char exe[4096], line[4096 + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    const char *name = strrchr(exe, '/');
    name = name ? name + 1 : exe;
    size_t at = put_text(line, 0, sizeof line, "start ");
    at = put_number(line, at, sizeof line, (long)getppid());
    at = put_text(line, at, sizeof line, " ");
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)name; *p && at + 6 < sizeof line; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            line[at++] = '\\';
            line[at++] = 'x';
            line[at++] = hex[*p >> 4];
            line[at++] = hex[*p & 15];
        } else {
            line[at++] = (char)*p;
        }
    }
    line[at++] = '\n';
    record(line, at);
}

/* Whether this process is the llvm-symbolizer a runtime linked into the
 * program (clang's) started to name its frames: a tool's helper, not a
 * process of the run, so it gets no file. */
static int is_symbolizer(void)
{
    const char *helper = getenv("LEAKLAB_LSAN_SYMBOLIZER");
    char exe[4096];
    if (!helper || !*helper)
        return 0;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = 0;
    return strcmp(exe, helper) == 0;
}

__attribute__((constructor)) static void leaklab_lsan_start(void)
{
    if (is_symbolizer())
        return;
    const char *p = getenv("LEAKLAB_LSAN_PROCS");
    if (p && strlen(p) < sizeof procs)
        strcpy(procs, p);
    record_start();
    /* Registered before LSan registers its own at-exit check (in
     * __lsan_init, when it has not run yet), so it runs after that check. */
    on_exit(at_exit, NULL);
    pthread_atfork(NULL, NULL, on_fork_child);
    if (__lsan_init)
        __lsan_init();

    for (size_t i = 0; i < sizeof deadly / sizeof deadly[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_deadly_signal;
        /* Not on an alternate stack: LSan scans a thread whose stack pointer
         * is off its stack from the stack's very bottom, dead frames and
         * all, and their stale pointers hide the leaks. On the thread's
         * stack the check sees the live frames and the crash's registers
         * (the kernel's signal frame) only. A stack overflow then cannot be
         * handled and kills the process unchecked. */
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigfillset(&sa.sa_mask);
        sigaction(deadly[i], &sa, &previous[deadly[i]]);
    }

    const char *after = getenv("LEAKLAB_LSAN_AFTER_MS");
    if (after && *after) {
        long ms = strtol(after, NULL, 10);
        sigset_t all, old;
        sigfillset(&all);
        /* The thread takes no signal meant for the program. */
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t thread;
        if (pthread_create(&thread, NULL, check_after, (void *)ms) == 0)
            pthread_detach(thread);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
}
