/* SPDX-License-Identifier: Apache-2.0 */
/* A directory streamed as a zip: libarchive on its own thread, chunks handed to the loop with backpressure. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "log/log.h"
#include "proxy.h"

#define AR_CHUNK (256u << 10)
#define AR_MAX_QUEUED 8
#define AR_MAX_DEPTH 64

typedef struct ar_chunk {
    struct ar_chunk *next;
    struct ar *owner;              /* for the write callback */
    size_t len;
    char data[];
} ar_chunk_t;

typedef struct ar {
    sp_t *sp;
    baic_http_req_t *req;
    int dirfd;
    char *top;                     /* name of the top directory inside the zip */
    uv_thread_t thread;
    uv_async_t async;
    uv_mutex_t mu;
    uv_cond_t cv;
    /* shared with the thread, under mu */
    ar_chunk_t *qhead, *qtail;     /* produced, not yet handed to HTTP */
    int queued;                    /* produced and not yet written */
    int cancel, thread_done, status;
    /* loop thread only */
    ar_chunk_t *cur;               /* the thread's chunk being filled */
    int writes, aborted, ended;
} ar_t;

/* ---- the archiver thread ---- */

static int ar_push(ar_t *a, ar_chunk_t *c) {
    uv_mutex_lock(&a->mu);
    while (a->queued >= AR_MAX_QUEUED && !a->cancel)
        uv_cond_wait(&a->cv, &a->mu);
    int cancel = a->cancel;
    if (!cancel) {
        c->next = NULL;
        if (a->qtail)
            a->qtail->next = c;
        else
            a->qhead = c;
        a->qtail = c;
        a->queued++;
    }
    uv_mutex_unlock(&a->mu);
    if (cancel) {
        free(c);
        return -1;
    }
    uv_async_send(&a->async);
    return 0;
}

static la_ssize_t ar_write(struct archive *ar, void *arg, const void *buf, size_t len) {
    ar_t *a = arg;
    size_t done = 0;
    (void)ar;
    while (done < len) {
        if (a->cur == NULL) {
            a->cur = malloc(sizeof(ar_chunk_t) + AR_CHUNK);
            if (a->cur == NULL)
                return -1;
            a->cur->len = 0;
        }
        size_t n = len - done;
        if (n > AR_CHUNK - a->cur->len)
            n = AR_CHUNK - a->cur->len;
        memcpy(a->cur->data + a->cur->len, (const char *)buf + done, n);
        a->cur->len += n;
        done += n;
        if (a->cur->len == AR_CHUNK) {
            ar_chunk_t *c = a->cur;
            a->cur = NULL;
            if (ar_push(a, c) != 0)
                return -1;
        }
    }
    return (la_ssize_t)len;
}

static int ar_close(struct archive *ar, void *arg) {
    ar_t *a = arg;
    (void)ar;
    if (a->cur != NULL && a->cur->len > 0) {
        ar_chunk_t *c = a->cur;
        a->cur = NULL;
        return ar_push(a, c) == 0 ? ARCHIVE_OK : ARCHIVE_FATAL;
    }
    free(a->cur);
    a->cur = NULL;
    return ARCHIVE_OK;
}

/* buf (64 KiB) outlives the archive: zlib may still point into the last block written. */
static int ar_add_dir(ar_t *a, struct archive *ar, int dirfd, const char *prefix, int depth,
                      char *buf) {
    if (depth > AR_MAX_DEPTH)
        return -ELOOP;
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        /* Never follows a link: the zip only holds what is inside the folder. */
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            continue;
        size_t plen = strlen(prefix) + strlen(e->d_name) + 2;
        char *path = malloc(plen);
        if (path == NULL) {
            rc = -ENOMEM;
            break;
        }
        snprintf(path, plen, "%s/%s", prefix, e->d_name);
        int cfd = openat(dirfd, e->d_name,
                         (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0) | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            free(path);
            continue;
        }
        struct archive_entry *ent = archive_entry_new();
        archive_entry_set_pathname(ent, path);
        archive_entry_set_mode(ent, st.st_mode);
        archive_entry_set_mtime(ent, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        archive_entry_set_size(ent, S_ISREG(st.st_mode) ? st.st_size : 0);
        if (archive_write_header(ar, ent) != ARCHIVE_OK) {
            rc = -EIO;
        } else if (S_ISREG(st.st_mode)) {
            ssize_t n;
            int64_t left = st.st_size;
            while (left > 0 && (n = read(cfd, buf, 65536)) > 0) {
                if (n > left)
                    n = (ssize_t)left; /* grew meanwhile: the header promised st_size */
                if (archive_write_data(ar, buf, (size_t)n) < 0) {
                    rc = -EIO;
                    break;
                }
                left -= n;
            }
        }
        archive_entry_free(ent);
        if (rc == 0 && S_ISDIR(st.st_mode))
            rc = ar_add_dir(a, ar, cfd, path, depth + 1, buf);
        close(cfd);
        free(path);
    }
    closedir(d);
    return rc;
}

