/* SPDX-License-Identifier: Apache-2.0 */
/* Client uploads: the tus 1.0.0 subset aiotusclient uses (PATCH, HEAD, OPTIONS), streamed to disk with quota checks. */
#define _GNU_SOURCE /* splice */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <baic/errors.h>

#include "log/log.h"
#include "proxy.h"
#include "util/hex.h"

/* A ring of 1 MiB buffers: the socket fills one while the thread pool writes another.
 * Writes of 1 MiB reach the page cache several times faster here than 4 MiB ones, and
 * four of them keep reading going while a write waits for a pool thread. */
#define UP_BUF (1u << 20)
#define UP_NBUF 4
#define UP_SLACK (256u << 10)
#define UP_MIN_READ (64u << 10)    /* less room than this: read into the server's buffer */
#define UP_DIR ".upload"
/* Plain bodies skip user space: the loop splices the socket into a ring of pipes and each
 * pipe is spliced into the file (one copy, socket pages to the page cache; where the
 * writes run: up_write_here). */
#define UP_NPIPE 4
#define UP_PIPE (1u << 20)

typedef struct {
    int r, w;                      /* cap 0: not open */
    size_t fill, cap;
    int full;                      /* takes no more (set when fill reaches cap): written next */
} up_pipe_t;

typedef struct sp_upload {
    struct sp_upload *next;        /* sp->uploads */
    sp_t *sp;
    baic_http_req_t *req;
    sp_volume_t *v;
    sp_token_t tok;
    char scope[160];               /* quota scope of the folder */
    char tmp[64];                  /* ".upload/<hex>" inside the folder */
    int64_t size;                  /* Upload-Length (token) */
    int64_t offset;                /* where this PATCH starts */
    int64_t recv;                  /* body bytes taken so far */
    int64_t limit, allowance;      /* quota; allowance -1 = unlimited */
    int64_t wpos;                  /* file position of the next write */
    int fd;
    char *buf[UP_NBUF];
    size_t fill[UP_NBUF], cap[UP_NBUF];
    int cur, wr, writing;          /* buffer being filled; oldest with data; a write in flight */
    uv_fs_t wreq;
    uint64_t wt0;                  /* when the buffer write was submitted */
    up_pipe_t pipe[UP_NPIPE];
    int pcur, pwr;                 /* pipe being filled; oldest with data */
    uv_work_t work;                /* a pipe's write */
    ssize_t wres;
    uint64_t wns;                  /* how long the last write took */
    int sink_wait;                 /* the sink waits for the buffers' bytes to be written */
    int sink_off;                  /* splicing failed before a byte: buffers only */
    int64_t spliced;
    int op_pending, paused, body_ended, aborted, failed, req_done, remove_tmp, finalizing;
    int in_drive, drive_again;     /* up_drive is running; it runs again when done */
    int room_ok;                   /* the volume had room for the rest (counted as promised) */
    unsigned npauses;              /* reading stopped for the disk (logged: a slow volume shows) */
    uint64_t t0;
} sp_upload_t;

static void up_drive(sp_upload_t *u);

/* ---- helpers ---- */

static void tus_headers(baic_http_req_t *req) {
    baic_http_add_header(req, "Tus-Resumable", "1.0.0");
}

static void up_unlink(sp_upload_t *u) {
    for (sp_upload_t **pp = &u->sp->uploads; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            return;
        }
    }
}

static void up_free(sp_upload_t *u) {
    if (!u->req_done)
        baic_http_req_release(u->req); /* aborted (or dropped): nothing to answer */
    u->req_done = 1;
    up_unlink(u);
    for (int i = 0; i < UP_NBUF; i++)
        free(u->buf[i]);
    for (int i = 0; i < UP_NPIPE; i++)
        if (u->pipe[i].cap > 0) {
            close(u->pipe[i].r);
            close(u->pipe[i].w);
        }
    json_decref(u->tok.claims);
    free(u);
}

/* The temp file's name: a digest of what the token names, so a retry finds it again. */
static int tmp_name(const sp_token_t *t, char *out, size_t n) {
    unsigned char d[32];
    unsigned int dl = 0;
    char in[8192];
    int len = snprintf(in, sizeof in, "%s\n%s\n%s\n%s", t->volume, t->vfid, t->relpath,
                       t->session ? t->session : "");
    if (len < 0 || (size_t)len >= sizeof in ||
        EVP_Digest(in, (size_t)len, d, &dl, EVP_sha256(), NULL) != 1)
        return -1;
    char h[33];
    baic_hex(d, 16, h);
    int r = snprintf(out, n, "%s/%s", UP_DIR, h);
    return r > 0 && (size_t)r < n ? 0 : -1;
}

/* Backend.AI folder ids are "<quota-scope>/<folder>"; a bare id has the default scope. */
static void scope_of(const char *vfid, char *out, size_t n) {
    const char *slash = strchr(vfid, '/');
    size_t l = slash ? (size_t)(slash - vfid) : 0;
    if (l == 0 || l >= n)
        snprintf(out, n, "_");
    else {
        memcpy(out, vfid, l);
        out[l] = '\0';
    }
}

/* ---- ending ---- */

