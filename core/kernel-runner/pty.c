/* SPDX-License-Identifier: Apache-2.0 */
/* Terminals: a login shell on a pseudo-terminal per pty.open, relayed as base64 messages. */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Stop reading a terminal while its connection has this much unsent. */
#define KR_PTY_BACKLOG ((size_t)4 << 20)

struct kr_pty {
    int num;
    int master;
    pid_t pid;
    unsigned conn;
    int paused;
};

static struct kr_pty *pty_find(struct kr *kr, int num)
{
    for (int i = 0; i < KR_MAX_PTY; i++)
        if (kr->pty[i] != NULL && kr->pty[i]->num == num)
            return kr->pty[i];
    return NULL;
}

static void pty_free(struct kr *kr, struct kr_pty *p, int code)
{
    for (int i = 0; i < KR_MAX_PTY; i++)
        if (kr->pty[i] == p)
            kr->pty[i] = NULL;
    if (p->master >= 0) {
        kr_watch_del(kr, p->master);
        kr_close(&p->master);
    }
    kr_send(kr, p->conn, json_pack("{s:s,s:i,s:i}", "op", "pty.exit", "pty", p->num, "exitCode",
                                   code));
    free(p);
}

static void pty_cb(struct kr *kr, int fd, short revents, void *arg)
{
    struct kr_pty *p = arg;
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        /* EIO: the shell and everything on the terminal closed it; the reap reports. */
        kr_watch_del(kr, fd);
        kr_close(&p->master);
        if (p->pid == 0)
            pty_free(kr, p, 0);
        return;
    }
    char *enc = kr_b64_encode(buf, (size_t)n);
    kr_send(kr, p->conn, json_pack("{s:s,s:i,s:s}", "op", "pty.output", "pty", p->num, "data_b64",
                                   enc ? enc : ""));
    free(enc);
    if (kr_conn_backlog(kr, p->conn) > KR_PTY_BACKLOG) {
        p->paused = 1;
        kr_watch_events(kr, fd, 0);
    }
}

static const char *pick_shell(void)
{
    return access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
}

static void pty_open(struct kr *kr, unsigned conn, json_t *id, int cols, int rows)
{
    static int next_num;
    int slot = -1;
    for (int i = 0; i < KR_MAX_PTY && slot < 0; i++)
        if (kr->pty[i] == NULL)
            slot = i;
    if (slot < 0) {
        kr_send_error(kr, conn, id, "too-many", "at most %d terminals", KR_MAX_PTY);
        return;
    }
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char *name = NULL;
    int s = -1;
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || (name = ptsname(m)) == NULL ||
        (s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
        int e = errno;
        if (m >= 0)
            close(m);
        kr_send_error(kr, conn, id, "failed", "pty: %s", strerror(e));
        return;
    }
    struct winsize ws = {.ws_row = (unsigned short)(rows > 0 ? rows : 24),
                         .ws_col = (unsigned short)(cols > 0 ? cols : 80)};
    ioctl(s, TIOCSWINSZ, &ws);
    const char *sh = pick_shell();
    char *argv[] = {(char *)sh, "-l", NULL};
    if (getenv("TERM") == NULL)
        setenv("TERM", "xterm-256color", 0);
    int fds[5] = {s, s, s, -1, -1};
    pid_t pid = kr_spawn(argv, kr->conf.home, fds, s);
    close(s);
    if (pid < 0) {
        close(m);
        kr_send_error(kr, conn, id, "failed", "pty: %s", strerror(-pid));
        return;
    }
    kr_nonblock(m);
    struct kr_pty *p = calloc(1, sizeof *p);
    p->num = ++next_num;
    p->master = m;
    p->pid = pid;
    p->conn = conn;
    kr->pty[slot] = p;
    kr_watch_add(kr, m, POLLIN, pty_cb, p);
    kr_send(kr, conn, json_pack("{s:O?,s:b,s:i,s:s}", "id", id, "ok", 1, "pty", p->num, "shell",
                                sh));
}