static void ar_thread(void *arg) {
    ar_t *a = arg;
    struct archive *ar = archive_write_new();
    char *buf = malloc(65536);
    int rc = -ENOMEM;
    if (ar != NULL && buf != NULL) {
        archive_write_set_format_zip(ar);
        archive_write_set_bytes_per_block(ar, 0); /* no padding: hand each write on */
        rc = archive_write_open(ar, a, NULL, ar_write, ar_close) == ARCHIVE_OK ? 0 : -EIO;
        if (rc == 0)
            rc = ar_add_dir(a, ar, a->dirfd, a->top, 0, buf);
        /* Closed even after a failure: that is what frees the compressor's state (its
         * last flush fails fast on a cancelled stream, while buf still exists). */
        if (archive_write_close(ar) != ARCHIVE_OK && rc == 0)
            rc = -EIO;
    }
    if (ar != NULL)
        archive_write_free(ar);
    free(buf);
    free(a->cur); /* a chunk the failure left half filled */
    a->cur = NULL;
    uv_mutex_lock(&a->mu);
    a->thread_done = 1;
    a->status = rc;
    uv_mutex_unlock(&a->mu);
    uv_async_send(&a->async);
}

/* ---- the loop side ---- */

static void ar_closed(uv_handle_t *h) {
    ar_t *a = h->data;
    ar_chunk_t *c, *n;
    for (c = a->qhead; c != NULL; c = n) {
        n = c->next;
        free(c);
    }
    uv_mutex_destroy(&a->mu);
    uv_cond_destroy(&a->cv);
    close(a->dirfd);
    free(a->top);
    free(a);
}

static void ar_pump(ar_t *a);

static void ar_maybe_done(ar_t *a) {
    uv_mutex_lock(&a->mu);
    int done = a->thread_done;
    uv_mutex_unlock(&a->mu);
    if (!done || a->writes > 0)
        return;
    uv_thread_join(&a->thread);
    if (!a->ended) {
        a->ended = 1;
        if (a->aborted || a->status != 0) {
            if (a->status != 0)
                BAIC_LOG_W("archive_failed", "dir=%s error=%d", a->top, a->status);
            baic_http_req_release(a->req); /* a zip cut short must not look complete */
        } else {
            baic_http_stream_end(a->req);
        }
    }
    uv_close((uv_handle_t *)&a->async, ar_closed);
}

static void ar_written(baic_http_req_t *req, int status, void *arg) {
    ar_chunk_t *c = arg;
    ar_t *a = c->owner;
    (void)req;
    free(c);
    a->writes--;
    uv_mutex_lock(&a->mu);
    a->queued--;
    if (status < 0)
        a->cancel = 1;
    uv_cond_signal(&a->cv);
    uv_mutex_unlock(&a->mu);
    ar_pump(a);
}

static void ar_pump(ar_t *a) {
    for (;;) {
        uv_mutex_lock(&a->mu);
        ar_chunk_t *c = a->qhead;
        if (c != NULL) {
            a->qhead = c->next;
            if (a->qhead == NULL)
                a->qtail = NULL;
        }
        uv_mutex_unlock(&a->mu);
        if (c == NULL)
            break;
        if (a->aborted || a->ended) {
            free(c);
            uv_mutex_lock(&a->mu);
            a->queued--;
            uv_cond_signal(&a->cv);
            uv_mutex_unlock(&a->mu);
            continue;
        }
        c->owner = a;
        a->writes++;
        if (baic_http_stream_write(a->req, c->data, c->len, ar_written, c) != 0) {
            a->writes--;
            free(c);
            uv_mutex_lock(&a->mu);
            a->queued--;
            a->cancel = 1;
            uv_cond_signal(&a->cv);
            uv_mutex_unlock(&a->mu);
        }
    }
    ar_maybe_done(a);
}

static void ar_async(uv_async_t *h) { ar_pump(h->data); }

static void ar_abort(baic_http_req_t *req, void *arg) {
    ar_t *a = arg;
    (void)req;
    a->aborted = 1;
    uv_mutex_lock(&a->mu);
    a->cancel = 1;
    uv_cond_signal(&a->cv);
    uv_mutex_unlock(&a->mu);
    ar_pump(a);
}

int sp_archive_start(sp_t *sp, baic_http_req_t *req, int dirfd, const char *name) {
    ar_t *a = calloc(1, sizeof *a);
    const char *base = strrchr(name, '/');
    base = base && base[1] ? base + 1 : name;
    if (*base == '\0')
        base = "folder";
    if (a == NULL || (a->top = strdup(base)) == NULL) {
        free(a);
        close(dirfd);
        return sp_fail(req, 500, "internal-server-error", "Internal server error.", "no memory");
    }
    a->sp = sp;
    a->req = req;
    a->dirfd = dirfd;
    uv_mutex_init(&a->mu);
    uv_cond_init(&a->cv);
    uv_async_init(sp->uv, &a->async, ar_async);
    a->async.data = a;
    char cd[600];
    int n = snprintf(cd, sizeof cd, "attachment;filename=\"%s.zip\"", a->top);
    if (n > 0 && (size_t)n < sizeof cd && strpbrk(a->top, "\"\\") == NULL)
        baic_http_add_header(req, "Content-Disposition", cd);
    baic_http_req_on_abort(req, ar_abort, a);
    if (baic_http_stream_begin(req, 200, "application/zip", -1) != 0 ||
        uv_thread_create(&a->thread, ar_thread, a) != 0) {
        a->thread_done = 1;
        a->status = -EIO;
        a->ended = 1;
        baic_http_req_release(req);
        uv_close((uv_handle_t *)&a->async, ar_closed);
        return -1;
    }
    BAIC_LOG_I("archive_started", "dir=%s", a->top);
    return 0;
}