static void up_tmp_removed(void *arg, int status) {
    sp_upload_t *u = arg;
    if (status != 0 && status != BAIC_ENOT_FOUND)
        BAIC_LOG_W("upload_tmp_left", "vfid=%s tmp=%s error=%d", u->tok.vfid, u->tmp, status);
    up_free(u);
}

/* Nothing is in flight any more: close the file, remove the temp file if asked, free. */
static void up_close_out(sp_upload_t *u) {
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    if (u->remove_tmp && !u->sp->closing) {
        const char *p[1] = {u->tmp};
        if (u->v->ops->delete_files(u->v->plugin->state, u->v->vol, u->tok.vfid, p, 1, 0,
                                    up_tmp_removed, u) == 0)
            return;
    }
    up_free(u);
}

static void up_fail(sp_upload_t *u, int status, const char *slug, const char *title,
                    const char *msg, int remove_tmp) {
    if (u->failed)
        return;
    u->failed = 1;
    u->remove_tmp = remove_tmp;
    BAIC_LOG_W("upload_failed", "volume=%s vfid=%s relpath=%s status=%d msg=\"%s\"",
               u->v->name, u->tok.vfid, u->tok.relpath, status, msg);
    if (!u->req_done) {
        u->req_done = 1;
        tus_headers(u->req);
        baic_http_respond_problem(u->req, status, slug, title, msg, NULL);
    }
    up_drive(u);
}

static void up_fail_code(sp_upload_t *u, int code, const char *what, int remove_tmp) {
    if (u->failed)
        return;
    u->failed = 1;
    u->remove_tmp = remove_tmp;
    BAIC_LOG_W("upload_failed", "volume=%s vfid=%s relpath=%s what=%s error=%d", u->v->name,
               u->tok.vfid, u->tok.relpath, what, code);
    if (!u->req_done) {
        u->req_done = 1;
        tus_headers(u->req);
        sp_fail_code(u->req, code, what);
    }
    up_drive(u);
}

static void respond_offset(sp_upload_t *u, int64_t off) {
    char v[32];
    snprintf(v, sizeof v, "%" PRId64, off);
    tus_headers(u->req);
    baic_http_add_header(u->req, "Upload-Offset", v);
    u->req_done = 1;
    baic_http_respond(u->req, 204, NULL, NULL, 0);
}

/* ---- moving the finished file into place ---- */

static void fin_renamed(void *arg, int status) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    if (status != 0) {
        up_fail_code(u, status, "rename into place", 1);
        return;
    }
    BAIC_LOG_I("upload_done",
               "volume=%s vfid=%s relpath=%s bytes=%" PRId64 " spliced=%" PRId64 " ms=%llu pauses=%u",
               u->v->name, u->tok.vfid, u->tok.relpath, u->size, u->spliced,
               (unsigned long long)((uv_hrtime() - u->t0) / 1000000), u->npauses);
    if (!u->req_done)
        respond_offset(u, u->size);
    up_close_out(u);
}

static void fin_rename(sp_upload_t *u) {
    int rc = u->v->ops->rename(u->v->plugin->state, u->v->vol, u->tok.vfid, u->tmp,
                               u->tok.relpath, fin_renamed, u);
    if (rc != 0) {
        up_fail_code(u, rc, "rename into place", 1);
        return;
    }
    u->op_pending = 1;
}

static void fin_old_removed(void *arg, int status) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    if (status != 0 && status != BAIC_ENOT_FOUND) {
        up_fail_code(u, status, "replace existing file", 1);
        return;
    }
    fin_rename(u);
}

static void fin_stat(void *arg, int status, const baic_file_stat_t *st) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    if (status == BAIC_ENOT_FOUND) {
        fin_rename(u);
        return;
    }
    if (status != 0) {
        up_fail_code(u, status, "stat target", 1);
        return;
    }
    if (st->type == BAIC_FILE_DIRECTORY || st->type == BAIC_FILE_SYMLINK) {
        /* Checked at the start too; this catches one that appeared meanwhile. */
        if (st->type == BAIC_FILE_SYMLINK)
            up_fail(u, 403, "generic-forbidden", "Forbidden operation.",
                    "the target path is a symlink", 1);
        else
            up_fail(u, 409, "storage/already-exists", "Already exists.",
                    "the target path is a directory", 1);
        return;
    }
    /* An upload replaces the file, as the official proxy does. */
    const char *p[1] = {u->tok.relpath};
    int rc = u->v->ops->delete_files(u->v->plugin->state, u->v->vol, u->tok.vfid, p, 1, 0,
                                     fin_old_removed, u);
    if (rc != 0) {
        up_fail_code(u, rc, "replace existing file", 1);
        return;
    }
    u->op_pending = 1;
}

static void fin_parent(void *arg, int status) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    if (status != 0 && status != BAIC_EEXISTS) {
        up_fail_code(u, status, "create parent directories", 1);
        return;
    }
    int rc = u->v->ops->stat(u->v->plugin->state, u->v->vol, u->tok.vfid, u->tok.relpath, fin_stat,
                             u);
    if (rc != 0) {
        up_fail_code(u, rc, "stat target", 1);
        return;
    }
    u->op_pending = 1;
}

