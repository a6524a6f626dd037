/* SPDX-License-Identifier: Apache-2.0 */
/* Client downloads: GET /download?token= with Content-Length, Last-Modified, Range/If-Range, and directories as zip. */
#define _GNU_SOURCE /* readahead */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <baic/errors.h>

#include "log/log.h"
#include "proxy.h"

/* The file goes out with sendfile in pieces of this size, each read into the page cache on
 * the thread pool first (readahead), so the loop thread that sends it does not wait for
 * the disk; one piece is sent while the next is read ahead. (The client listener is plain
 * HTTP: sendfile always serves.) */
#define DL_PIECE (8u << 20)

int sp_archive_start(sp_t *sp, baic_http_req_t *req, int dirfd, const char *name);

typedef struct dl {
    sp_t *sp;
    baic_http_req_t *req;
    sp_volume_t *v;
    sp_token_t tok;
    int want_archive;
    int fd;
    int64_t end, next_read, left;  /* left: bytes not yet confirmed written */
    uv_work_t ra;                  /* a piece's readahead */
    int64_t ra_off;
    size_t ra_len;
    size_t plen[2];                /* lengths of the pieces being sent, oldest first */
    int reading, writes, op_pending;
    int aborted, failed, ended, handed_off;
} dl_t;

static void dl_free(dl_t *d) {
    json_decref(d->tok.claims);
    free(d);
}

/* The request is finished and nothing is in flight: let go of everything. */
static void dl_maybe_done(dl_t *d) {
    if (d->reading || d->writes || d->op_pending)
        return;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    if (!d->ended && !d->handed_off)
        baic_http_req_release(d->req); /* aborted, or a short file: drop the connection */
    dl_free(d);
}

static void dl_abort(baic_http_req_t *req, void *arg) {
    dl_t *d = arg;
    (void)req;
    d->aborted = 1;
    dl_maybe_done(d);
}

static void dl_pump(dl_t *d);

static void dl_sent(baic_http_req_t *req, int status, void *arg) {
    dl_t *d = arg;
    (void)req;
    d->writes--;
    size_t len = d->plen[0];
    d->plen[0] = d->plen[1];
    if (status == UV_EIO) /* the file shrank under us: the promised length cannot be met */
        BAIC_LOG_W("download_short", "vfid=%s relpath=%s", d->tok.vfid, d->tok.relpath);
    if (status < 0)
        d->failed = 1;
    else
        d->left -= (int64_t)len;
    dl_pump(d);
}

static void ra_work(uv_work_t *w) {
    dl_t *d = w->data;
    (void)readahead(d->fd, d->ra_off, d->ra_len); /* advisory: the send works without it */
}

static void ra_done(uv_work_t *w, int status) {
    dl_t *d = w->data;
    (void)status;
    d->reading = 0;
    if (d->aborted || d->failed) {
        dl_maybe_done(d);
        return;
    }
    int rc = baic_http_stream_sendfile(d->req, d->fd, d->ra_off, d->ra_len, dl_sent, d);
    if (rc != 0) {
        if (rc != UV_ECONNRESET)
            BAIC_LOG_W("download_failed", "vfid=%s relpath=%s error=%s", d->tok.vfid,
                       d->tok.relpath, uv_err_name(rc));
        d->failed = 1;
        dl_maybe_done(d);
        return;
    }
    d->plen[d->writes++] = d->ra_len;
    d->next_read += (int64_t)d->ra_len;
    dl_pump(d);
}

static void dl_pump(dl_t *d) {
    if (d->aborted || d->failed) {
        dl_maybe_done(d);
        return;
    }
    if (d->left == 0 && d->writes == 0 && !d->reading) {
        baic_http_stream_end(d->req);
        d->ended = 1;
        dl_maybe_done(d);
        return;
    }
    if (d->reading || d->next_read >= d->end)
        return;
    if (d->writes >= 2)
        return;
    int64_t want = d->end - d->next_read;
    d->ra_off = d->next_read;
    d->ra_len = want < DL_PIECE ? (size_t)want : DL_PIECE;
    d->ra.data = d;
    if (uv_queue_work(d->sp->uv, &d->ra, ra_work, ra_done) != 0) {
        d->failed = 1;
        dl_maybe_done(d);
        return;
    }
    d->reading = 1;
}

/* "bytes=a-b" | "bytes=a-" | "bytes=-n" against size. Returns 1 with [*from, *to]
 * (inclusive), 0 to ignore the header (multiple ranges, junk), -1 unsatisfiable. */
static int parse_range(const char *h, int64_t size, int64_t *from, int64_t *to) {
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
        return 0;
    const char *p = h + 6;
    char *e;
    if (*p == '-') {
        long long n = strtoll(p + 1, &e, 10);
        if (*e != '\0' || n <= 0 || p[1] == '\0')
            return n == 0 && *e == '\0' ? -1 : 0;
        if (size == 0)
            return -1;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    long long a = strtoll(p, &e, 10);
    if (e == p || *e != '-' || a < 0)
        return 0;
    const char *q = e + 1;
    long long b = size - 1;
    if (*q != '\0') {
        b = strtoll(q, &e, 10);
        if (*e != '\0' || b < a)
            return 0;
        if (b > size - 1)
            b = size - 1;
    }
    if (a >= size)
        return -1;
    *from = a;
    *to = b;
    return 1;
}

/* attachment;filename="x"; filename*=UTF-8''x — the quoted form ASCII-only. */
static void content_disposition(const char *relpath, char *out, size_t n) {
    const char *base = strrchr(relpath, '/');
    base = base ? base + 1 : relpath;
    if (*base == '\0')
        base = "download";
    char plain[256], enc[768];
    size_t pi = 0, ei = 0;
    for (const unsigned char *s = (const unsigned char *)base; *s && pi < sizeof plain - 1; s++)
        plain[pi++] = (*s < 0x20 || *s >= 0x7f || *s == '"' || *s == '\\') ? '_' : (char)*s;
    plain[pi] = '\0';
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *s = (const unsigned char *)base; *s && ei < sizeof enc - 4; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            strchr("!#$&+-.^_`|~", *s) != NULL) {
            enc[ei++] = (char)*s;
        } else {
            enc[ei++] = '%';
            enc[ei++] = hex[*s >> 4];
            enc[ei++] = hex[*s & 15];
        }
    }
    enc[ei] = '\0';
    int r = snprintf(out, n, "attachment;filename=\"%s\"; filename*=UTF-8''%s", plain, enc);
    if (r < 0 || (size_t)r >= n)
        snprintf(out, n, "attachment");
}

