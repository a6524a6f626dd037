/* SPDX-License-Identifier: Apache-2.0 */
/* Code execution: Python and shell query runs, batch runs, user input, interrupt,
 * completion and the session's startup command. One run at a time, as in Backend.AI. */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern const char kr_driver_py[]; /* driver.py, embedded by CMake */

/* A run's console is sent early once it holds this much, whatever the flush interval. */
#define KR_FLUSH_BYTES ((size_t)256 << 10)
/* Output waits this long for more before a `continued` carries it, so a burst (a print's
 * text and its newline) is not cut in two. */
#define KR_COALESCE_MS 50
/* After the shell exits, how long its pipes may stay open (a background job holding them). */
#define KR_PIPE_GRACE_MS 200
#define KR_STARTUP_OUTPUT ((size_t)1 << 20)

enum { RUN_PY, RUN_SH, RUN_BATCH };
enum { PH_CLEAN, PH_BUILD, PH_EXEC, PH_END };

struct kr_run {
    int kind;
    char run_id[128];
    json_t *id;
    unsigned conn;
    struct kr_console con;
    int64_t last_flush;
    int64_t pending_since; /* when the oldest unsent output arrived */
    int waiting_input;
    /* the shell child of a shell or batch run */
    pid_t pid;
    int out, err;
    int reaped, code;
    int64_t grace_at;
    int64_t deadline; /* exec-timeout, 0 = none */
    int phase;
    char *cmd[PH_END];
};

struct kr_py {
    pid_t pid;
    int cmd, evt, out, err;
    struct kr_buf ebuf;
    json_t *cid; /* the completion request waiting for the driver */
    unsigned cconn;
};

static void run_free(struct kr *kr);
static void run_finish(struct kr *kr, const char *status, int code);
static void sh_phase_start(struct kr *kr);

/* ---- results ---- */

static void run_emit(struct kr *kr, const char *status, int code, int final, json_t *options)
{
    struct kr_run *r = kr->run;
    json_t *msg = json_pack("{s:O?,s:s,s:s,s:o,s:o,s:o,s:[],s:b}", "id", r->id, "runId",
                            r->run_id, "status", status, "console",
                            kr_console_take(&r->con, final), "exitCode",
                            code == INT32_MIN ? json_null() : json_integer(code), "options",
                            options ? options : json_object(), "files", "final", final);
    r->last_flush = kr_now_ms();
    kr_send(kr, r->conn, msg);
}

static void run_output(struct kr *kr, int kind, const char *p, size_t n)
{
    struct kr_run *r = kr->run;
    if (r->con.n == 0)
        r->pending_since = kr_now_ms();
    kr_console_text(&r->con, kind, p, n);
    if (r->con.bytes >= KR_FLUSH_BYTES)
        run_emit(kr, "continued", INT32_MIN, 0, NULL);
}

/* Reads what a pipe holds into the current run (or drops it); returns 0 at EOF. */
static int pipe_drain(struct kr *kr, int fd, int kind, int want_kind)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            if (kr->run != NULL && kr->run->kind == want_kind)
                run_output(kr, kind, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 ? 0 : 1;
    }
}

/* ---- the Python driver ---- */

static void py_close(struct kr *kr)
{
    struct kr_py *py = kr->py;
    int *fds[] = {&py->cmd, &py->evt, &py->out, &py->err};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0)
            kr_watch_del(kr, *fds[i]);
        kr_close(fds[i]);
    }
    if (py->cid != NULL) {
        kr_send(kr, py->cconn, json_pack("{s:O,s:b,s:[]}", "id", py->cid, "ok", 1, "result"));
        json_decref(py->cid);
    }
    kr_buf_free(&py->ebuf);
    free(py);
    kr->py = NULL;
}