static void up_finalize(sp_upload_t *u) {
    u->finalizing = 1;
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    const char *slash = strrchr(u->tok.relpath, '/');
    if (slash == NULL) {
        fin_parent(u, 0);
        return;
    }
    size_t n = (size_t)(slash - u->tok.relpath);
    char *parent = malloc(n + 1);
    if (parent == NULL) {
        up_fail_code(u, -ENOMEM, "finalize", 1);
        return;
    }
    memcpy(parent, u->tok.relpath, n);
    parent[n] = '\0';
    int rc = u->v->ops->mkdir(u->v->plugin->state, u->v->vol, u->tok.vfid, parent, 1, fin_parent,
                              u);
    free(parent);
    if (rc != 0) {
        up_fail_code(u, rc, "create parent directories", 1);
        return;
    }
    u->op_pending = 1;
}

/* ---- the body, buffered and written ---- */

/* Where an upload's writes run. A write of up to a MiB into the page cache takes a fraction
 * of a millisecond: on the loop thread that costs less than handing it to the pool (the
 * hand-off needs both cores of a small machine). A volume whose writes are slow (a network
 * file system, a disk in writeback) must not stall the loop: writes start on the pool,
 * move to the loop after a run of fast ones, and go back after one slow one. */
#define UP_FAST_NS (5u * 1000000u)
#define UP_FAST_RUN 16u

static void vol_wrote(sp_upload_t *u, uint64_t ns) {
    sp_volume_t *v = u->v;
    if (ns <= UP_FAST_NS) {
        if (!v->write_on_loop && ++v->fast_writes >= UP_FAST_RUN) {
            v->write_on_loop = 1;
            BAIC_LOG_I("upload_writes_on_loop", "volume=%s", v->name);
        }
        return;
    }
    v->fast_writes = 0;
    if (v->write_on_loop) {
        v->write_on_loop = 0;
        BAIC_LOG_W("upload_writes_on_pool", "volume=%s write_ms=%llu", v->name,
                   (unsigned long long)(ns / 1000000));
    }
}

/* On the loop only for a lone upload: concurrent ones spread their copies over the pool's
 * threads (and so over the cores), which one loop thread cannot. */
static int up_write_here(const sp_upload_t *u) {
    return u->v->write_on_loop && u->sp->uploads == u && u->next == NULL;
}

static void up_write_failed(sp_upload_t *u, ssize_t res) {
    char msg[160];
    snprintf(msg, sizeof msg, "writing the file failed: %s", uv_strerror((int)res));
    if (res == UV_ENOSPC || res == -EDQUOT)
        up_fail(u, 412, "quota-exceeded", "Quota exceeded.", msg, 1);
    else
        up_fail(u, 500, "storage-proxy-error", "Storage proxy error.", msg, 0);
    up_drive(u);
}

static void up_wrote(uv_fs_t *fr) {
    sp_upload_t *u = fr->data;
    ssize_t res = fr->result;
    uv_fs_req_cleanup(fr);
    int i = u->wr;
    u->writing = 0;
    if (res < 0) {
        up_write_failed(u, res);
        return;
    }
    /* From submission: the pool's queueing counts too, but a full queue is slow writing. */
    vol_wrote(u, uv_hrtime() - u->wt0);
    u->wpos += res;
    if ((size_t)res < u->fill[i]) {
        /* Short write: the rest moves to the front and goes next. */
        memmove(u->buf[i], u->buf[i] + res, u->fill[i] - (size_t)res);
        u->fill[i] -= (size_t)res;
    } else {
        u->fill[i] = 0;
        u->wr = (i + 1) % UP_NBUF;
    }
    up_drive(u);
}

/* ---- the body through pipes ---- */

/* Up to UP_MIN_READ bytes from the pipe to the file at off through a buffer, for a file
 * system that cannot splice; how many, or -errno. */
static ssize_t pipe_copy(int pr, int fd, int64_t off, size_t len, char *b) {
    ssize_t n;
    do
        n = read(pr, b, len < UP_MIN_READ ? len : UP_MIN_READ);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n < 0 ? -errno : -EIO;
    for (ssize_t w = 0; w < n;) {
        ssize_t k = pwrite(fd, b + w, (size_t)(n - w), off + w);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO; /* the pipe's bytes are lost: the upload fails */
        w += k;
    }
    return n;
}

/* Pool thread (or the loop, see up_write_here): len bytes from the pipe to the file at
 * off; len or -errno. */
static ssize_t pipe_to_file(int pr, int fd, int64_t off, size_t len) {
    size_t done = 0;
    char *b = NULL;
    while (done < len) {
        ssize_t n;
        if (b != NULL) {
            n = pipe_copy(pr, fd, off + (int64_t)done, len - done, b);
        } else {
            loff_t o = off + (loff_t)done;
            n = splice(pr, NULL, fd, &o, len - done, SPLICE_F_MOVE);
            if (n < 0 && (errno == EINTR ||
                          (errno == EINVAL && (b = malloc(UP_MIN_READ)) != NULL)))
                continue; /* interrupted; or no splice into this file system */
            if (n <= 0)
                n = n < 0 ? -errno : -EIO;
        }
        if (n < 0) {
            free(b);
            return n;
        }
        done += (size_t)n;
    }
    free(b);
    return (ssize_t)done;
}

