/* SPDX-License-Identifier: Apache-2.0 */
/* Starting, waiting for and stopping child processes and daemons, and their pid files. */
#define _GNU_SOURCE
#include "cli/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/file.h"

long long cli_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll interval while waiting on something that has no event we could block on. */
static void nap_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Runs in the child between fork and exec: only plain system calls, then _exit on failure
 * with the reason in the log the parent tails. */
static void child_setup(char *const argv[], const cli_proc_opts_t *o, int out_fd) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (o->new_session)
        setsid();

    int null_fd = open("/dev/null", O_RDWR);
    int log_fd = o->log_path ? open(o->log_path, O_WRONLY | O_CREAT | O_APPEND, 0640) : -1;
    if (null_fd < 0)
        _exit(127);
    int err_fd = log_fd >= 0 ? log_fd : null_fd;
    dup2(null_fd, 0);
    dup2(out_fd >= 0 ? out_fd : err_fd, 1);
    dup2(err_fd, 2);
    /* Daemons must not keep our caller's pipes open: a shell reading `$(baic up)` would
     * otherwise wait for them forever. */
    for (int fd = 3; fd < 1024; fd++)
        close(fd);

    if (chdir(o->cwd ? o->cwd : "/") < 0) {
        dprintf(2, "baic: chdir %s: %s\n", o->cwd ? o->cwd : "/", strerror(errno));
        _exit(127);
    }
    if (o->as_user) {
        if (setgroups(1, &o->gid) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0) {
            dprintf(2, "baic: cannot switch to uid %u: %s\n", (unsigned)o->uid,
                    strerror(errno));
            _exit(127);
        }
    }
    execvp(argv[0], argv);
    dprintf(2, "baic: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int spawn_fd(char *const argv[], const cli_proc_opts_t *o, int out_fd, pid_t *pid) {
    static const cli_proc_opts_t defaults;
    if (o == NULL)
        o = &defaults;
    fflush(NULL);
    pid_t p = fork();
    if (p < 0)
        return -errno;
    if (p == 0)
        child_setup(argv, o, out_fd);
    *pid = p;
    return 0;
}

int cli_proc_spawn(char *const argv[], const cli_proc_opts_t *o, pid_t *pid) {
    return spawn_fd(argv, o, -1, pid);
}

static int decode_status(int st) {
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

int cli_proc_wait(pid_t pid, int timeout_ms, int *code) {
    long long deadline = cli_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            *code = decode_status(st);
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -errno;
        if (cli_now_ms() >= deadline)
            return -ETIMEDOUT;
        nap_ms(10);
    }
}

static int finish(pid_t pid, int timeout_ms, int *code) {
    int rc = cli_proc_wait(pid, timeout_ms, code);
    if (rc == -ETIMEDOUT) {
        kill(pid, SIGKILL);
        int ignored;
        (void)cli_proc_wait(pid, 5000, &ignored);
    }
    return rc;
}

int cli_proc_run(char *const argv[], const cli_proc_opts_t *o, int timeout_ms, int *code) {
    pid_t pid = -1;
    int rc = spawn_fd(argv, o, -1, &pid);
    return rc < 0 ? rc : finish(pid, timeout_ms, code);
}

int cli_proc_capture(char *const argv[], const cli_proc_opts_t *o, int timeout_ms, char *out,
                     size_t outlen, int *code) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = -1;
    int rc = spawn_fd(argv, o, p[1], &pid);
    close(p[1]);
    if (rc < 0) {
        close(p[0]);
        return rc;
    }
    /* Read until EOF; the output we capture is a line or two, so a blocking read cannot
     * outlive the child by much, and the wait below bounds the child itself. */
    size_t n = 0;
    for (;;) {
        char scratch[512];
        char *dst = n + 1 < outlen ? out + n : scratch;
        size_t room = n + 1 < outlen ? outlen - 1 - n : sizeof scratch;
        ssize_t r = read(p[0], dst, room);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (dst != scratch)
            n += (size_t)r;
    }
    close(p[0]);
    if (outlen > 0)
        out[n] = '\0';
    return finish(pid, timeout_ms, code);
}