static int py_frame(struct kr_py *py, char kind, const char *p, size_t n)
{
    unsigned char head[5] = {(unsigned char)kind, (unsigned char)(n >> 24),
                             (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                             (unsigned char)n};
    struct kr_buf b = {0};
    kr_buf_add(&b, head, 5);
    kr_buf_add(&b, p, n);
    /* One write per frame: the driver counts on a header never arriving alone. */
    size_t off = 0;
    while (off < b.len) {
        ssize_t w = write(py->cmd, b.p + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            kr_buf_free(&b);
            return -errno;
        }
        off += (size_t)w;
    }
    kr_buf_free(&b);
    return 0;
}

static void py_event(struct kr *kr, char kind, const char *p, size_t n)
{
    struct kr_py *py = kr->py;
    struct kr_run *r = kr->run != NULL && kr->run->kind == RUN_PY ? kr->run : NULL;
    switch (kind) {
    case 'o':
    case 'e':
        if (r != NULL)
            run_output(kr, kind == 'o' ? KR_OUT_STDOUT : KR_OUT_STDERR, p, n);
        break;
    case 'm':
        if (r != NULL) {
            json_t *m = json_loadb(p, n, 0, NULL);
            if (json_is_array(m))
                kr_console_media(&r->con, json_incref(m));
            json_decref(m);
        }
        break;
    case 'i':
        if (r != NULL) {
            json_t *q = json_loadb(p, n, 0, NULL);
            r->waiting_input = 1;
            run_emit(kr, "waiting-input", INT32_MIN, 0,
                     json_pack("{s:b}", "is_password",
                               json_is_true(json_object_get(q, "password"))));
            json_decref(q);
        }
        break;
    case 'f':
        if (r != NULL) {
            /* Output of the user's subprocesses reaches the pipes before the driver ends. */
            pipe_drain(kr, py->out, KR_OUT_STDOUT, RUN_PY);
            pipe_drain(kr, py->err, KR_OUT_STDERR, RUN_PY);
            char num[16];
            size_t l = n < sizeof num - 1 ? n : sizeof num - 1;
            memcpy(num, p, l);
            num[l] = '\0';
            run_finish(kr, "finished", atoi(num));
        }
        break;
    case 'c':
        if (py->cid != NULL) {
            json_t *res = json_loadb(p, n, 0, NULL);
            if (!json_is_array(res)) {
                json_decref(res);
                res = json_array();
            }
            kr_send(kr, py->cconn,
                    json_pack("{s:O,s:b,s:o}", "id", py->cid, "ok", 1, "result", res));
            json_decref(py->cid);
            py->cid = NULL;
        }
        break;
    default:
        break;
    }
}

static void py_evt_cb(struct kr *kr, int fd, short revents, void *arg)
{
    struct kr_py *py = kr->py;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        /* The driver is gone; its exit status (reap) ends the run. */
        kr_watch_del(kr, fd);
        kr_close(&py->evt);
        return;
    }
    kr_buf_add(&py->ebuf, buf, (size_t)n);
    while (kr->py == py && py->ebuf.len >= 5) {
        const unsigned char *h = (const unsigned char *)py->ebuf.p;
        size_t len = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
        if (py->ebuf.len < 5 + len)
            break;
        py_event(kr, (char)h[0], py->ebuf.p + 5, len);
        kr_buf_consume(&py->ebuf, 5 + len);
    }
}

static void py_pipe_cb(struct kr *kr, int fd, short revents, void *arg)
{
    struct kr_py *py = kr->py;
    int is_err = fd == py->err;
    if (pipe_drain(kr, fd, is_err ? KR_OUT_STDERR : KR_OUT_STDOUT, RUN_PY) == 0) {
        kr_watch_del(kr, fd);
        kr_close(is_err ? &py->err : &py->out);
    }
}

