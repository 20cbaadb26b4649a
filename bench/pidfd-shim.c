/* Measurement only (bench/instructions.py): valgrind 3.19 does not know
 * pidfd_open(2) and answers ENOSYS, so the pool's supervisor cannot watch
 * its processes under callgrind. This preload gives it a stand-in: a pipe
 * that turns readable when the process exits, signalled by a thread that
 * waits with WNOWAIT, so the supervisor still reaps the child itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

struct watch { pid_t pid; int fd; };

static void *wait_exit(void *arg) {
    struct watch *w = arg;
    siginfo_t info;
    while (waitid(P_PID, w->pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {}
    (void)!write(w->fd, "x", 1);
    close(w->fd);
    free(w);
    return NULL;
}

long syscall(long number, ...) {
    va_list ap;
    long a[6];
    va_start(ap, number);
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    static long (*real)(long, ...);
    if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    if (number == SYS_pidfd_open) {
        long fd = real(number, a[0], a[1]);
        if (fd >= 0 || errno != ENOSYS) return fd;
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) return -1;
        struct watch *w = malloc(sizeof *w);
        w->pid = (pid_t)a[0];
        w->fd = p[1];
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, wait_exit, w) != 0) { close(p[0]); close(p[1]); free(w); errno = ENOSYS; return -1; }
        return p[0];
    }
    return real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
