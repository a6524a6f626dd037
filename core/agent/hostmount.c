/* SPDX-License-Identifier: Apache-2.0 */
/* Host mounts for the manager's /folders/_/mounts (docs/agent-protocol.md): POST /rpc/mounts
 * mounts a filesystem at <mount_prefix>/<name>, POST /rpc/umounts takes it away again and
 * GET /rpc/mounts lists what is mounted under the prefix. mount(8) and umount(8) run with
 * uv_spawn (no shell) and a timeout; one operation runs at a time, later ones wait in line,
 * so checks, the command and the fstab edit of one request never interleave with another's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "config/daemon.h"
#include "log/log.h"
#include "util/file.h"
#include "util/hostmount.h"
#include "util/strerror.h"

#define HM_GRACE_MS 5000
#define HM_ERR_MAX 2048
#define HM_QUEUE_MAX 64 /* operations running or waiting; more are answered 503 */
#define HM_MOUNT_BIN "/bin/mount"
#define HM_UMOUNT_BIN "/bin/umount"

typedef struct hm_job {
    struct hm_job *next;
    baic_http_req_t *req;
    json_t *body; /* owns the strings in p */
    baic_hostmount_req_t p;
    int mount;
    char target[PATH_MAX];
    int made_dir;
    uv_process_t proc;
    uv_pipe_t err;
    uv_timer_t timer;
    int open; /* handles not closed yet */
    int exited, eof, killed;
    int64_t code;
    int sig;
    char errbuf[HM_ERR_MAX];
    size_t errlen;
} hm_job_t;

static struct {
    agent_t *a;
    char prefix[PATH_MAX];
    char fstab[PATH_MAX];
    hm_job_t *head, *tail; /* head runs, the rest wait */
    size_t queued;
    uint64_t timeout_ms; /* [agent] mount_timeout_ms */
} hm;

static void bad_params(baic_http_req_t *req, const char *msg) {
    baic_http_respond_problem(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                              msg, NULL);
}

/* ---- /proc/self/mountinfo ---- */

/* Undoes the octal escapes (\040 ...) of mountinfo and fstab fields, in place. */
static void unescape(char *s) {
    char *o = s;
    for (char *i = s; *i;) {
        if (i[0] == '\\' && i[1] >= '0' && i[1] <= '3' && i[2] >= '0' && i[2] <= '7' &&
            i[3] >= '0' && i[3] <= '7') {
            *o++ = (char)((i[1] - '0') * 64 + (i[2] - '0') * 8 + (i[3] - '0'));
            i += 4;
        } else {
            *o++ = *i++;
        }
    }
    *o = '\0';
}

/* Calls fn for every mount: (mountpoint, source, fstype). */
static int mountinfo_each(void (*fn)(const char *mnt, const char *dev, const char *fs, void *arg),
                          void *arg) {
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL, *field[16];
        int n = 0, dash = -1;
        for (char *t = strtok_r(line, " \n", &save); t && n < 16;
             t = strtok_r(NULL, " \n", &save)) {
            if (dash < 0 && n >= 6 && strcmp(t, "-") == 0)
                dash = n;
            field[n++] = t;
        }
        if (dash < 0 || n < dash + 3)
            continue;
        unescape(field[4]);
        unescape(field[dash + 2]);
        fn(field[4], field[dash + 2], field[dash + 1], arg);
    }
    free(line);
    fclose(f);
    return 0;
}

typedef struct {
    const char *path;
    size_t len;
    json_t *list;
    int found;
} scan_t;

static void scan_under(const char *mnt, const char *dev, const char *fs, void *arg) {
    scan_t *s = arg;
    if (strncmp(mnt, s->path, s->len) == 0 && (mnt[s->len] == '/' || mnt[s->len] == '\0'))
        json_array_append_new(s->list, json_pack("[s, s, s]", mnt, dev, fs));
}

static void scan_exact(const char *mnt, const char *dev, const char *fs, void *arg) {
    (void)dev;
    (void)fs;
    scan_t *s = arg;
    if (strcmp(mnt, s->path) == 0)
        s->found = 1;
}