static int py_start(struct kr *kr)
{
    int cmd[2] = {-1, -1}, evt[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    int rc;
    if ((rc = kr_pipe(cmd)) < 0 || (rc = kr_pipe(evt)) < 0 || (rc = kr_pipe(out)) < 0 ||
        (rc = kr_pipe(err)) < 0)
        goto fail;
    char *argv[] = {(char *)kr->conf.runtime_path, "-u", "-c", (char *)kr_driver_py, NULL};
    int fds[5] = {-1, out[1], err[1], cmd[0], evt[1]};
    pid_t pid = kr_spawn(argv, kr->conf.home, fds, -1);
    if (pid < 0) {
        rc = pid;
        goto fail;
    }
    close(cmd[0]);
    close(evt[1]);
    close(out[1]);
    close(err[1]);
    struct kr_py *py = calloc(1, sizeof *py);
    py->pid = pid;
    py->cmd = cmd[1];
    py->evt = evt[0];
    py->out = out[0];
    py->err = err[0];
    kr_nonblock(py->evt);
    kr_nonblock(py->out);
    kr_nonblock(py->err);
    kr->py = py;
    /* Subprocess output first: poll order is dispatch order, and it precedes `f`. */
    kr_watch_add(kr, py->out, POLLIN, py_pipe_cb, NULL);
    kr_watch_add(kr, py->err, POLLIN, py_pipe_cb, NULL);
    kr_watch_add(kr, py->evt, POLLIN, py_evt_cb, NULL);
    fprintf(stderr, "kernel-runner: event=python_started pid=%d path=%s\n", (int)pid,
            kr->conf.runtime_path);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        kr_close(&cmd[i]);
        kr_close(&evt[i]);
        kr_close(&out[i]);
        kr_close(&err[i]);
    }
    return rc;
}

/* ---- shell and batch children ---- */

static void sh_pipe_cb(struct kr *kr, int fd, short revents, void *arg)
{
    struct kr_run *r = kr->run;
    int is_err = fd == r->err;
    int kind = r->kind;
    if (pipe_drain(kr, fd, is_err ? KR_OUT_STDERR : KR_OUT_STDOUT, kind) == 0) {
        kr_watch_del(kr, fd);
        kr_close(is_err ? &r->err : &r->out);
        if (r->reaped && r->out < 0 && r->err < 0)
            r->grace_at = kr_now_ms(); /* finish on the next turn */
    }
}

static int sh_spawn(struct kr *kr, const char *code)
{
    struct kr_run *r = kr->run;
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    if (kr_pipe(out) < 0 || kr_pipe(err) < 0) {
        kr_close(&out[0]), kr_close(&out[1]), kr_close(&err[0]), kr_close(&err[1]);
        return -EMFILE;
    }
    char *argv[] = {(char *)kr->conf.shell, "-c", (char *)code, NULL};
    int fds[5] = {-1, out[1], err[1], -1, -1};
    pid_t pid = kr_spawn(argv, kr->conf.home, fds, -1);
    close(out[1]);
    close(err[1]);
    if (pid < 0) {
        close(out[0]);
        close(err[0]);
        return pid;
    }
    r->pid = pid;
    r->out = out[0];
    r->err = err[0];
    r->reaped = 0;
    r->grace_at = 0;
    kr_nonblock(r->out);
    kr_nonblock(r->err);
    kr_watch_add(kr, r->out, POLLIN, sh_pipe_cb, NULL);
    kr_watch_add(kr, r->err, POLLIN, sh_pipe_cb, NULL);
    return 0;
}

static void sh_close_pipes(struct kr *kr)
{
    struct kr_run *r = kr->run;
    if (r->out >= 0) {
        pipe_drain(kr, r->out, KR_OUT_STDOUT, r->kind);
        kr_watch_del(kr, r->out);
        kr_close(&r->out);
    }
    if (r->err >= 0) {
        pipe_drain(kr, r->err, KR_OUT_STDERR, r->kind);
        kr_watch_del(kr, r->err);
        kr_close(&r->err);
    }
}

/* The shell of the current phase is gone and its output read: report, go on or stop. */
static void sh_phase_done(struct kr *kr)
{
    struct kr_run *r = kr->run;
    sh_close_pipes(kr);
    r->pid = 0;
    if (r->kind == RUN_SH) {
        run_finish(kr, "finished", r->code);
        return;
    }
    if (r->phase == PH_EXEC) {
        run_finish(kr, "finished", r->code);
        return;
    }
    const char *status = r->phase == PH_CLEAN ? "clean-finished" : "build-finished";
    if (r->code != 0) {
        /* A failed clean or build ends the run: exec never runs on a broken build. */
        run_finish(kr, status, r->code);
        return;
    }
    run_emit(kr, status, r->code, 0, NULL);
    r->phase++;
    sh_phase_start(kr);
}

