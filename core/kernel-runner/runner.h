/* SPDX-License-Identifier: Apache-2.0 */
/* Shared state and internal interfaces of baic-kernel-runner, the in-container executor. */
#ifndef BAIC_KERNEL_RUNNER_H
#define BAIC_KERNEL_RUNNER_H

#include <jansson.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KR_MAX_CONN 8
#define KR_MAX_WATCH 64
#define KR_MAX_PTY 8
#define KR_MAX_SERVICE 16

struct kr;

/* A growable byte buffer; every function returns 0 or -ENOMEM. */
struct kr_buf {
    char *p;
    size_t len, cap;
};
int kr_buf_add(struct kr_buf *b, const void *p, size_t n);
void kr_buf_consume(struct kr_buf *b, size_t n);
void kr_buf_free(struct kr_buf *b);

/* base64 (RFC 4648, with padding). encode returns a malloc'ed NUL-terminated string or
 * NULL; decode returns 0 and a malloc'ed buffer in *out, or -EINVAL on bad input. */
char *kr_b64_encode(const void *p, size_t n);
int kr_b64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen);

/* Appends p[0..n) to dst as valid UTF-8 (invalid bytes become U+FFFD). When keep_tail is
 * set, an incomplete sequence at the end is not consumed; returns the bytes consumed. */
size_t kr_utf8_clean(struct kr_buf *dst, const char *p, size_t n, int keep_tail);

/* Console of one run: ordered [type, data] items, consecutive text of a type merged. */
enum { KR_OUT_STDOUT, KR_OUT_STDERR };
struct kr_item {
    int kind; /* KR_OUT_* or -1 for media */
    struct kr_buf text;
    json_t *media; /* ["mime", "payload"] */
};
struct kr_console {
    struct kr_item *items;
    size_t n, cap;
    size_t bytes;
};
void kr_console_text(struct kr_console *c, int kind, const char *p, size_t n);
void kr_console_media(struct kr_console *c, json_t *media);
/* The console as the API's JSON list; the console is left empty (apart from an
 * incomplete UTF-8 tail when !final). */
json_t *kr_console_take(struct kr_console *c, int final);
void kr_console_free(struct kr_console *c);

/* The poll loop: callbacks run on the one thread. */
typedef void (*kr_watch_cb)(struct kr *kr, int fd, short revents, void *arg);
int kr_watch_add(struct kr *kr, int fd, short events, kr_watch_cb cb, void *arg);
void kr_watch_events(struct kr *kr, int fd, short events);
void kr_watch_del(struct kr *kr, int fd);
int64_t kr_now_ms(void);

/* Child processes. fds[0..2] become the child's stdin/out/err (-1: /dev/null); fds[3],
 * fds[4] become fds 3 and 4 when >= 0. The child runs in cwd with its own process group
 * (setsid instead when setsid_ctty >= 0, which then is the terminal to make controlling).
 * Returns the pid or -errno. */
pid_t kr_spawn(char *const argv[], const char *cwd, const int fds[5], int setsid_ctty);
int kr_pipe(int fds[2]); /* O_CLOEXEC pipe */
int kr_nonblock(int fd);
void kr_close(int *fd);

/* Connections to the agent. A connection is named by a serial that is never reused, so a
 * run that outlives its connection sends into nothing instead of a stranger. */
struct kr_conn {
    int fd;
    unsigned serial;
    struct kr_buf in, out;
};
/* Queues msg (stolen) as one line to connection serial; 0 = every connection. */
void kr_send(struct kr *kr, unsigned conn, json_t *msg);
/* {"id": id, "ok": false, "error": slug, "msg": text} */
void kr_send_error(struct kr *kr, unsigned conn, json_t *id, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
size_t kr_conn_backlog(struct kr *kr, unsigned conn);
int kr_conn_listen(struct kr *kr, const char *path);
void kr_conn_close_all(struct kr *kr);

/* Requests, by area. Each answers on conn, echoing id. */
void kr_exec_request(struct kr *kr, unsigned conn, json_t *id, json_t *req);
void kr_exec_interrupt(struct kr *kr, unsigned conn, json_t *id);
void kr_exec_complete(struct kr *kr, unsigned conn, json_t *id, json_t *req);
void kr_exec_startup(struct kr *kr);
int kr_exec_child_exited(struct kr *kr, pid_t pid, int status); /* 1 when it was ours */
int64_t kr_exec_timeout(struct kr *kr, int64_t now);        /* next deadline or -1 */
void kr_exec_shutdown(struct kr *kr);

void kr_files_request(struct kr *kr, unsigned conn, json_t *id, const char *op, json_t *req);
/* Confined open below the root (see files.c); returns an fd or -errno, err says why. */
int kr_files_open(struct kr *kr, const char *path, int flags, mode_t mode, int mkparents,
                  const char **err);

void kr_pty_request(struct kr *kr, unsigned conn, json_t *id, const char *op, json_t *req);
int kr_pty_child_exited(struct kr *kr, pid_t pid, int status);
void kr_pty_conn_closed(struct kr *kr, unsigned conn);
void kr_pty_shutdown(struct kr *kr);

void kr_service_request(struct kr *kr, unsigned conn, json_t *id, json_t *req);
int kr_service_child_exited(struct kr *kr, pid_t pid, int status);
int64_t kr_service_timeout(struct kr *kr, int64_t now);
void kr_service_shutdown(struct kr *kr);

struct kr_conf {
    const char *socket_path;
    const char *home;          /* working directory and file root (/home/work) */
    const char *runtime_type;  /* "python" runs the driver; anything else is a shell */
    const char *runtime_path;  /* the interpreter for python */
    const char *shell;         /* /bin/sh */
    const char *service_ports; /* BACKENDAI_SERVICE_PORTS / the image label */
    const char *service_defs;  /* directory of <name>.json service definitions */
    int flush_ms;              /* a run's output goes out as `continued` this often */
    size_t max_file;           /* upload/download limit in bytes */
    int no_openat2;            /* force the component walk (tests) */
};

struct kr_watch {
    int fd;
    short events;
    kr_watch_cb cb;
    void *arg;
};

struct kr_run;
struct kr_py;
struct kr_pty;
struct kr_service;

struct kr {
    struct kr_conf conf;
    int root_fd;
    int listen_fd;
    int sig_pipe[2];
    int stop;
    unsigned next_serial;
    struct kr_watch watch[KR_MAX_WATCH];
    size_t nwatch;
    struct kr_conn conn[KR_MAX_CONN];
    json_t *bootstrap; /* {"exitCode", "output"} or NULL */
    json_t *startup;   /* the startup.finished message once known */
    struct kr_run *run;
    struct kr_py *py;
    struct kr_pty *pty[KR_MAX_PTY];
    struct kr_service *svc[KR_MAX_SERVICE];
    pid_t startup_pid;
};

#endif