static void pipe_work(uv_work_t *w) {
    sp_upload_t *u = w->data;
    up_pipe_t *p = &u->pipe[u->pwr];
    uint64_t t = uv_hrtime();
    u->wres = pipe_to_file(p->r, u->fd, u->wpos, p->fill);
    u->wns = uv_hrtime() - t;
}

static void pipe_wrote(uv_work_t *w, int status) {
    sp_upload_t *u = w->data;
    up_pipe_t *p = &u->pipe[u->pwr];
    u->writing = 0;
    ssize_t res = status < 0 ? status : u->wres;
    if (res < 0) {
        up_write_failed(u, res);
        return;
    }
    vol_wrote(u, u->wns);
    u->wpos += res;
    p->fill = 0;
    p->full = 0;
    u->pwr = (u->pwr + 1) % UP_NPIPE;
    up_drive(u);
}

static int pipes_open(sp_upload_t *u) {
    for (int i = 0; i < UP_NPIPE; i++) {
        up_pipe_t *p = &u->pipe[i];
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
            return -errno;
        p->r = fds[0];
        p->w = fds[1];
        /* Past /proc/sys/fs/pipe-max-size (unprivileged) the pipe keeps its size. */
        (void)fcntl(p->w, F_SETPIPE_SZ, (int)UP_PIPE);
        int sz = fcntl(p->w, F_GETPIPE_SZ);
        p->cap = sz > 0 ? (size_t)sz : 65536;
    }
    return 0;
}

static int bufs_hold_data(const sp_upload_t *u) {
    for (int i = 0; i < UP_NBUF; i++)
        if (u->fill[i] > 0)
            return 1;
    return 0;
}

static void up_pause(sp_upload_t *u) {
    if (!u->paused) {
        u->paused = 1;
        u->npauses++;
        baic_http_body_pause(u->req);
    }
}

/* The pipe being filled takes no more and the next one still holds data. */
static int pipes_full(const sp_upload_t *u) {
    return u->pipe[u->pcur].full && u->pipe[(u->pcur + 1) % UP_NPIPE].fill > 0;
}

/* Room for more of the body: in the buffer being filled, and in a pipe. */
static int up_room(const sp_upload_t *u) {
    if (u->fill[u->cur] >= UP_BUF || pipes_full(u))
        return 0;
    return !u->sink_wait || (!bufs_hold_data(u) && !u->writing);
}

/* The checks every piece of the body passes; 0, or the upload failed. */
static int up_admit(sp_upload_t *u, size_t len) {
    if (u->offset + u->recv + (int64_t)len > u->size) {
        up_fail(u, 413, "invalid-api-params", "Request entity too large.",
                "the body goes past Upload-Length (the token's size)", 0);
        return -1;
    }
    if (u->allowance >= 0 && u->recv + (int64_t)len > u->allowance) {
        up_fail(u, 412, "quota-exceeded", "Quota exceeded.",
                "the upload would pass the quota scope's limit", 1);
        return -1;
    }
    return 0;
}

/* The server's sink (baic_http_body_sink): socket to pipe, no copy. */
static ssize_t up_sink(baic_http_req_t *req, int fd, size_t max, void *arg) {
    sp_upload_t *u = arg;
    (void)req;
    if (u->failed || u->aborted || u->sink_off)
        return UV_ENOTSUP;
    if (bufs_hold_data(u) || u->fd < 0) {
        /* Bytes that came through the buffers are older: they reach the file first. */
        u->sink_wait = 1;
        up_pause(u);
        up_drive(u);
        return UV_EAGAIN;
    }
    u->sink_wait = 0;
    if (u->pipe[0].cap == 0) {
        int rc = pipes_open(u);
        if (rc != 0) {
            BAIC_LOG_W("upload_no_pipes", "vfid=%s error=%d", u->tok.vfid, rc);
            u->sink_off = 1;
            return UV_ENOTSUP;
        }
    }
    if (pipes_full(u)) {
        up_pause(u); /* every pipe holds data: the disk is behind */
        return UV_EAGAIN;
    }
    if (u->pipe[u->pcur].full)
        u->pcur = (u->pcur + 1) % UP_NPIPE;
    up_pipe_t *p = &u->pipe[u->pcur];
    size_t len = p->cap - p->fill;
    if (len > max)
        len = max;
    if (up_admit(u, len) != 0)
        return UV_ENOTSUP;
    ssize_t n = splice(fd, NULL, p->w, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
        p->fill += (size_t)n;
        u->recv += n;
        u->spliced += n;
        if (p->fill >= p->cap) {
            p->full = 1;
            up_drive(u);
        }
        return n;
    }
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EINTR) {
        /* The pipe has no free slot (bytes wait in the socket): it goes to the file now.
         * An empty socket leaves the pipe filling; the body's end or a cut flushes it. */
        int avail = 0;
        if (p->fill > 0 && (ioctl(fd, FIONREAD, &avail) != 0 || avail > 0)) {
            p->full = 1;
            up_drive(u); /* the socket stays readable: the next call takes the next pipe */
        }
        return UV_EAGAIN;
    }
    if (u->spliced == 0 && (errno == EINVAL || errno == ENOSYS)) {
        u->sink_off = 1;
        return UV_ENOTSUP;
    }
    return -errno;
}

