/* SPDX-License-Identifier: Apache-2.0 */
/* `baic session upload|download`: files into a session's home (multipart) and out of it (tar
 * parts). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cli/api.h"
#include "cli/cli.h"

#define UPLOAD_MAX ((size_t)256 << 20) /* what one call carries at most */
#define DOWNLOAD_FILES_MAX 5           /* api-contract §3: at most five files per call */

/* A growing byte buffer. */
typedef struct buf {
    char *p;
    size_t n, cap;
    int oom;
} buf_t;

static void put(buf_t *b, const void *d, size_t n) {
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void puts_(buf_t *b, const char *s) {
    put(b, s, strlen(s));
}

/* A path inside the session's home: relative, no "..", no empty name. */
static int rel_path_ok(const char *p) {
    if (*p == '\0' || *p == '/')
        return 0;
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return 0;
        s += n;
        if (*s == '/')
            s++;
    }
    return 1;
}

/* ---- upload ---- */

static int do_upload(const cli_api_t *api, const char *name, int nfiles, char **files) {
    unsigned char rnd[12];
    char boundary[64] = "baic-";
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return 1;
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(boundary + 5 + 2 * i, 3, "%02x", rnd[i]);
    buf_t b = {0};
    for (int i = 0; i < nfiles; i++) {
        const char *path = files[i];
        const char *rel = path;
        while (rel[0] == '.' && rel[1] == '/')
            rel += 2;
        if (!rel_path_ok(rel) || strpbrk(rel, "\"\r\n") != NULL) {
            fprintf(stderr,
                    "baic session upload: %s: give a path relative to here without "
                    "'..' (it becomes the same path under the session's home)\n",
                    path);
            free(b.p);
            return 2;
        }
        FILE *f = fopen(path, "rb");
        struct stat st;
        if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "baic session upload: %s: %s\n", path,
                    f == NULL ? strerror(errno) : "not a regular file");
            if (f)
                fclose(f);
            free(b.p);
            return 2;
        }
        if (b.n + (size_t)st.st_size > UPLOAD_MAX) {
            fprintf(stderr, "baic session upload: more than %zu MiB in one call\n",
                    UPLOAD_MAX >> 20);
            fclose(f);
            free(b.p);
            return 2;
        }
        puts_(&b, "--");
        puts_(&b, boundary);
        puts_(&b, "\r\nContent-Disposition: form-data; name=\"src\"; filename=\"");
        puts_(&b, rel);
        puts_(&b, "\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        char chunk[65536];
        size_t r;
        while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
            put(&b, chunk, r);
        int ferr = ferror(f);
        fclose(f);
        if (ferr) {
            fprintf(stderr, "baic session upload: %s: read error\n", path);
            free(b.p);
            return 1;
        }
        puts_(&b, "\r\n");
    }
    puts_(&b, "--");
    puts_(&b, boundary);
    puts_(&b, "--\r\n");
    if (b.oom) {
        fprintf(stderr, "baic session upload: out of memory\n");
        free(b.p);
        return 1;
    }
    char esc[300], path[400], ctype[128];
    cli_api_escape(name, esc, sizeof esc);
    snprintf(path, sizeof path, "/session/%s/upload", esc);
    snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", boundary);
    cli_resp_t r;
    int rc = cli_api_call(api, "POST", path, b.p, b.n, ctype, 600000, &r);
    free(b.p);
    if (rc != 0) {
        fprintf(stderr, "baic session upload: %s\n", strerror(-rc));
        cli_resp_free(&r);
        return 1;
    }
    if (r.status != 204 && r.status != 200) {
        json_t *ans = r.body ? json_loadb(r.body, r.len, 0, NULL) : NULL;
        cli_api_print_error("upload", r.status, ans);
        json_decref(ans);
        cli_resp_free(&r);
        return 1;
    }
    cli_resp_free(&r);
    for (int i = 0; i < nfiles; i++)
        printf("uploaded %s\n", files[i]);
    return 0;
}

/* ---- download ---- */