/* The prefix with symbolic links resolved (as the kernel lists mount points); -errno. */
static int prefix_real(char *out) {
    return realpath(hm.prefix, out) ? 0 : -errno;
}

/* [[mountpoint, device, fstype], ...] of the mounts under the prefix ([] before it exists). */
static json_t *mounts_under_prefix(void) {
    char real[PATH_MAX];
    scan_t s = {.list = json_array()};
    if (prefix_real(real) != 0)
        return s.list;
    s.path = real;
    s.len = strlen(real);
    mountinfo_each(scan_under, &s);
    return s.list;
}

static int is_mountpoint(const char *path) {
    scan_t s = {.path = path};
    mountinfo_each(scan_exact, &s);
    return s.found;
}

/* ---- fstab ---- */

/* A field as fstab writes it: whitespace and backslashes octal-escaped. */
static void fstab_escape(const char *in, char *out, size_t len) {
    size_t o = 0;
    for (; *in && o + 5 < len; in++) {
        if (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\\') {
            snprintf(out + o, len - o, "\\%03o", (unsigned char)*in);
            o += 4;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

/* Whether an fstab line's second field (its mount point) is target (escaped form). */
static int fstab_line_is(const char *line, size_t n, const char *target) {
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == n || line[i] == '#')
        return 0;
    while (i < n && line[i] != ' ' && line[i] != '\t')
        i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t s = i;
    while (i < n && line[i] != ' ' && line[i] != '\t')
        i++;
    return i - s == strlen(target) && i > s && memcmp(line + s, target, i - s) == 0;
}

/* Drops every line for target and, with add, appends add; the new file replaces the old
 * one by rename (a temporary file next to it). Untouched when nothing changes. 0 or -1 with
 * msg. */
static int fstab_edit(const char *target, const char *add, char *msg, size_t len) {
    char etarget[PATH_MAX * 4], fstab[PATH_MAX];
    fstab_escape(target, etarget, sizeof etarget);
    /* A symbolic link stays one: the file it points to is the one replaced. */
    if (realpath(hm.fstab, fstab) == NULL)
        snprintf(fstab, sizeof fstab, "%s", hm.fstab);
    FILE *f = fopen(fstab, "re");
    if (f == NULL && errno != ENOENT) {
        snprintf(msg, len, "cannot read %.512s: %s", fstab, strerror(errno));
        return -1;
    }
    mode_t mode = 0644;
    struct stat st;
    if (f && fstat(fileno(f), &st) == 0)
        mode = st.st_mode & 07777;
    char *out = NULL, *line = NULL;
    size_t outlen = 0, cap = 0;
    FILE *mem = open_memstream(&out, &outlen);
    if (mem == NULL) {
        if (f)
            fclose(f);
        snprintf(msg, len, "out of memory");
        return -1;
    }
    int dropped = 0, had_nl = 1;
    ssize_t n;
    while (f && (n = getline(&line, &cap, f)) > 0) {
        if (fstab_line_is(line, (size_t)n, etarget)) {
            dropped++;
            continue;
        }
        fwrite(line, 1, (size_t)n, mem);
        had_nl = line[n - 1] == '\n';
    }
    free(line);
    if (f)
        fclose(f);
    if (add) {
        if (!had_nl)
            fputc('\n', mem);
        fprintf(mem, "%s\n", add);
    }
    if (fclose(mem) != 0) {
        free(out);
        snprintf(msg, len, "out of memory");
        return -1;
    }
    if (!add && dropped == 0) {
        free(out);
        return 0;
    }
    int rc = baic_file_replace(fstab, out, outlen, mode);
    if (rc != 0)
        snprintf(msg, len, "cannot write %.512s: %s", fstab, strerror(-rc));
    free(out);
    return rc;
}

/* ---- one operation ---- */

static void job_start_next(void);

static void job_answer(hm_job_t *j, int ok, const char *message) {
    if (j->req == NULL) /* answered early (a command stuck after SIGKILL) */
        return;
    baic_http_respond_json(j->req, 200,
                           json_pack("{s:b, s:o, s:s}", "success", ok, "mounts",
                                     mounts_under_prefix(), "message", message));
    j->req = NULL;
}

static void job_free(hm_job_t *j) {
    if (j->req)
        job_answer(j, 0, "the operation was not finished");
    hm.head = j->next;
    if (hm.head == NULL)
        hm.tail = NULL;
    hm.queued--;
    json_decref(j->body);
    free(j);
    job_start_next();
}

/* The command's stderr as one line (or what happened to it). */
static void job_reason(hm_job_t *j, const char *cmd, char *out, size_t len) {
    while (j->errlen > 0 && (j->errbuf[j->errlen - 1] == '\n' || j->errbuf[j->errlen - 1] == ' '))
        j->errlen--;
    j->errbuf[j->errlen] = '\0';
    /* One line: each run of whitespace (mount's indented second lines) becomes one space. */
    size_t o = 0;
    for (size_t i = 0; i < j->errlen; i++) {
        int sp = j->errbuf[i] == ' ' || j->errbuf[i] == '\n' || j->errbuf[i] == '\r' ||
                 j->errbuf[i] == '\t';
        if (sp && (o == 0 || j->errbuf[o - 1] == ' '))
            continue;
        j->errbuf[o++] = sp ? ' ' : j->errbuf[i];
    }
    j->errlen = o;
    j->errbuf[o] = '\0';
    if (j->killed)
        snprintf(out, len, "%s did not finish within %llu ms and was killed%s%s", cmd,
                 (unsigned long long)hm.timeout_ms, j->errlen ? ": " : "", j->errbuf);
    else if (j->errlen)
        snprintf(out, len, "%s", j->errbuf);
    else if (j->sig)
        snprintf(out, len, "%s was killed by signal %d", cmd, j->sig);
    else
        snprintf(out, len, "%s exited with status %lld", cmd, (long long)j->code);
}

static void job_complete(hm_job_t *j) {
    int ok = j->exited && j->code == 0 && j->sig == 0 && !j->killed;
    char msg[HM_ERR_MAX + 256], why[HM_ERR_MAX + 128];
    if (j->mount) {
        if (!ok) {
            job_reason(j, "mount", msg, sizeof msg);
            if (j->made_dir && !is_mountpoint(j->target))
                rmdir(j->target);
            BAIC_LOG_W("host_mount_failed", "target=%s type=%s source=%s msg=\"%s\"", j->target,
                       j->p.fs_type, j->p.fs_location, msg);
        } else {
            snprintf(msg, sizeof msg, "mounted %.600s at %.600s", j->p.fs_location, j->target);
            if (j->p.edit_fstab) {
                char src[BAIC_HOSTMOUNT_LOCATION_MAX * 4 + 1], tgt[PATH_MAX * 4];
                fstab_escape(j->p.fs_location, src, sizeof src);
                fstab_escape(j->target, tgt, sizeof tgt);
                size_t need = strlen(src) + strlen(tgt) + strlen(j->p.fs_type) +
                              (j->p.options ? strlen(j->p.options) : 8) + 8;
                char *line = malloc(need);
                if (line)
                    snprintf(line, need, "%s %s %s %s 0 0", src, tgt, j->p.fs_type,
                             j->p.options ? j->p.options : "defaults");
                if (line == NULL || fstab_edit(j->target, line, why, sizeof why) != 0) {
                    ok = 0;
                    snprintf(msg, sizeof msg, "mounted, but the fstab was not changed: %s",
                             line ? why : "out of memory");
                } else {
                    snprintf(msg, sizeof msg, "mounted %.600s at %.600s and added it to %.600s",
                             j->p.fs_location, j->target, hm.fstab);
                }
                free(line);
            }
            BAIC_LOG_I("host_mounted", "target=%s type=%s source=%s fstab=%d", j->target,
                       j->p.fs_type, j->p.fs_location, j->p.edit_fstab);
        }
    } else {
        if (!ok) {
            job_reason(j, "umount", msg, sizeof msg);
            BAIC_LOG_W("host_umount_failed", "target=%s msg=\"%s\"", j->target, msg);
        } else {
            int n = snprintf(msg, sizeof msg, "unmounted %.1024s", j->target);
            if (rmdir(j->target) != 0 && errno != ENOENT && n > 0 && (size_t)n < sizeof msg)
                snprintf(msg + n, sizeof msg - (size_t)n, " (its directory stays: %s)",
                         strerror(errno));
            if (j->p.edit_fstab) {
                if (fstab_edit(j->target, NULL, why, sizeof why) != 0) {
                    ok = 0;
                    snprintf(msg, sizeof msg, "unmounted, but the fstab was not changed: %s", why);
                }
            }
            BAIC_LOG_I("host_unmounted", "target=%s fstab=%d", j->target, j->p.edit_fstab);
        }
    }
    job_answer(j, ok, msg);
}

static void on_closed(uv_handle_t *h) {
    hm_job_t *j = h->data;
    if (--j->open > 0)
        return;
    job_complete(j);
    job_free(j);
}

static void on_timeout(uv_timer_t *t);

static void maybe_done(hm_job_t *j) {
    if (!j->exited || !j->eof || uv_is_closing((uv_handle_t *)&j->timer))
        return;
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, on_closed);
}

static void on_proc_exit(uv_process_t *p, int64_t code, int sig) {
    hm_job_t *j = p->data;
    j->exited = 1;
    j->code = code;
    j->sig = sig;
    uv_close((uv_handle_t *)p, on_closed);
    if (!j->eof && !j->killed) /* whatever still holds its stderr gets a little time */
        uv_timer_start(&j->timer, on_timeout, HM_GRACE_MS, 0);
    maybe_done(j);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf) {
    hm_job_t *j = h->data;
    (void)want;
    static char sink[512];
    if (j->errlen + 1 < sizeof j->errbuf)
        *buf = uv_buf_init(j->errbuf + j->errlen, (unsigned)(sizeof j->errbuf - 1 - j->errlen));
    else
        *buf = uv_buf_init(sink, sizeof sink); /* over the cap: read and dropped */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    hm_job_t *j = s->data;
    if (n > 0 && buf->base == j->errbuf + j->errlen)
        j->errlen += (size_t)n;
    if (n < 0) {
        j->eof = 1;
        uv_close((uv_handle_t *)s, on_closed);
        maybe_done(j);
    }
}

static void on_timeout(uv_timer_t *t) {
    hm_job_t *j = t->data;
    if (!j->exited) {
        if (j->killed && j->req) {
            /* Killed and still there (stuck in the kernel, as a hard NFS mount can be):
             * the caller hears now; later operations wait until it is gone. */
            BAIC_LOG_W("host_mount_stuck", "target=%s", j->target);
            job_answer(j, 0,
                       "the command did not finish in time and does not exit after "
                       "SIGKILL; later mount operations wait for it");
        }
        j->killed = 1;
        /* The whole group: mount(8) runs helpers (mount.nfs) that would stay behind. */
        if (kill(-j->proc.pid, SIGKILL) != 0)
            uv_process_kill(&j->proc, SIGKILL);
        uv_timer_start(t, on_timeout, HM_GRACE_MS, 0);
        return;
    }
    if (!j->eof) { /* a child of the command keeps the pipe open */
        j->eof = 1;
        uv_close((uv_handle_t *)&j->err, on_closed);
    }
    maybe_done(j);
}

/* Runs argv; the answer follows from on_closed. Returns 0 or a negative code (nothing
 * started, nothing to close). */
static int job_spawn(hm_job_t *j, char **argv) {
    uv_loop_t *loop = hm.a->uv;
    int rc = uv_pipe_init(loop, &j->err, 0);
    if (rc != 0)
        return rc;
    j->err.data = j;
    uv_timer_init(loop, &j->timer);
    j->timer.data = j;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&j->err},
    };
    uv_process_options_t opt = {
        .exit_cb = on_proc_exit,
        .file = argv[0],
        .args = argv,
        .stdio_count = 3,
        .stdio = stdio,
        .flags = UV_PROCESS_DETACHED, /* a process group of its own, killed as one */
    };
    j->proc.data = j;
    rc = uv_spawn(loop, &j->proc, &opt);
    if (rc != 0) {
        /* The process handle is closed too (libuv wants it), so three closes follow. */
        j->open = 3;
        j->exited = 1;
        j->code = -1;
        int n =
            snprintf(j->errbuf, sizeof j->errbuf, "cannot run %s: %s", argv[0], uv_strerror(rc));
        j->errlen = n > 0 ? (size_t)n < sizeof j->errbuf ? (size_t)n : sizeof j->errbuf - 1 : 0;
        uv_close((uv_handle_t *)&j->proc, on_closed);
        uv_close((uv_handle_t *)&j->err, on_closed);
        uv_close((uv_handle_t *)&j->timer, on_closed);
        return 0;
    }
    j->open = 3;
    uv_read_start((uv_stream_t *)&j->err, on_alloc, on_read);
    uv_timer_start(&j->timer, on_timeout, hm.timeout_ms, 0);
    return 0;
}