static void dl_opened(void *arg, int status, int fd) {
    dl_t *d = arg;
    d->op_pending = 0;
    d->fd = fd;
    if (d->aborted) {
        dl_maybe_done(d);
        return;
    }
    if (status != 0) {
        sp_fail_code(d->req, status, "open");
        d->ended = 1;
        dl_maybe_done(d);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        sp_fail_code(d->req, -errno, "stat");
        d->ended = 1;
        dl_maybe_done(d);
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        if (!d->want_archive) {
            sp_fail(d->req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                    "%s is a directory: ask for archive=true", d->tok.relpath);
            d->ended = 1;
            dl_maybe_done(d);
            return;
        }
        /* The archive streamer owns the request and the fd from here. */
        d->handed_off = 1;
        int afd = d->fd;
        d->fd = -1;
        sp_archive_start(d->sp, d->req, afd, d->tok.relpath);
        dl_maybe_done(d);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        sp_fail(d->req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                "%s is not a regular file", d->tok.relpath);
        d->ended = 1;
        dl_maybe_done(d);
        return;
    }
    int64_t size = st.st_size;
    char lm[64], cd[1100], cr[96];
    sp_http_date((int64_t)st.st_mtim.tv_sec * 1000, lm, sizeof lm);
    content_disposition(d->tok.relpath, cd, sizeof cd);
    int64_t from = 0, to = size - 1;
    int status_code = 200;
    const char *range = baic_http_header(d->req, "Range");
    const char *if_range = baic_http_header(d->req, "If-Range");
    if (range != NULL && (if_range == NULL || strcmp(if_range, lm) == 0)) {
        int pr = parse_range(range, size, &from, &to);
        if (pr < 0) {
            int n = snprintf(cr, sizeof cr, "bytes */%" PRId64, size);
            if (n > 0 && (size_t)n < sizeof cr)
                baic_http_add_header(d->req, "Content-Range", cr);
            sp_fail(d->req, 416, "invalid-api-params", "Range not satisfiable.",
                    "the file has %" PRId64 " bytes", size);
            d->ended = 1;
            dl_maybe_done(d);
            return;
        }
        if (pr == 1) {
            status_code = 206;
            int n = snprintf(cr, sizeof cr, "bytes %" PRId64 "-%" PRId64 "/%" PRId64, from, to,
                             size);
            if (n > 0 && (size_t)n < sizeof cr)
                baic_http_add_header(d->req, "Content-Range", cr);
        } else {
            from = 0;
            to = size - 1;
        }
    }
    baic_http_add_header(d->req, "Last-Modified", lm);
    baic_http_add_header(d->req, "Content-Disposition", cd);
    baic_http_add_header(d->req, "Accept-Ranges", "bytes");
    int64_t len = size == 0 ? 0 : to - from + 1;
    if (baic_http_stream_begin(d->req, status_code, "application/octet-stream", len) != 0) {
        d->failed = 1;
        dl_maybe_done(d);
        return;
    }
    BAIC_LOG_I("download_started", "volume=%s vfid=%s relpath=%s from=%" PRId64 " bytes=%" PRId64,
               d->v->name, d->tok.vfid, d->tok.relpath, from, len);
    d->next_read = from;
    d->end = from + len;
    d->left = len;
    if (strcmp(baic_http_method(d->req), "HEAD") == 0)
        d->left = 0, d->end = d->next_read;
    dl_pump(d);
}

static void on_download(baic_http_req_t *req, void *arg) {
    sp_t *sp = arg;
    dl_t *d = calloc(1, sizeof *d);
    if (d == NULL) {
        sp_fail(req, 500, "internal-server-error", "Internal server error.", "out of memory");
        return;
    }
    d->sp = sp;
    d->req = req;
    d->fd = -1;
    if (sp_token_check(sp, req, "download", &d->tok) != 0) {
        dl_free(d);
        return;
    }
    d->v = sp_volume_find(sp, d->tok.volume);
    if (d->v == NULL) {
        sp_fail(req, 404, "object-not-found", "No such volume.", "volume %s is not served here",
                d->tok.volume);
        dl_free(d);
        return;
    }
    const char *aq = baic_http_query(req, "archive");
    d->want_archive = d->tok.archive || (aq != NULL && strcmp(aq, "true") == 0);
    baic_http_req_on_abort(req, dl_abort, d);
    int rc = d->v->ops->open(d->v->plugin->state, d->v->vol, d->tok.vfid, d->tok.relpath,
                             BAIC_OPEN_READ, dl_opened, d);
    if (rc != 0) {
        baic_http_req_on_abort(req, NULL, NULL);
        sp_fail_code(req, rc, "open");
        dl_free(d);
        return;
    }
    d->op_pending = 1;
}

int sp_download_init(sp_t *sp) {
    return baic_http_route(sp->cli_http, "GET", "/download", on_download, sp, 0);
}
