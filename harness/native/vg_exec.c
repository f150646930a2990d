/* The valgrind backend's LD_PRELOAD shim (harness/backends/valgrind.rs).
 *
 * memcheck checks a process's leaks when it exits, never when it replaces
 * its image with execve: the old image's leaks vanish with it. This shim
 * wraps the exec family. When the process calling exec is the one its image
 * started in (not a fork child, whose memory is a copy of its parent's),
 * it asks memcheck for a full leak check first. Before any exec it prints a
 * marker into valgrind's log, and it gives the new image the next image
 * number (LEAKLAB_VG_IMAGE), so that valgrind names the new image's log
 * after it instead of truncating the old one. It also turns
 * execve("/proc/self/exe") into the program's real path: under valgrind
 * /proc/self/exe is valgrind's own tool binary.
 *
 * Log lines (valgrind prefixes them with **PID**):
 *   leaklab-exec-check PROGRAM   a leak check of this image follows
 *   leaklab-exec PROGRAM         this image execs PROGRAM (no check: a fork child)
 *   leaklab-exec-failed ERRNO    the exec failed; the image goes on
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <valgrind/memcheck.h>

#define IMAGE_VAR "LEAKLAB_VG_IMAGE"

extern char **environ;

/* The pid this image started in. */
static pid_t image_pid;

__attribute__((constructor)) static void started(void) { image_pid = getpid(); }

typedef int (*execve_fn)(const char *, char *const[], char *const[]);

/* envp with IMAGE_VAR replaced by the next image number (a static copy:
 * the exec either replaces the process or fails, and then it is freed). */
static char **next_env(char *const envp[], char ***owned) {
    const char *cur = getenv(IMAGE_VAR);
    long n = cur ? strtol(cur, NULL, 10) : 0;
    size_t count = 0;
    while (envp && envp[count]) count++;
    char **env = calloc(count + 2, sizeof *env);
    if (!env) return (char **)envp;
    static char entry[64];
    snprintf(entry, sizeof entry, IMAGE_VAR "=%ld", n + 1);
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        if (strncmp(envp[i], IMAGE_VAR "=", sizeof IMAGE_VAR) != 0) env[k++] = envp[i];
    env[k++] = entry;
    env[k] = NULL;
    *owned = env;
    return env;
}

static int do_exec(const char *path, char *const argv[], char *const envp[]) {
    static execve_fn real_execve;
    if (!real_execve) real_execve = (execve_fn)dlsym(RTLD_NEXT, "execve");
    char self[PATH_MAX];
    if (path && strcmp(path, "/proc/self/exe") == 0) {
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len > 0) {
            self[len] = '\0';
            path = self;
        }
    }
    if (getpid() == image_pid) {
        VALGRIND_PRINTF("leaklab-exec-check %s\n", path ? path : "?");
        VALGRIND_DO_LEAK_CHECK;
    } else {
        VALGRIND_PRINTF("leaklab-exec %s\n", path ? path : "?");
    }
    char **owned = NULL;
    char **env = next_env(envp, &owned);
    int r = real_execve(path, argv, env);
    int saved = errno;
    free(owned);
    VALGRIND_PRINTF("leaklab-exec-failed %d\n", saved);
    errno = saved;
    return r;
}

__attribute__((visibility("default"))) int execve(const char *path, char *const argv[], char *const envp[]) {
    return do_exec(path, argv, envp);
}

__attribute__((visibility("default"))) int execv(const char *path, char *const argv[]) {
    return do_exec(path, argv, environ);
}

/* The PATH search of execvp, done here so that the exec goes through do_exec. */
static int search_exec(const char *file, char *const argv[], char *const envp[]) {
    if (!file || !*file) {
        errno = ENOENT;
        return -1;
    }
    if (strchr(file, '/')) return do_exec(file, argv, envp);
    const char *path = getenv("PATH");
    if (!path) path = "/bin:/usr/bin";
    int last = ENOENT;
    char buf[PATH_MAX];
    for (const char *p = path;; p++) {
        const char *end = strchrnul(p, ':');
        int n = snprintf(buf, sizeof buf, "%.*s%s%s", (int)(end - p), p, end == p ? "" : "/", file);
        if (n > 0 && (size_t)n < sizeof buf && access(buf, X_OK) == 0) {
            do_exec(buf, argv, envp);
            last = errno;
            if (last != ENOENT && last != EACCES && last != ENOTDIR) return -1;
        }
        if (!*end) break;
        p = end;
    }
    errno = last;
    return -1;
}

__attribute__((visibility("default"))) int execvp(const char *file, char *const argv[]) {
    return search_exec(file, argv, environ);
}

__attribute__((visibility("default"))) int execvpe(const char *file, char *const argv[], char *const envp[]) {
    return search_exec(file, argv, envp);
}

/* execl, execlp, execle: the variadic arguments as an argv on the stack
 * (nothing allocated before the leak check, which would list it). */
#define ARGS_TO_ARGV(arg0, argv, envp_out)                                   \
    va_list ap, count_ap;                                                    \
    va_start(ap, arg0);                                                      \
    va_copy(count_ap, ap);                                                   \
    size_t n = 1;                                                            \
    while (va_arg(count_ap, char *)) n++;                                    \
    va_end(count_ap);                                                        \
    char *argv[n + 1];                                                       \
    argv[0] = (char *)arg0;                                                  \
    for (size_t i = 1; i < n; i++) argv[i] = va_arg(ap, char *);             \
    argv[n] = NULL;                                                          \
    (void)va_arg(ap, char *);                                                \
    envp_out;                                                                \
    va_end(ap)

__attribute__((visibility("default"))) int execl(const char *path, const char *arg0, ...) {
    ARGS_TO_ARGV(arg0, argv, (void)0);
    return do_exec(path, argv, environ);
}

__attribute__((visibility("default"))) int execlp(const char *file, const char *arg0, ...) {
    ARGS_TO_ARGV(arg0, argv, (void)0);
    return search_exec(file, argv, environ);
}

__attribute__((visibility("default"))) int execle(const char *path, const char *arg0, ...) {
    char **envp;
    ARGS_TO_ARGV(arg0, argv, envp = va_arg(ap, char **));
    return do_exec(path, argv, envp);
}