static int mkdir_p(const char *path) {
    char buf[PATH_MAX];
    int n = snprintf(buf, sizeof buf, "%s", path);
    if (n <= 0 || (size_t)n >= sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -errno;
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

/* Checks and starts the head job; answers it at once when there is nothing to run. */
static void job_run(hm_job_t *j) {
    char real[PATH_MAX], msg[PATH_MAX + 128];
    if (hm.a->closing) { /* waiting ones are not started any more */
        snprintf(msg, sizeof msg, "the agent is shutting down");
        goto answer;
    }
    int rc = j->mount ? mkdir_p(hm.prefix) : 0;
    if (rc == 0)
        rc = prefix_real(real);
    if (rc != 0) {
        snprintf(msg, sizeof msg, "%s the mount prefix %.1024s: %s",
                 j->mount ? "cannot make" : "no such directory as", hm.prefix, strerror(-rc));
        goto answer;
    }
    int n = snprintf(j->target, sizeof j->target, "%s/%s", real, j->p.name);
    if (n < 0 || (size_t)n >= sizeof j->target) {
        snprintf(msg, sizeof msg, "the mount point's path is too long");
        goto answer;
    }
    int mounted = is_mountpoint(j->target);
    if (!j->mount) {
        if (!mounted) {
            snprintf(msg, sizeof msg, "not mounted: %.1024s", j->target);
            goto answer;
        }
        char *argv[] = {HM_UMOUNT_BIN, "--", j->target, NULL};
        if ((rc = job_spawn(j, argv)) == 0)
            return;
        snprintf(msg, sizeof msg, "cannot run umount: %s", uv_strerror(rc));
        goto answer;
    }
    if (mounted) {
        snprintf(msg, sizeof msg, "already mounted: %.1024s", j->target);
        goto answer;
    }
    if (mkdir(j->target, 0755) == 0) {
        j->made_dir = 1;
    } else {
        struct stat st;
        if (errno != EEXIST || lstat(j->target, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(msg, sizeof msg, "%.1024s is not a directory that can be mounted on",
                     j->target);
            goto answer;
        }
    }
    char *argv[9];
    int k = 0;
    argv[k++] = HM_MOUNT_BIN;
    argv[k++] = "-t";
    argv[k++] = (char *)j->p.fs_type;
    if (j->p.options) {
        argv[k++] = "-o";
        argv[k++] = (char *)j->p.options;
    }
    argv[k++] = "--";
    argv[k++] = (char *)j->p.fs_location;
    argv[k++] = j->target;
    argv[k] = NULL;
    if ((rc = job_spawn(j, argv)) == 0)
        return;
    if (j->made_dir)
        rmdir(j->target);
    snprintf(msg, sizeof msg, "cannot run mount: %s", uv_strerror(rc));
answer:
    job_answer(j, 0, msg);
    job_free(j);
}

static void job_start_next(void) {
    if (hm.head != NULL)
        job_run(hm.head);
}

static void h_mount_common(baic_http_req_t *req, int mount) {
    size_t len = 0;
    const char *text = baic_http_body(req, &len);
    json_error_t jerr;
    json_t *body = json_loadb(text ? text : "", len, 0, &jerr);
    char msg[256];
    hm_job_t *j = NULL;
    if (body == NULL || !json_is_object(body)) {
        bad_params(req, body ? "body must be a JSON object" : jerr.text);
        json_decref(body);
        return;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        json_decref(body);
        baic_http_respond_problem(req, 500, "internal-server-error", "Something went wrong.",
                                  "out of memory", NULL);
        return;
    }
    j->body = body;
    j->req = req;
    j->mount = mount;
    if (baic_hostmount_parse(body, mount, &j->p, msg, sizeof msg) != 0) {
        bad_params(req, msg);
        goto drop;
    }
    if (j->p.fstab_path && strcmp(j->p.fstab_path, hm.fstab) != 0) {
        snprintf(msg, sizeof msg, "fstab_path must be this agent's fstab (%.200s)", hm.fstab);
        bad_params(req, msg);
        goto drop;
    }
    if (hm.queued >= HM_QUEUE_MAX) {
        baic_http_add_header(req, "Retry-After", "5");
        baic_http_respond_problem(req, 503, "server-unavailable",
                                  "Too many host mount operations are waiting.", NULL, NULL);
        goto drop;
    }
    hm.queued++;
    if (hm.tail)
        hm.tail->next = j;
    else
        hm.head = j;
    hm.tail = j;
    if (hm.head == j)
        job_run(j);
    return;
drop:
    json_decref(body);
    free(j);
}

static void h_mount(baic_http_req_t *req, void *arg) {
    (void)arg;
    h_mount_common(req, 1);
}

static void h_umount(baic_http_req_t *req, void *arg) {
    (void)arg;
    h_mount_common(req, 0);
}

static void h_list(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_respond_json(
        req, 200,
        json_pack("{s:b, s:o, s:s}", "success", 1, "mounts", mounts_under_prefix(), "message", ""));
}

/* An absolute form of a configured path (relative ones count from the working directory). */
static int absolute(const char *in, char *out, size_t len) {
    char cwd[PATH_MAX];
    int n;
    if (in[0] == '/')
        n = snprintf(out, len, "%s", in);
    else if (getcwd(cwd, sizeof cwd) != NULL)
        n = snprintf(out, len, "%s/%s", cwd, in);
    else
        return -1;
    if (n <= 0 || (size_t)n >= len)
        return -1;
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

int agent_hostmount_routes(agent_t *a) {
    const char *prefix = NULL, *fstab = NULL;
    long long timeout_ms = 0;
    char def[PATH_MAX];
    if (baic_cfg_str(a->config, "agent.mount_prefix", NULL, &prefix) ||
        baic_cfg_str(a->config, "agent.fstab_path", "/etc/fstab", &fstab) ||
        baic_cfg_int(a->config, "agent.mount_timeout_ms", 30000, &timeout_ms))
        return BAIC_ECONFIG_TYPE;
    if (timeout_ms < 100 || timeout_ms > 600000) {
        BAIC_LOG_E("config_error", "msg=\"[agent] mount_timeout_ms must be 100..600000\"");
        return BAIC_ECONFIG_TYPE;
    }
    hm.timeout_ms = (uint64_t)timeout_ms;
    int n = snprintf(def, sizeof def, "%s/mnt", a->data_dir);
    if (prefix == NULL && (n < 0 || (size_t)n >= sizeof def))
        return BAIC_ECONFIG_TYPE;
    if (absolute(prefix ? prefix : def, hm.prefix, sizeof hm.prefix) != 0 ||
        absolute(fstab, hm.fstab, sizeof hm.fstab) != 0 || strcmp(hm.prefix, "/") == 0) {
        BAIC_LOG_E("config_error", "msg=\"[agent] mount_prefix and fstab_path must be paths "
                                   "(mount_prefix not /)\"");
        return BAIC_ECONFIG_TYPE;
    }
    hm.a = a;
    int rc;
    if ((rc = baic_http_route(a->http, "POST", "/rpc/mounts", h_mount, a, 0)) != 0 ||
        (rc = baic_http_route(a->http, "POST", "/rpc/umounts", h_umount, a, 0)) != 0 ||
        (rc = baic_http_route(a->http, "GET", "/rpc/mounts", h_list, a, 0)) != 0)
        return rc;
    return 0;
}