int cli_proc_alive(pid_t pid, const char *name) {
    if (pid <= 1)
        return 0;
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses; the state follows the last ')'. */
    char *rp = strrchr(buf, ')');
    if (rp == NULL || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
        return 0;
    if (name == NULL)
        return 1;

    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    f = fopen(path, "re");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[n] = '\0';
    return strstr(buf, name) != NULL;
}

/* Gone = no such process, or a zombie (ours, reaped here, or someone else's). */
static int gone(pid_t pid) {
    int st;
    (void)waitpid(pid, &st, WNOHANG);
    return !cli_proc_alive(pid, NULL);
}

static int wait_gone(pid_t pid, int timeout_ms) {
    long long deadline = cli_now_ms() + timeout_ms;
    while (!gone(pid)) {
        if (cli_now_ms() >= deadline)
            return 0;
        nap_ms(20);
    }
    return 1;
}

int cli_proc_stop(pid_t pid, int group, int timeout_ms) {
    if (pid <= 1)
        return -EINVAL;
    /* Signal the group only when pid leads it, so a recycled pid never takes others along. */
    pid_t target = group && getpgid(pid) == pid ? -pid : pid;
    if (kill(target, SIGTERM) < 0)
        return errno == ESRCH ? 0 : -errno;
    if (wait_gone(pid, timeout_ms))
        return 0;
    if (kill(target, SIGKILL) < 0 && errno != ESRCH)
        return -errno;
    return wait_gone(pid, 5000) ? 1 : -ETIMEDOUT;
}

int cli_pidfile_read(const char *path, pid_t *pid) {
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    long v = 0;
    int ok = fscanf(f, "%ld", &v) == 1 && v > 1 && v < (1L << 30);
    fclose(f);
    if (!ok)
        return -EINVAL;
    *pid = (pid_t)v;
    return 0;
}

int cli_pidfile_write(const char *path, pid_t pid) {
    char text[32];
    int n = snprintf(text, sizeof text, "%d\n", (int)pid);
    return baic_file_replace(path, text, (size_t)n, 0644);
}

/* Start of pid in seconds since the epoch, from /proc (ticks since boot + boot time). */
static int proc_start_time(pid_t pid, double *out) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ticks = 0;
    /* After the name: state is field 3, starttime field 22. */
    if (p == NULL || sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                                   "%*s %*s %*s %*s %*s %llu", &ticks) != 1)
        return -EINVAL;
    f = fopen("/proc/stat", "re");
    if (f == NULL)
        return -errno;
    long long btime = -1;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    fclose(f);
    if (btime < 0)
        return -EINVAL;
    *out = (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

int cli_pidfile_live(const char *path, const char *name, pid_t *pid) {
    pid_t p;
    int rc = cli_pidfile_read(path, &p);
    if (rc == -ENOENT || rc == -EINVAL)
        return 0;
    if (rc < 0)
        return rc;
    struct stat st;
    double started;
    if (stat(path, &st) < 0 || !cli_proc_alive(p, name) || proc_start_time(p, &started) < 0)
        return 0;
    /* btime is rounded to the second; allow for it. */
    if (started > (double)st.st_mtim.tv_sec + 2.0)
        return 0;
    *pid = p;
    return 1;
}

int cli_which(const char *prog, char *out, size_t outlen) {
    if (strchr(prog, '/') != NULL) {
        if (access(prog, X_OK) < 0)
            return -ENOENT;
        snprintf(out, outlen, "%s", prog);
        return 0;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && (size_t)snprintf(out, outlen, "%.*s/%s", (int)len, path, prog) < outlen) {
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
                return 0;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return -ENOENT;
}

void cli_log_tail(const char *path, int lines) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "  (no log at %s: %s)\n", path, strerror(errno));
        return;
    }
    char buf[8192];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t start = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, start);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "  (%s is empty)\n", path);
        return;
    }
    buf[n] = '\0';
    /* Walk back over `lines` newlines, ignoring the one that ends the file. */
    char *p = buf + n;
    if (p > buf && p[-1] == '\n')
        *--p = '\0';
    int seen = 0;
    while (p > buf && seen < lines) {
        p--;
        if (*p == '\n')
            seen++;
    }
    if (*p == '\n')
        p++;
    fprintf(stderr, "  last lines of %s:\n", path);
    for (char *line = p; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        fprintf(stderr, "  | %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
        line = nl ? nl + 1 : NULL;
    }
}