/* Starts the next batch phase that has a command; a batch without any finishes at once. */
static void sh_phase_start(struct kr *kr)
{
    struct kr_run *r = kr->run;
    while (r->phase < PH_END && r->cmd[r->phase] == NULL)
        r->phase++;
    if (r->phase == PH_END) {
        run_finish(kr, "finished", 0);
        return;
    }
    int rc = sh_spawn(kr, r->cmd[r->phase]);
    if (rc < 0) {
        char msg[160];
        int l = snprintf(msg, sizeof msg, "kernel-runner: cannot start %s: %s\n", kr->conf.shell,
                         strerror(-rc));
        if (l > 0)
            kr_console_text(&r->con, KR_OUT_STDERR, msg, (size_t)l < sizeof msg ? (size_t)l : 0);
        r->code = 127;
        r->reaped = 1;
        sh_phase_done(kr);
    }
}

/* ---- runs ---- */

static void run_free(struct kr *kr)
{
    struct kr_run *r = kr->run;
    if (r == NULL)
        return;
    if (r->out >= 0 || r->err >= 0)
        sh_close_pipes(kr);
    kr_console_free(&r->con);
    json_decref(r->id);
    for (int i = 0; i < PH_END; i++)
        free(r->cmd[i]);
    free(r);
    kr->run = NULL;
}

static void run_finish(struct kr *kr, const char *status, int code)
{
    run_emit(kr, status, code, 1, NULL);
    fprintf(stderr, "kernel-runner: event=run_finished run_id=%s status=%s exit_code=%d\n",
            kr->run->run_id, status, code);
    run_free(kr);
}

static int exit_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *opt_cmd(json_t *options, const char *key)
{
    const char *s = json_string_value(json_object_get(options, key));
    /* "*" asks for the image's default, and our images define none. */
    if (s == NULL || s[0] == '\0' || strcmp(s, "*") == 0)
        return NULL;
    return strdup(s);
}

static void run_start(struct kr *kr, unsigned conn, json_t *id, const char *mode, const char *code,
                      const char *run_id, json_t *options)
{
    static unsigned counter;
    struct kr_run *r = calloc(1, sizeof *r);
    r->out = r->err = -1;
    r->conn = conn;
    r->id = json_incref(id);
    r->last_flush = kr_now_ms();
    if (run_id != NULL && run_id[0] != '\0') {
        snprintf(r->run_id, sizeof r->run_id, "%.*s", (int)sizeof r->run_id - 1, run_id);
    } else {
        int l = snprintf(r->run_id, sizeof r->run_id, "%x-%x-%llx", (unsigned)getpid(), ++counter,
                         (unsigned long long)kr_now_ms());
        if (l < 0)
            r->run_id[0] = '\0';
    }
    json_t *t = json_object_get(options, "timeout");
    if (json_is_number(t) && json_number_value(t) > 0)
        r->deadline = kr_now_ms() + (int64_t)(json_number_value(t) * 1000);
    kr->run = r;

    if (strcmp(mode, "batch") == 0) {
        r->kind = RUN_BATCH;
        r->cmd[PH_CLEAN] = opt_cmd(options, "clean");
        r->cmd[PH_BUILD] = opt_cmd(options, "build");
        r->cmd[PH_EXEC] = opt_cmd(options, "exec");
        if (r->cmd[PH_EXEC] == NULL && code[0] != '\0')
            r->cmd[PH_EXEC] = strdup(code);
        sh_phase_start(kr);
        return;
    }
    const char *rt = json_string_value(json_object_get(options, "runtime"));
    if (rt == NULL)
        rt = kr->conf.runtime_type;
    if (strcmp(rt, "python") != 0) {
        r->kind = RUN_SH;
        r->cmd[PH_EXEC] = strdup(code);
        r->phase = PH_EXEC;
        sh_phase_start(kr);
        return;
    }
    r->kind = RUN_PY;
    int rc = kr->py != NULL ? 0 : py_start(kr);
    if (rc == 0)
        rc = py_frame(kr->py, 'x', code, strlen(code));
    if (rc < 0) {
        char msg[256];
        int l = snprintf(msg, sizeof msg, "kernel-runner: cannot run %s: %s\n",
                         kr->conf.runtime_path, strerror(-rc));
        if (l > 0)
            kr_console_text(&r->con, KR_OUT_STDERR, msg, (size_t)l < sizeof msg ? (size_t)l : 0);
        run_finish(kr, "finished", 127);
    }
}