static int pipe_submit(sp_upload_t *u) {
    u->work.data = u;
    u->writing = 1;
    if (up_write_here(u)) {
        pipe_work(&u->work);
        pipe_wrote(&u->work, 0);
        return 0;
    }
    int rc = uv_queue_work(u->sp->uv, &u->work, pipe_work, pipe_wrote);
    if (rc != 0)
        u->writing = 0;
    return rc;
}

static int up_submit(sp_upload_t *u) {
    int i = u->wr;
    uv_buf_t b = uv_buf_init(u->buf[i], (unsigned)u->fill[i]);
    u->wreq.data = u;
    u->writing = 1;
    u->wt0 = uv_hrtime();
    if (up_write_here(u)) {
        uv_fs_write(u->sp->uv, &u->wreq, u->fd, &b, 1, u->wpos, NULL); /* no callback: now */
        up_wrote(&u->wreq);
        return 0;
    }
    int rc = uv_fs_write(u->sp->uv, &u->wreq, u->fd, &b, 1, u->wpos, up_wrote);
    if (rc != 0)
        u->writing = 0;
    return rc;
}

/* Buffers from wr to cur (ring order) hold data, the others are empty; one write at a
 * time keeps the file's bytes in order. */
static int up_drive_once(sp_upload_t *u) {
    if (u->writing || u->op_pending)
        return 0;
    if (u->failed) {
        up_close_out(u);
        return 1;
    }
    if (u->finalizing || u->fd < 0)
        return 0; /* still opening: bytes wait in the buffers */
    int flush = u->body_ended || u->aborted || u->sink_wait;
    up_pipe_t *pw = &u->pipe[u->pwr];
    if (pw->fill > 0) {
        /* Pipes first: buffers that hold data now got it after them. */
        if (u->pwr != u->pcur || pw->full || flush || bufs_hold_data(u)) {
            if (u->pwr == u->pcur)
                u->pcur = (u->pcur + 1) % UP_NPIPE;
            if (pipe_submit(u) != 0) {
                up_fail(u, 500, "storage-proxy-error", "Storage proxy error.", "write failed", 0);
                return 0;
            }
        }
    } else if (u->fill[u->wr] > 0 && (u->wr != u->cur || flush || u->fill[u->cur] >= UP_BUF)) {
        if (u->wr == u->cur)
            u->cur = (u->cur + 1) % UP_NBUF; /* the others are empty: filling moves on */
        if (up_submit(u) != 0) {
            up_fail(u, 500, "storage-proxy-error", "Storage proxy error.", "write failed", 0);
            return 0;
        }
    }
    if (u->fill[u->cur] >= UP_BUF && u->fill[(u->cur + 1) % UP_NBUF] == 0)
        u->cur = (u->cur + 1) % UP_NBUF; /* a write freed the next buffer */
    if (u->paused && !u->aborted && up_room(u)) {
        u->paused = 0;
        baic_http_body_resume(u->req);
    }
    if (u->writing || u->drive_again) /* in flight, or written on the loop just now */
        return 0;
    if (u->aborted) {
        /* What arrived before the cut is on disk: a HEAD reports it and PATCH resumes. */
        BAIC_LOG_I("upload_cut", "volume=%s vfid=%s relpath=%s offset=%" PRId64, u->v->name,
                   u->tok.vfid, u->tok.relpath, u->wpos);
        up_close_out(u);
        return 1;
    }
    if (u->body_ended) {
        if (u->wpos == u->size)
            up_finalize(u);
        else if (!u->req_done) {
            respond_offset(u, u->wpos);
            up_close_out(u);
            return 1;
        }
    }
    return 0;
}

/* Completions of writes made on the loop thread, and failures, call up_drive from inside
 * it: those calls only ask for another round, so the upload is freed (up_close_out) by the
 * outermost call only, and nothing uses it afterwards. */
static void up_drive(sp_upload_t *u) {
    if (u->in_drive) {
        u->drive_again = 1;
        return;
    }
    u->in_drive = 1;
    do {
        u->drive_again = 0;
        if (up_drive_once(u))
            return; /* freed */
    } while (u->drive_again);
    u->in_drive = 0;
}

static int up_data(baic_http_req_t *req, const void *data, size_t len, void *arg) {
    sp_upload_t *u = arg;
    (void)req;
    if (u->failed || u->aborted || up_admit(u, len) != 0)
        return 0;
    int i = u->cur;
    if (u->fill[i] + len > u->cap[i]) {
        size_t ncap = u->cap[i] ? u->cap[i] : UP_BUF + UP_SLACK;
        while (ncap < u->fill[i] + len)
            ncap *= 2;
        char *nb = realloc(u->buf[i], ncap);
        if (nb == NULL) {
            up_fail(u, 500, "internal-server-error", "Internal server error.", "out of memory", 0);
            return 0;
        }
        u->buf[i] = nb;
        u->cap[i] = ncap;
    }
    /* Read straight into this buffer (up_getbuf): the bytes are already in place. A chunked
     * body's pieces sit a little further on, in the same buffer or the previous one. */
    if ((const char *)data != u->buf[i] + u->fill[i])
        memmove(u->buf[i] + u->fill[i], data, len);
    u->fill[i] += len;
    u->recv += (int64_t)len;
    if (u->fill[i] >= UP_BUF) {
        int next = (i + 1) % UP_NBUF;
        if (u->fill[next] == 0)
            u->cur = next;
        else
            up_pause(u); /* every buffer holds data: the disk is behind */
        up_drive(u);
    }
    return 0;
}