/* Makes the parent directories of dest/rel (rel already checked). */
static int make_parents(const char *dest, const char *rel) {
    char p[PATH_MAX];
    int w = snprintf(p, sizeof p, "%s/%s", dest, rel);
    if (w < 0 || (size_t)w >= sizeof p)
        return -ENAMETOOLONG;
    size_t base = strlen(dest) + 1;
    for (char *s = p + base; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    return 0;
}

static unsigned long long octal(const char *f, size_t n) {
    unsigned long long v = 0;
    for (size_t i = 0; i < n && f[i]; i++) {
        if (f[i] == ' ')
            continue;
        if (f[i] < '0' || f[i] > '7')
            break;
        v = v * 8 + (unsigned)(f[i] - '0');
    }
    return v;
}

/* Extracts regular files and directories of a ustar archive into dest; refuses names that
 * leave it. Returns the number of files written or -1. */
static int untar(const char *data, size_t len, const char *dest) {
    size_t off = 0;
    int files = 0;
    char longname[PATH_MAX] = "";
    while (off + 512 <= len) {
        const char *h = data + off;
        int zero = 1;
        for (int i = 0; i < 512 && zero; i++)
            zero = h[i] == 0;
        if (zero)
            break;
        unsigned long long size = octal(h + 124, 12);
        char type = h[156];
        char name[PATH_MAX];
        if (longname[0]) {
            snprintf(name, sizeof name, "%s", longname);
            longname[0] = '\0';
        } else if (memcmp(h + 257, "ustar", 5) == 0 && h[345]) {
            snprintf(name, sizeof name, "%.155s/%.100s", h + 345, h);
        } else {
            snprintf(name, sizeof name, "%.100s", h);
        }
        off += 512;
        if (size > len - off) {
            fprintf(stderr, "baic session download: truncated archive\n");
            return -1;
        }
        const char *body = data + off;
        off += (size + 511) / 512 * 512;
        if (type == 'L') { /* GNU long name for the next entry */
            size_t n = size < sizeof longname - 1 ? size : sizeof longname - 1;
            memcpy(longname, body, n);
            longname[n] = '\0';
            continue;
        }
        char *rel = name;
        while (rel[0] == '.' && rel[1] == '/')
            rel += 2;
        size_t rl = strlen(rel);
        while (rl > 0 && rel[rl - 1] == '/')
            rel[--rl] = '\0';
        if (rl == 0 || (rl == 1 && rel[0] == '.'))
            continue;
        if (!rel_path_ok(rel)) {
            fprintf(stderr, "baic session download: skipped unsafe name %s\n", name);
            continue;
        }
        if (make_parents(dest, rel) != 0) {
            fprintf(stderr, "baic session download: cannot make the directories of %s\n", rel);
            return -1;
        }
        char out[PATH_MAX];
        int w = snprintf(out, sizeof out, "%s/%s", dest, rel);
        if (w < 0 || (size_t)w >= sizeof out)
            return -1;
        if (type == '5') {
            if (mkdir(out, 0755) != 0 && errno != EEXIST) {
                fprintf(stderr, "baic session download: %s: %s\n", out, strerror(errno));
                return -1;
            }
            continue;
        }
        if (type != '0' && type != '\0') {
            fprintf(stderr, "baic session download: skipped %s (not a regular file)\n", rel);
            continue;
        }
        unlink(out); /* never write through a link that was there */
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                      (mode_t)(octal(h + 100, 8) & 0755) | 0600);
        if (fd < 0) {
            fprintf(stderr, "baic session download: %s: %s\n", out, strerror(errno));
            return -1;
        }
        int wrc = baic_write_all(fd, body, size);
        close(fd);
        if (wrc != 0) {
            fprintf(stderr, "baic session download: %s: write error\n", out);
            return -1;
        }
        printf("downloaded %s\n", out);
        files++;
    }
    return files;
}

static const char *memfind(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0 || hn < nn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nn) == 0)
            return h + i;
    return NULL;
}