void kr_exec_request(struct kr *kr, unsigned conn, json_t *id, json_t *req)
{
    const char *mode = NULL, *code = "", *run_id = NULL;
    json_t *options = NULL;
    json_error_t jerr;
    if (json_unpack_ex(req, &jerr, 0, "{s:s,s?s,s?s,s?o}", "mode", &mode, "code", &code, "runId",
                       &run_id, "options", &options) < 0) {
        /* runId may be null on the first call */
        if (json_unpack_ex(req, &jerr, 0, "{s:s,s?s,s?n,s?o}", "mode", &mode, "code", &code,
                           "runId", "options", &options) < 0) {
            kr_send_error(kr, conn, id, "invalid-request", "execute: %s", jerr.text);
            return;
        }
        run_id = NULL;
    }
    if (options != NULL && !json_is_object(options))
        options = NULL;
    struct kr_run *r = kr->run;
    int same = r != NULL && (run_id == NULL || strcmp(run_id, r->run_id) == 0);

    if (strcmp(mode, "query") == 0 || strcmp(mode, "batch") == 0) {
        if (r != NULL) {
            kr_send_error(kr, conn, id, "run-in-progress", "run %s is still running", r->run_id);
            return;
        }
        run_start(kr, conn, id, mode, code, run_id, options);
    } else if (strcmp(mode, "input") == 0) {
        if (!same || !r->waiting_input || r->kind != RUN_PY || kr->py == NULL) {
            kr_send_error(kr, conn, id, "not-waiting-input", "no run is waiting for input");
            return;
        }
        r->waiting_input = 0;
        r->conn = conn;
        json_decref(r->id);
        r->id = json_incref(id);
        py_frame(kr->py, 'i', code, strlen(code));
    } else if (strcmp(mode, "continue") == 0) {
        if (!same) {
            kr_send_error(kr, conn, id, "no-such-run", "no run %s", run_id ? run_id : "");
            return;
        }
        /* Results stream by themselves; continue (re)attaches the stream to this caller. */
        r->conn = conn;
        json_decref(r->id);
        r->id = json_incref(id);
        kr_send(kr, conn, json_pack("{s:O?,s:b,s:s}", "id", id, "ok", 1, "runId", r->run_id));
    } else {
        kr_send_error(kr, conn, id, "invalid-request", "unknown mode \"%s\"", mode);
    }
}

void kr_exec_interrupt(struct kr *kr, unsigned conn, json_t *id)
{
    struct kr_run *r = kr->run;
    pid_t pg = 0;
    if (r != NULL)
        pg = r->kind == RUN_PY ? (kr->py ? kr->py->pid : 0) : r->pid;
    if (pg > 0) {
        r->waiting_input = 0;
        kill(-pg, SIGINT);
    }
    kr_send(kr, conn, json_pack("{s:O?,s:b,s:b}", "id", id, "ok", 1, "interrupted", pg > 0));
}

void kr_exec_complete(struct kr *kr, unsigned conn, json_t *id, json_t *req)
{
    int python = strcmp(kr->conf.runtime_type, "python") == 0;
    /* The driver answers only between runs; a busy kernel has nothing to offer. */
    if (!python || kr->run != NULL || (kr->py != NULL && kr->py->cid != NULL) ||
        (kr->py == NULL && py_start(kr) < 0)) {
        kr_send(kr, conn, json_pack("{s:O?,s:b,s:[]}", "id", id, "ok", 1, "result"));
        return;
    }
    json_t *q = json_object();
    json_t *opts = json_object_get(req, "options");
    json_object_set(q, "code", json_object_get(req, "code"));
    if (json_is_object(opts))
        json_object_update(q, opts);
    char *s = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    kr->py->cid = json_incref(id ? id : json_null());
    kr->py->cconn = conn;
    if (s == NULL || py_frame(kr->py, 'c', s, strlen(s)) < 0) {
        kr_send(kr, conn, json_pack("{s:O?,s:b,s:[]}", "id", id, "ok", 1, "result"));
        json_decref(kr->py->cid);
        kr->py->cid = NULL;
    }
    free(s);
}