/* Where the next socket read goes: the free end of the buffer being filled, so the body
 * crosses user space once (socket to buffer, buffer to file) in reads of up to a buffer. */
static void up_getbuf(baic_http_req_t *req, uv_buf_t *buf, void *arg) {
    sp_upload_t *u = arg;
    (void)req;
    int i = u->cur;
    if (u->failed || u->aborted || u->fill[i] >= UP_BUF)
        return; /* the server's own buffer; up_data copies */
    if (u->buf[i] == NULL) {
        if ((u->buf[i] = malloc(UP_BUF + UP_SLACK)) == NULL)
            return;
        u->cap[i] = UP_BUF + UP_SLACK;
    }
    size_t room = u->cap[i] - u->fill[i];
    if (room >= UP_MIN_READ)
        *buf = uv_buf_init(u->buf[i] + u->fill[i], (unsigned)room);
}

static void up_end(baic_http_req_t *req, void *arg) {
    sp_upload_t *u = arg;
    (void)req;
    u->body_ended = 1;
    up_drive(u);
}

static void up_abort(baic_http_req_t *req, void *arg) {
    sp_upload_t *u = arg;
    (void)req;
    u->aborted = 1;
    up_drive(u);
}

/* ---- PATCH set-up: open, offset, quota ---- */

static void up_usage(void *arg, int status, int64_t used, int64_t files) {
    sp_upload_t *u = arg;
    (void)files;
    u->op_pending = 0;
    if (u->aborted) {
        up_close_out(u);
        return;
    }
    if (status != 0) {
        up_fail_code(u, status, "quota scope usage", 0);
        return;
    }
    int64_t need = u->size - u->offset;
    if (used + need > u->limit) {
        char msg[200];
        snprintf(msg, sizeof msg, "the upload needs %" PRId64 " bytes; the quota scope uses %" PRId64
                 " of %" PRId64, need, used, u->limit);
        up_fail(u, 412, "quota-exceeded", "Quota exceeded.", msg, 1);
        return;
    }
    u->allowance = u->limit - used;
    up_drive(u);
}

static void up_quota(void *arg, int status, int64_t limit) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    if (u->aborted) {
        up_close_out(u);
        return;
    }
    if (status != 0 || limit <= 0) {
        up_drive(u); /* no quota on this scope */
        return;
    }
    u->limit = limit;
    int rc = u->v->ops->usage(u->v->plugin->state, u->v->vol, u->scope, up_usage, u);
    if (rc != 0) {
        up_fail_code(u, rc, "quota scope usage", 0);
        return;
    }
    u->op_pending = 1;
}

static void up_opened(void *arg, int status, int fd) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    u->fd = fd;
    if (status != 0) {
        up_fail_code(u, status, "open", 0);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        up_fail_code(u, -errno, "stat", 0);
        return;
    }
    if (st.st_size != u->offset) {
        if (u->offset != 0) {
            char v[32], msg[128];
            snprintf(v, sizeof v, "%" PRId64, (int64_t)st.st_size);
            snprintf(msg, sizeof msg, "Upload-Offset must be %" PRId64, (int64_t)st.st_size);
            if (!u->req_done)
                baic_http_add_header(u->req, "Upload-Offset", v);
            up_fail(u, 409, "invalid-api-params", "Upload offset mismatch.", msg, 0);
            return;
        }
        /* The client starts over at 0 (aiotusclient always does): drop the old bytes. */
        if (ftruncate(fd, 0) != 0) {
            up_fail_code(u, -errno, "truncate", 0);
            return;
        }
    }
    u->wpos = u->offset;
    if (u->aborted) {
        up_drive(u);
        return;
    }
    if ((u->v->caps & BAIC_STORAGE_CAP_QUOTA) && u->v->ops->quota_get != NULL &&
        u->v->ops->quota_get(u->v->plugin->state, u->v->vol, u->scope, up_quota, u) == 0) {
        u->op_pending = 1;
        return;
    }
    up_drive(u);
}

static void up_dir_ready(void *arg, int status) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    if (u->aborted) {
        up_close_out(u);
        return;
    }
    if (status != 0 && status != BAIC_EEXISTS) {
        up_fail_code(u, status, "upload directory", 0);
        return;
    }
    int rc = u->v->ops->open(u->v->plugin->state, u->v->vol, u->tok.vfid, u->tmp,
                             BAIC_OPEN_WRITE | BAIC_OPEN_CREATE, up_opened, u);
    if (rc != 0) {
        up_fail_code(u, rc, "open", 0);
        return;
    }
    u->op_pending = 1;
}

static void up_open_tmp(sp_upload_t *u) {
    int rc = u->v->ops->mkdir(u->v->plugin->state, u->v->vol, u->tok.vfid, UP_DIR, 1,
                              up_dir_ready, u);
    if (rc != 0) {
        up_fail_code(u, rc, "upload directory", 0);
        return;
    }
    u->op_pending = 1;
}