void kr_pty_request(struct kr *kr, unsigned conn, json_t *id, const char *op, json_t *req)
{
    int num = 0, cols = 0, rows = 0;
    const char *data = NULL;
    size_t dlen = 0;
    json_error_t jerr;
    if (json_unpack_ex(req, &jerr, 0, "{s?i,s?i,s?i,s?s%}", "pty", &num, "cols", &cols, "rows",
                       &rows, "data_b64", &data, &dlen) < 0) {
        kr_send_error(kr, conn, id, "invalid-request", "pty.%s: %s", op, jerr.text);
        return;
    }
    if (strcmp(op, "open") == 0) {
        pty_open(kr, conn, id, cols, rows);
        return;
    }
    struct kr_pty *p = pty_find(kr, num);
    if (p == NULL) {
        /* Without a number, the caller's only terminal is meant. */
        for (int i = 0; i < KR_MAX_PTY && num == 0; i++)
            if (kr->pty[i] != NULL && kr->pty[i]->conn == conn)
                p = kr->pty[i];
    }
    if (p == NULL || p->master < 0) {
        kr_send_error(kr, conn, id, "not-found", "no terminal %d", num);
        return;
    }
    if (strcmp(op, "input") == 0) {
        unsigned char *buf;
        size_t len;
        if (data == NULL || kr_b64_decode(data, dlen, &buf, &len) < 0) {
            kr_send_error(kr, conn, id, "invalid-request", "pty.input needs data_b64");
            return;
        }
        /* Keystrokes are small; a terminal that cannot take them now drops them. */
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(p->master, buf + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        free(buf);
        if (p->paused && kr_conn_backlog(kr, p->conn) < KR_PTY_BACKLOG / 2) {
            p->paused = 0;
            kr_watch_events(kr, p->master, POLLIN);
        }
        if (id != NULL)
            kr_send(kr, conn, json_pack("{s:O,s:b}", "id", id, "ok", 1));
    } else if (strcmp(op, "resize") == 0) {
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        int ok = rows > 0 && cols > 0 && ioctl(p->master, TIOCSWINSZ, &ws) == 0;
        if (!ok)
            kr_send_error(kr, conn, id, "invalid-request", "pty.resize needs cols and rows > 0");
        else
            kr_send(kr, conn, json_pack("{s:O?,s:b}", "id", id, "ok", 1));
    } else if (strcmp(op, "close") == 0) {
        kill(-p->pid, SIGHUP);
        kr_send(kr, conn, json_pack("{s:O?,s:b}", "id", id, "ok", 1));
    } else {
        kr_send_error(kr, conn, id, "unknown-op", "unknown op \"pty.%s\"", op);
    }
}

int kr_pty_child_exited(struct kr *kr, pid_t pid, int status)
{
    for (int i = 0; i < KR_MAX_PTY; i++) {
        struct kr_pty *p = kr->pty[i];
        if (p == NULL || p->pid != pid)
            continue;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        /* Send what the shell printed last before saying it ended (pid still set, so an
         * EOF here only closes the master). */
        for (int k = 0; k < 64 && p->master >= 0; k++)
            pty_cb(kr, p->master, POLLIN, p);
        p->pid = 0;
        pty_free(kr, p, code);
        return 1;
    }
    return 0;
}

void kr_pty_conn_closed(struct kr *kr, unsigned conn)
{
    for (int i = 0; i < KR_MAX_PTY; i++)
        if (kr->pty[i] != NULL && kr->pty[i]->conn == conn && kr->pty[i]->pid > 0)
            kill(-kr->pty[i]->pid, SIGHUP);
}

void kr_pty_shutdown(struct kr *kr)
{
    for (int i = 0; i < KR_MAX_PTY; i++) {
        struct kr_pty *p = kr->pty[i];
        if (p == NULL)
            continue;
        if (p->pid > 0)
            kill(-p->pid, SIGKILL);
        kr->pty[i] = NULL;
        if (p->master >= 0)
            kr_watch_del(kr, p->master);
        kr_close(&p->master);
        free(p);
    }
}
