/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/oci: child processes (runtime, skopeo, umoci) and small file helpers for pool threads. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "oci.h"

/*
 * Each command gets a private loop on the pool thread that runs it: uv_spawn takes
 * care of close-on-exec, signal masks and reaping, and the daemon's loop never waits.
 */
typedef struct proc_run {
    uv_loop_t loop;
    uv_process_t proc;
    uv_pipe_t pipe;
    uv_timer_t timer;
    char *out;
    size_t out_max, out_len;
    int exited, status, timed_out, pipe_open;
} proc_run_t;

static void proc_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    static __thread char scratch[16384];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void proc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    proc_run_t *r = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        r->pipe_open = 0;
        return;
    }
    size_t room = r->out_max > r->out_len + 1 ? r->out_max - r->out_len - 1 : 0;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(r->out + r->out_len, buf->base, take);
    r->out_len += take;
    r->out[r->out_len] = '\0';
}

static void proc_exit(uv_process_t *p, int64_t code, int sig) {
    proc_run_t *r = p->data;
    r->exited = 1;
    r->status = sig != 0 ? 128 + sig : (int)code;
    uv_close((uv_handle_t *)p, NULL);
    if (uv_is_active((uv_handle_t *)&r->timer))
        uv_timer_stop(&r->timer);
}

static void proc_timeout(uv_timer_t *t) {
    proc_run_t *r = t->data;
    r->timed_out = 1;
    if (!r->exited)
        uv_process_kill(&r->proc, SIGKILL);
}

int oci_proc_run(const char *const *argv, char *out, size_t out_max, int out_fd,
                 uint64_t timeout_ms, int *status) {
    proc_run_t r;
    memset(&r, 0, sizeof r);
    int rc = uv_loop_init(&r.loop);
    if (rc != 0)
        return rc;
    if (out != NULL && out_max > 0)
        out[0] = '\0';
    r.out = out;
    r.out_max = out != NULL ? out_max : 0;

    uv_stdio_container_t stdio[3];
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = devnull;
    uv_file fds[2] = {-1, -1};
    if (out != NULL) {
        /* One pipe for stdout and stderr, so the output keeps its order. */
        if ((rc = uv_pipe(fds, 0, 0)) != 0) {
            if (devnull >= 0)
                close(devnull);
            uv_loop_close(&r.loop);
            return rc;
        }
        uv_pipe_init(&r.loop, &r.pipe, 0);
        uv_pipe_open(&r.pipe, fds[0]);
        r.pipe.data = &r;
        r.pipe_open = 1;
        stdio[1].flags = UV_INHERIT_FD;
        stdio[1].data.fd = fds[1];
        stdio[2] = stdio[1];
    } else {
        stdio[1].flags = UV_INHERIT_FD;
        stdio[1].data.fd = out_fd >= 0 ? out_fd : devnull;
        stdio[2] = stdio[1];
    }
    uv_process_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.file = argv[0];
    opt.args = (char **)argv;
    opt.exit_cb = proc_exit;
    opt.stdio = stdio;
    opt.stdio_count = 3;
    r.proc.data = &r;
    rc = uv_spawn(&r.loop, &r.proc, &opt);
    if (devnull >= 0)
        close(devnull);
    if (fds[1] >= 0)
        close(fds[1]); /* the child has it; EOF comes when the child's copies close */
    if (rc != 0) {
        if (r.pipe_open)
            uv_close((uv_handle_t *)&r.pipe, NULL);
        uv_close((uv_handle_t *)&r.proc, NULL);
        uv_run(&r.loop, UV_RUN_DEFAULT);
        uv_loop_close(&r.loop);
        return rc;
    }
    if (r.pipe_open)
        uv_read_start((uv_stream_t *)&r.pipe, proc_alloc, proc_read);
    uv_timer_init(&r.loop, &r.timer);
    r.timer.data = &r;
    if (timeout_ms > 0)
        uv_timer_start(&r.timer, proc_timeout, timeout_ms, 0);
    /* A daemonised grandchild may hold the pipe open: once the child exited and the
     * timer fired (or none runs), stop waiting for EOF. */
    while (uv_run(&r.loop, UV_RUN_ONCE) != 0) {
        if (r.exited && r.pipe_open && !uv_is_active((uv_handle_t *)&r.timer)) {
            uv_read_stop((uv_stream_t *)&r.pipe);
            /* drain what is already buffered without blocking */
            uv_run(&r.loop, UV_RUN_NOWAIT);
            if (r.pipe_open) {
                uv_close((uv_handle_t *)&r.pipe, NULL);
                r.pipe_open = 0;
            }
        }
    }
    uv_close((uv_handle_t *)&r.timer, NULL);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);
    *status = r.status;
    return r.timed_out ? BAIC_ETIMEOUT : 0;
}

int oci_runtime_argv(const oci_conf_t *c, const char **dst, size_t n,
                     const char *const *args) {
    size_t k = 0;
    if (strcmp(c->runtime, "crun") == 0 && c->hybrid_workaround) {
        /*
         * crun refuses hybrid cgroup hosts (v1 controllers plus a cgroup2 mount at
         * /sys/fs/cgroup/unified). Each invocation gets its own private mount
         * namespace without that mount, so crun sees plain v1; nothing changes for
         * the rest of the host, no helper process must outlive a restart, and every
         * call sees the host's current mounts (the kernel's overlay included).
         */
        static const char *const wrap[] = {
            "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
            "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\""};
        for (size_t i = 0; i < sizeof wrap / sizeof wrap[0]; i++) {
            if (k + 1 >= n)
                return -1;
            dst[k++] = wrap[i];
        }
    }
    if (k + 3 >= n)
        return -1;
    dst[k++] = c->runtime_path;
    dst[k++] = "--root";
    dst[k++] = c->runtime_root;
    for (size_t i = 0; args[i] != NULL; i++) {
        if (k + 1 >= n)
            return -1;
        dst[k++] = args[i];
    }
    dst[k] = NULL;
    return (int)k;
}

int oci_mkdirs(const char *path, unsigned mode) {
    char tmp[OCI_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int rmtree_at(int dirfd, const char *name, dev_t dev) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dirfd, name, 0) == 0 || errno == ENOENT ? 0 : -errno;
    if (st.st_dev != dev)
        return -EBUSY; /* a mount point: never delete through it */
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -ENOMEM;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = rmtree_at(fd, e->d_name, dev);
        if (r != 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = -errno;
    return rc;
}

int oci_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    return rmtree_at(AT_FDCWD, path, st.st_dev);
}

int oci_write_file(const char *path, const char *data, size_t len) {
    char tmp[OCI_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            unlink(tmp);
            return e;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

long oci_read_file(const char *path, char *buf, size_t max) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off + 1 < max) {
        ssize_t n = read(fd, buf + off, max - off - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    buf[off] = '\0';
    close(fd);
    return (long)off;
}

int64_t oci_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