/* Bytes other uploads on this volume still mean to write: room they were promised. */
static int64_t vol_reserved(const sp_upload_t *u) {
    int64_t r = 0;
    for (const sp_upload_t *x = u->sp->uploads; x != NULL; x = x->next)
        if (x != u && x->v == u->v && x->room_ok && !x->failed && !x->aborted) {
            int64_t done = x->wpos > x->offset ? x->wpos : x->offset; /* on the disk already */
            if (x->size > done)
                r += x->size - done;
        }
    return r;
}

/* The volume's room, asked before the temp file is made: a capped volume (or a full
 * disk) refuses an upload that would not fit now, not after its bytes went past the cap. */
static void up_vol_usage(void *arg, int status, int64_t capacity, int64_t used) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    if (u->aborted) {
        up_close_out(u);
        return;
    }
    if (status == 0 && capacity > 0) {
        int64_t need = u->size - u->offset, reserved = vol_reserved(u);
        if (used + reserved + need > capacity) {
            char msg[240];
            snprintf(msg, sizeof msg, "the upload needs %" PRId64 " bytes; the volume holds %" PRId64
                     " of %" PRId64 " (%" PRId64 " promised to other uploads)", need, used,
                     capacity, reserved);
            up_fail(u, 412, "quota-exceeded", "Quota exceeded.", msg, 1);
            return;
        }
    } else if (status != 0) {
        /* No figures: the plugin's own check at open and ENOSPC/EDQUOT still apply. */
        BAIC_LOG_W("upload_volume_usage", "volume=%s error=%d", u->v->name, status);
    }
    up_open_tmp(u);
}

static void up_target_checked(void *arg, int status, const baic_file_stat_t *st) {
    sp_upload_t *u = arg;
    u->op_pending = 0;
    if (u->aborted) {
        up_close_out(u);
        return;
    }
    if (status != 0 && status != BAIC_ENOT_FOUND) {
        up_fail_code(u, status, "upload target", 0);
        return;
    }
    if (status == 0 && st->type == BAIC_FILE_SYMLINK) {
        up_fail(u, 403, "generic-forbidden", "Forbidden operation.", "the target path is a symlink",
                0);
        return;
    }
    if (status == 0 && st->type == BAIC_FILE_DIRECTORY) {
        up_fail(u, 409, "storage/already-exists", "Already exists.",
                "the target path is a directory", 0);
        return;
    }
    /* Counted as promised from now on: two uploads checking at once each see the other. */
    u->room_ok = 1;
    if ((u->v->caps & BAIC_STORAGE_CAP_METRIC) && u->v->ops->volume_usage != NULL &&
        u->size > u->offset &&
        u->v->ops->volume_usage(u->v->plugin->state, u->v->vol, up_vol_usage, u) == 0) {
        u->op_pending = 1;
        return;
    }
    up_open_tmp(u);
}

/* Token, volume, offset and headers; 0 and *out, or the request is answered. */
static int up_prepare(sp_t *sp, baic_http_req_t *req, sp_upload_t **out) {
    const char *tr = baic_http_header(req, "Tus-Resumable");
    if (tr != NULL && strcmp(tr, "1.0.0") != 0) {
        tus_headers(req);
        baic_http_add_header(req, "Tus-Version", "1.0.0");
        sp_fail(req, 412, "invalid-api-params", "Unsupported tus version.", "Tus-Resumable: 1.0.0");
        return -1;
    }
    sp_upload_t *u = calloc(1, sizeof *u);
    if (u == NULL) {
        sp_fail(req, 500, "internal-server-error", "Internal server error.", "out of memory");
        return -1;
    }
    u->sp = sp;
    u->req = req;
    u->fd = -1;
    u->allowance = -1;
    if (sp_token_check(sp, req, "upload", &u->tok) != 0) {
        free(u);
        return -1;
    }
    u->v = sp_volume_find(sp, u->tok.volume);
    if (u->v == NULL || u->tok.size < 0 || u->tok.size > sp->max_upload ||
        tmp_name(&u->tok, u->tmp, sizeof u->tmp) != 0) {
        if (u->v == NULL)
            sp_fail(req, 404, "object-not-found", "No such volume.", "volume %s is not served here",
                    u->tok.volume);
        else
            sp_fail(req, 403, "generic-forbidden", "Forbidden operation.",
                    "the token's size is missing or above the limit");
        json_decref(u->tok.claims);
        free(u);
        return -1;
    }
    u->size = u->tok.size;
    scope_of(u->tok.vfid, u->scope, sizeof u->scope);
    *out = u;
    return 0;
}