/* Each part of a multipart/mixed answer is one tar archive. */
static int unpack_parts(const cli_resp_t *r, const char *dest) {
    const char *ct = r->content_type ? r->content_type : "";
    const char *bp = strstr(ct, "boundary=");
    if (strncmp(ct, "multipart/", 10) != 0 || bp == NULL) {
        fprintf(stderr, "baic session download: unexpected answer type %s\n", ct);
        return 1;
    }
    char delim[200];
    bp += 9;
    size_t bl = strcspn(bp, ";");
    if (*bp == '"') {
        bp++;
        bl = strcspn(bp, "\"");
    }
    int w = snprintf(delim, sizeof delim, "--%.*s", (int)bl, bp);
    if (w < 0 || (size_t)w >= sizeof delim)
        return 1;
    size_t dl = strlen(delim);
    const char *p = memfind(r->body, r->len, delim, dl), *end = r->body + r->len;
    int files = 0;
    while (p != NULL) {
        p += dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break; /* the closing delimiter */
        const char *hdr_end = memfind(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (hdr_end == NULL)
            break;
        const char *body = hdr_end + 4;
        char next_delim[210];
        snprintf(next_delim, sizeof next_delim, "\r\n%s", delim);
        const char *next = memfind(body, (size_t)(end - body), next_delim, strlen(next_delim));
        if (next == NULL) {
            fprintf(stderr, "baic session download: truncated answer\n");
            return 1;
        }
        int n = untar(body, (size_t)(next - body), dest);
        if (n < 0)
            return 1;
        files += n;
        p = next + 2;
    }
    if (files == 0)
        fprintf(stderr, "baic session download: the answer held no files\n");
    return files > 0 ? 0 : 1;
}

static int do_download(const cli_api_t *api, const char *name, int nfiles, char **files,
                       const char *dest) {
    if (nfiles > DOWNLOAD_FILES_MAX) {
        fprintf(stderr, "baic session download: at most %d files per call\n", DOWNLOAD_FILES_MAX);
        return 2;
    }
    char esc[300], path[4096];
    cli_api_escape(name, esc, sizeof esc);
    int w = snprintf(path, sizeof path, "/session/%s/download", esc);
    for (int i = 0; i < nfiles && w > 0 && (size_t)w < sizeof path; i++) {
        char fe[1024];
        cli_api_escape(files[i], fe, sizeof fe);
        w += snprintf(path + w, sizeof path - (size_t)w, "%sfiles=%s", i ? "&" : "?", fe);
    }
    if (w < 0 || (size_t)w >= sizeof path) {
        fprintf(stderr, "baic session download: the file names are too long\n");
        return 2;
    }
    struct stat st;
    if (stat(dest, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "baic session download: %s is not a directory\n", dest);
        return 2;
    }
    cli_resp_t r;
    int rc = cli_api_call(api, "POST", path, NULL, 0, NULL, 600000, &r);
    if (rc != 0) {
        fprintf(stderr, "baic session download: %s\n", strerror(-rc));
        cli_resp_free(&r);
        return 1;
    }
    if (r.status != 200) {
        json_t *ans = r.body ? json_loadb(r.body, r.len, 0, NULL) : NULL;
        cli_api_print_error("download", r.status, ans);
        json_decref(ans);
        cli_resp_free(&r);
        return 1;
    }
    rc = unpack_parts(&r, dest);
    cli_resp_free(&r);
    return rc;
}

int cli_session_transfer(const cli_api_t *api, int argc, char **argv) {
    /* argv[0] is "upload" or "download", argv[1] the session, then files and options. */
    const char *dest = ".";
    char **files = calloc((size_t)argc + 1, sizeof *files);
    int n = 0;
    if (files == NULL)
        return 1;
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "--dest") == 0 || strcmp(argv[i], "-o") == 0) && i + 1 < argc &&
            strcmp(argv[0], "download") == 0)
            dest = argv[++i];
        else
            files[n++] = argv[i];
    }
    int rc;
    if (argc < 3 || n == 0) {
        fprintf(stderr, "usage: baic session upload NAME FILE...\n"
                        "       baic session download NAME FILE... [--dest DIR]\n");
        rc = 2;
    } else if (strcmp(argv[0], "upload") == 0) {
        rc = do_upload(api, argv[1], n, files);
    } else {
        rc = do_download(api, argv[1], n, files, dest);
    }
    free(files);
    return rc;
}