/* ---- the startup command of batch sessions ---- */

static struct {
    int fd;
    struct kr_buf out;
    int log_fd;       /* BAIC_RUNNER_CONSOLE_LOG, -1 without one */
    size_t logged;
} startup = {.fd = -1, .log_fd = -1};

/* The container's console log: a copy of the startup command's output goes to the
 * runner's stdout (the container console) and to the file the agent serves as the
 * kernel's logs, up to KR_CONSOLE_LOG_MAX bytes. */
#define KR_CONSOLE_LOG_MAX ((size_t)16 << 20)

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void console_copy(const char *p, size_t n)
{
    write_all(STDOUT_FILENO, p, n);
    if (startup.log_fd < 0)
        return;
    if (startup.logged + n > KR_CONSOLE_LOG_MAX) {
        static const char cut[] = "\n[console log truncated]\n";
        size_t room = KR_CONSOLE_LOG_MAX - startup.logged;
        write_all(startup.log_fd, p, room);
        write_all(startup.log_fd, cut, sizeof cut - 1);
        close(startup.log_fd);
        startup.log_fd = -1;
        return;
    }
    write_all(startup.log_fd, p, n);
    startup.logged += n;
}

static void startup_cb(struct kr *kr, int fd, short revents, void *arg)
{
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        console_copy(buf, (size_t)n);
        if (startup.out.len < KR_STARTUP_OUTPUT)
            kr_buf_add(&startup.out, buf, (size_t)n);
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        kr_watch_del(kr, fd);
        kr_close(&startup.fd);
    }
}

void kr_exec_startup(struct kr *kr)
{
    const char *cmd = getenv("BACKENDAI_STARTUP_COMMAND");
    if (cmd == NULL || cmd[0] == '\0')
        return;
    const char *log = getenv("BAIC_RUNNER_CONSOLE_LOG");
    if (log != NULL && *log == '/') {
        startup.log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
        struct stat st;
        if (startup.log_fd >= 0 && fstat(startup.log_fd, &st) == 0)
            startup.logged = (size_t)st.st_size; /* a restarted runner appends */
        else if (startup.log_fd < 0)
            fprintf(stderr, "kernel-runner: event=console_log_failed path=%s error=\"%s\"\n",
                    log, strerror(errno));
    }
    int p[2];
    if (kr_pipe(p) < 0)
        return;
    char *argv[] = {(char *)kr->conf.shell, "-c", (char *)cmd, NULL};
    int fds[5] = {-1, p[1], p[1], -1, -1};
    pid_t pid = kr_spawn(argv, kr->conf.home, fds, -1);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        kr->startup = json_pack("{s:s,s:i,s:[[ss]]}", "op", "startup.finished", "exitCode", 127,
                                "console", "stderr", "kernel-runner: cannot start the shell\n");
        return;
    }
    kr->startup_pid = pid;
    startup.fd = p[0];
    kr_nonblock(startup.fd);
    kr_watch_add(kr, startup.fd, POLLIN, startup_cb, NULL);
    fprintf(stderr, "kernel-runner: event=startup_started pid=%d\n", (int)pid);
}

static void startup_exited(struct kr *kr, int status)
{
    if (startup.fd >= 0) {
        char buf[65536];
        ssize_t n;
        while ((n = read(startup.fd, buf, sizeof buf)) > 0) {
            console_copy(buf, (size_t)n);
            if (startup.out.len < KR_STARTUP_OUTPUT)
                kr_buf_add(&startup.out, buf, (size_t)n);
        }
        kr_watch_del(kr, startup.fd);
        kr_close(&startup.fd);
    }
    struct kr_buf clean = {0};
    kr_utf8_clean(&clean, startup.out.p ? startup.out.p : "", startup.out.len, 0);
    int code = exit_code(status);
    json_t *console = json_array();
    if (clean.len > 0)
        json_array_append_new(console, json_pack("[ss#]", "stdout", clean.p, clean.len));
    kr->startup = json_pack("{s:s,s:i,s:o}", "op", "startup.finished", "exitCode", code,
                            "console", console);
    kr_buf_free(&clean);
    kr_buf_free(&startup.out);
    if (startup.log_fd >= 0)
        close(startup.log_fd);
    startup.log_fd = -1;
    kr->startup_pid = 0;
    fprintf(stderr, "kernel-runner: event=startup_finished exit_code=%d\n", code);
    kr_send(kr, 0, json_incref(kr->startup));
    const char *ex = getenv("BAIC_RUNNER_EXIT_AFTER_STARTUP");
    if (ex != NULL && strcmp(ex, "1") == 0)
        kr->stop = 1;
}