static void on_patch(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    sp_upload_t *u;
    if (up_prepare(sp, req, &u) != 0)
        return;
    const char *ct = baic_http_header(req, "Content-Type");
    const char *off = baic_http_header(req, "Upload-Offset");
    char *end = NULL;
    long long o = off ? strtoll(off, &end, 10) : -1;
    const char *cl = baic_http_header(req, "Content-Length");
    char *cend = NULL;
    long long clen = cl ? strtoll(cl, &cend, 10) : -1;
    const char *bad = NULL;
    int st = 400;
    if (ct != NULL && strcmp(ct, "application/offset+octet-stream") != 0) {
        bad = "Content-Type must be application/offset+octet-stream";
        st = 415;
    } else if (off == NULL || *end != '\0' || o < 0) {
        bad = "Upload-Offset must be a non-negative integer";
    } else if (o > u->size) {
        bad = "Upload-Offset is past Upload-Length";
        st = 409;
    } else if (cl != NULL && (*cend != '\0' || clen < 0 || clen > u->size - o)) {
        /* Known before a byte is read: refused now, with nothing stored. */
        bad = clen < 0 || *cend != '\0' ? "Content-Length must be a non-negative integer"
                                         : "the body goes past Upload-Length (the token's size)";
        st = clen < 0 || *cend != '\0' ? 400 : 413;
    }
    for (sp_upload_t *x = sp->uploads; bad == NULL && x != NULL; x = x->next)
        if (x->v == u->v && strcmp(x->tmp, u->tmp) == 0 && strcmp(x->tok.vfid, u->tok.vfid) == 0) {
            bad = "another PATCH of this upload is in progress";
            st = 409;
        }
    if (bad != NULL) {
        tus_headers(req);
        sp_fail(req, st, "invalid-api-params", "Invalid upload request.", "%s", bad);
        json_decref(u->tok.claims);
        free(u);
        return;
    }
    u->offset = o;
    u->t0 = uv_hrtime();
    u->next = sp->uploads;
    sp->uploads = u;
    /* The body may start arriving now; it waits in the buffer until the file is open. */
    baic_http_body_read(req, up_data, up_end, u);
    baic_http_body_buffers(req, up_getbuf, u);
    baic_http_body_sink(req, up_sink, u);
    baic_http_body_pause(req);
    u->paused = 1;
    baic_http_req_on_abort(req, up_abort, u);
    /* The target is checked before a byte is stored: a path that leaves the folder or
     * names a symlink or a directory is refused now, not after the whole body. */
    int rc = u->v->ops->stat(u->v->plugin->state, u->v->vol, u->tok.vfid, u->tok.relpath,
                             up_target_checked, u);
    if (rc != 0) {
        up_fail_code(u, rc, "upload target", 0);
        return;
    }
    u->op_pending = 1;
}

/* ---- HEAD and OPTIONS ---- */

static void head_opened(void *arg, int status, int fd) {
    sp_upload_t *u = arg;
    struct stat st;
    int64_t off = 0;
    if (status == 0 && fstat(fd, &st) == 0)
        off = st.st_size;
    if (fd >= 0)
        close(fd);
    if (u->aborted) {
        up_free(u);
        return;
    }
    if (status != 0 && status != BAIC_ENOT_FOUND) {
        u->req_done = 1;
        sp_fail_code(u->req, status, "upload offset");
        up_free(u);
        return;
    }
    char v[32], l[32];
    snprintf(v, sizeof v, "%" PRId64, off);
    snprintf(l, sizeof l, "%" PRId64, u->size);
    tus_headers(u->req);
    baic_http_add_header(u->req, "Upload-Offset", v);
    baic_http_add_header(u->req, "Upload-Length", l);
    baic_http_add_header(u->req, "Cache-Control", "no-store");
    u->req_done = 1;
    baic_http_respond(u->req, 200, NULL, NULL, 0);
    up_free(u);
}

static void head_abort(baic_http_req_t *req, void *arg) {
    sp_upload_t *u = arg;
    (void)req;
    u->aborted = 1;
}

static void on_head(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    sp_upload_t *u;
    if (up_prepare(sp, req, &u) != 0)
        return;
    baic_http_req_on_abort(req, head_abort, u);
    int rc = u->v->ops->open(u->v->plugin->state, u->v->vol, u->tok.vfid, u->tmp, BAIC_OPEN_READ,
                             head_opened, u);
    if (rc != 0) {
        u->req_done = 1;
        sp_fail_code(req, rc, "upload offset");
        up_free(u);
    }
}

static void on_options(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    char max[32];
    snprintf(max, sizeof max, "%" PRId64, sp->max_upload);
    tus_headers(req);
    baic_http_add_header(req, "Tus-Version", "1.0.0");
    baic_http_add_header(req, "Tus-Max-Size", max);
    baic_http_add_header(req, "Tus-Extension", "");
    baic_http_add_header(req, "Access-Control-Allow-Methods", "HEAD, PATCH, OPTIONS");
    baic_http_add_header(req, "Access-Control-Allow-Headers",
                         "Tus-Resumable, Upload-Offset, Upload-Length, Content-Type");
    baic_http_add_header(req, "Access-Control-Expose-Headers",
                         "Tus-Resumable, Upload-Offset, Upload-Length");
    baic_http_respond(req, 204, NULL, NULL, 0);
}

int sp_upload_init(sp_t *sp) {
    int rc = baic_http_route_stream(sp->cli_http, "PATCH", "/upload", on_patch, sp);
    if (rc == 0)
        rc = baic_http_route(sp->cli_http, "HEAD", "/upload", on_head, sp, 0);
    if (rc == 0)
        rc = baic_http_route(sp->cli_http, "OPTIONS", "/upload", on_options, sp, 0);
    return rc;
}
