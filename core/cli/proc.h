/* SPDX-License-Identifier: Apache-2.0 */
/* Child processes, pid files and loopback probes for the `baic` commands that manage daemons. */
#ifndef BAIC_CLI_PROC_H
#define BAIC_CLI_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* How a child is started. Zero-initialised means: cwd "/", output to /dev/null, same user. */
typedef struct cli_proc_opts {
    const char *cwd;      /* working directory of the child; NULL = "/" */
    const char *log_path; /* stdout and stderr appended here; NULL = /dev/null */
    int new_session;      /* setsid(): the child outlives us and has its own process group */
    int as_user;          /* switch to uid/gid (and its groups) before exec */
    uid_t uid;
    gid_t gid;
} cli_proc_opts_t;

/* Milliseconds on the monotonic clock. */
long long cli_now_ms(void);

/* Forks and execs argv[0] (PATH is searched when it has no slash). stdin is /dev/null.
 * Returns 0 and the child's pid, or a negative errno (exec failures show up as exit 127). */
int cli_proc_spawn(char *const argv[], const cli_proc_opts_t *o, pid_t *pid);

/* Waits for our own child up to timeout_ms. Returns 0 with *code = exit status (128 + signal
 * when killed), -ETIMEDOUT when still running (it is left running), or a negative errno. */
int cli_proc_wait(pid_t pid, int timeout_ms, int *code);

/* Spawns, waits up to timeout_ms (then kills it with SIGKILL). Returns 0 with the exit code,
 * -ETIMEDOUT or a negative errno. */
int cli_proc_run(char *const argv[], const cli_proc_opts_t *o, int timeout_ms, int *code);

/* As cli_proc_run, but stdout (not stderr) goes to out, NUL-terminated, truncated to
 * outlen - 1; stderr follows o->log_path. */
int cli_proc_capture(char *const argv[], const cli_proc_opts_t *o, int timeout_ms,
                      char *out, size_t outlen, int *code);

/* 1 when pid runs (not a zombie) and its command line mentions name (NULL: any), else 0.
 * The name check keeps a recycled pid from being mistaken for our daemon. */
int cli_proc_alive(pid_t pid, const char *name);

/* SIGTERM to pid (its whole process group when group is set), waits up to timeout_ms for it
 * to go, then SIGKILL. Works for processes that are not our children. Returns 0 once it is
 * gone, 1 when it had to be killed, or a negative errno. */
int cli_proc_stop(pid_t pid, int group, int timeout_ms);

/* Pid files hold the pid and a newline, nothing else. read returns 0, -ENOENT, or -EINVAL
 * for garbage; write replaces the file atomically. */
int cli_pidfile_read(const char *path, pid_t *pid);
int cli_pidfile_write(const char *path, pid_t pid);

/* The daemon a pid file names, if it still runs: returns 1 with *pid when the process is
 * alive, its command line mentions name, and it started no later than the file was written
 * (a pid recycled after a crash or reboot belongs to a younger process). Returns 0 when the
 * file is missing or stale, or a negative errno. */
int cli_pidfile_live(const char *path, const char *name, pid_t *pid);

/* Looks prog up in PATH. Returns 0 with the full path in out, or -ENOENT. */
int cli_which(const char *prog, char *out, size_t outlen);

/* Writes the last `lines` lines of path to stderr, indented; says so when it cannot. */
void cli_log_tail(const char *path, int lines);

#endif