/* ---- process exits and deadlines ---- */

int kr_exec_child_exited(struct kr *kr, pid_t pid, int status)
{
    if (kr->startup_pid != 0 && pid == kr->startup_pid) {
        startup_exited(kr, status);
        return 1;
    }
    if (kr->py != NULL && pid == kr->py->pid) {
        /* Whatever it wrote before dying still counts. */
        if (kr->py->evt >= 0)
            py_evt_cb(kr, kr->py->evt, POLLIN, NULL);
        if (kr->py != NULL && kr->py->out >= 0)
            pipe_drain(kr, kr->py->out, KR_OUT_STDOUT, RUN_PY);
        if (kr->py != NULL && kr->py->err >= 0)
            pipe_drain(kr, kr->py->err, KR_OUT_STDERR, RUN_PY);
        fprintf(stderr, "kernel-runner: event=python_exited status=%d\n", exit_code(status));
        if (kr->py != NULL)
            py_close(kr);
        if (kr->run != NULL && kr->run->kind == RUN_PY) {
            static const char msg[] = "kernel-runner: the Python interpreter exited; the next "
                                      "run starts a new one\n";
            kr_console_text(&kr->run->con, KR_OUT_STDERR, msg, sizeof msg - 1);
            run_finish(kr, "finished", exit_code(status));
        }
        return 1;
    }
    struct kr_run *r = kr->run;
    if (r != NULL && r->pid == pid && !r->reaped) {
        r->reaped = 1;
        r->code = exit_code(status);
        r->grace_at = kr_now_ms() + (r->out < 0 && r->err < 0 ? 0 : KR_PIPE_GRACE_MS);
        return 1;
    }
    return 0;
}

int64_t kr_exec_timeout(struct kr *kr, int64_t now)
{
    struct kr_run *r = kr->run;
    if (r == NULL)
        return -1;
    if (r->deadline > 0 && now >= r->deadline && r->kind != RUN_PY) {
        if (r->pid > 0 && !r->reaped)
            kill(-r->pid, SIGKILL);
        sh_close_pipes(kr);
        run_finish(kr, "exec-timeout", 124);
        return -1;
    }
    if ((r->kind == RUN_SH || r->kind == RUN_BATCH) && r->reaped && now >= r->grace_at) {
        sh_phase_done(kr);
        return kr_exec_timeout(kr, kr_now_ms());
    }
    int64_t due = r->last_flush + kr->conf.flush_ms;
    if (due < r->pending_since + KR_COALESCE_MS)
        due = r->pending_since + KR_COALESCE_MS;
    if (r->con.bytes > 0 && !r->waiting_input && now >= due) {
        run_emit(kr, "continued", INT32_MIN, 0, NULL);
        due = r->last_flush + kr->conf.flush_ms;
    }
    int64_t next = -1;
    if (r->con.bytes > 0 && !r->waiting_input)
        next = due;
    if (r->reaped && (next < 0 || r->grace_at < next))
        next = r->grace_at;
    if (r->deadline > 0 && r->kind != RUN_PY && (next < 0 || r->deadline < next))
        next = r->deadline;
    return next;
}

void kr_exec_shutdown(struct kr *kr)
{
    if (kr->run != NULL) {
        if (kr->run->pid > 0 && !kr->run->reaped)
            kill(-kr->run->pid, SIGKILL);
        run_free(kr);
    }
    if (kr->py != NULL) {
        kill(-kr->py->pid, SIGKILL);
        py_close(kr);
    }
    if (kr->startup_pid > 0)
        kill(-kr->startup_pid, SIGTERM);
    kr_close(&startup.fd);
    kr_buf_free(&startup.out);
}
