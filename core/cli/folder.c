/* SPDX-License-Identifier: Apache-2.0 */
/* `baic folder ...`: virtual folders through the manager's signed API (api-contract §5), file
 * transfers straight to the storage proxy (tus PATCH up, GET down), and the --mount option of
 * `session create` / `run`. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/api.h"
#include "util/file.h"

static const char usage[] =
    "usage: baic folder <verb> ...\n"
    "  create NAME [--host HOST]              a new folder (HOST: proxy:volume, default the\n"
    "                                         manager's [volumes] default_host)\n"
    "  ls                                     your folders\n"
    "  info NAME                              one folder's fields\n"
    "  rm [--purge] NAME                      move a folder to the trash bin; --purge deletes\n"
    "                                         it and its files for good\n"
    "  upload NAME LOCALFILE [REMOTE_PATH]    upload a file (resumes where the storage proxy\n"
    "                                         has a partial upload of it)\n"
    "  download NAME REMOTE_PATH [LOCALFILE]  download a file (default: its base name here)\n"
    "  files NAME [PATH]                      list a directory of the folder\n"
    "  mkdir NAME PATH                        make a directory (with its parents)\n"
    "Mount folders into sessions with `baic session create IMAGE NAME --mount FOLDER` or\n"
    "`baic run ... --mount FOLDER[:/home/work/PATH][:ro]`.\n"
    "Reads BACKEND_ENDPOINT, BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY.\n";

enum { CALL_MS = 60000, XFER_TIMEOUT_S = 300, XFER_TRIES = 5 };
#define UPLOAD_CHUNK ((off_t)64 * 1024 * 1024)

/* ---- --mount ------------------------------------------------------------------------ */

int cli_mount_parse(json_t *config, const char *spec) {
    char buf[1024];
    if (spec == NULL || *spec == '\0' || strlen(spec) >= sizeof buf) {
        fprintf(stderr, "baic: --mount wants FOLDER[:/home/work/PATH][:ro|rw]\n");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", spec);
    char *name = buf, *path = NULL, *perm = NULL;
    char *c1 = strchr(buf, ':');
    if (c1 != NULL) {
        *c1++ = '\0';
        char *c2 = strchr(c1, ':');
        if (c2 != NULL) {
            *c2++ = '\0';
            path = c1;
            perm = c2;
        } else if (strcmp(c1, "ro") == 0 || strcmp(c1, "rw") == 0) {
            perm = c1;
        } else {
            path = c1;
        }
    }
    if (*name == '\0' || (path != NULL && *path == '\0') ||
        (perm != NULL && strcmp(perm, "ro") != 0 && strcmp(perm, "rw") != 0)) {
        fprintf(stderr, "baic: --mount %s: want FOLDER[:/home/work/PATH][:ro|rw]\n", spec);
        return -1;
    }
    json_t *mounts = json_object_get(config, "mounts");
    if (mounts == NULL) {
        mounts = json_array();
        json_object_set_new(config, "mounts", mounts);
    }
    size_t i;
    json_t *v;
    json_array_foreach(mounts, i, v) {
        if (strcmp(json_string_value(v), name) == 0) {
            fprintf(stderr, "baic: --mount %s: folder %s is mounted twice\n", spec, name);
            return -1;
        }
    }
    json_array_append_new(mounts, json_string(name));
    if (path != NULL) {
        json_t *map = json_object_get(config, "mount_map");
        if (map == NULL) {
            map = json_object();
            json_object_set_new(config, "mount_map", map);
        }
        json_object_set_new(map, name, json_string(path));
    }
    if (perm != NULL) {
        json_t *opts = json_object_get(config, "mount_options");
        if (opts == NULL) {
            opts = json_object();
            json_object_set_new(config, "mount_options", opts);
        }
        json_object_set_new(opts, name,
                            json_pack("{s:s, s:s}", "type", "bind", "permission", perm));
    }
    return 0;
}

/* ---- manager calls ------------------------------------------------------------------ */

static int folder_path(char *out, size_t n, const char *name, const char *suffix) {
    char esc[600];
    if (strlen(name) > 200) {
        fprintf(stderr, "baic: folder name too long\n");
        return -1;
    }
    cli_api_escape(name, esc, sizeof esc);
    int w = snprintf(out, n, "/folders/%s%s", esc, suffix);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* One call; prints the problem and returns -1 unless the status is 2xx. */
static int call(const cli_api_t *api, const char *what, const char *method, const char *path,
                json_t *body, json_t **ans, int *status_out) {
    int status;
    *ans = NULL;
    int rc = cli_api_json(api, method, path, body, CALL_MS, &status, ans);
    json_decref(body);
    if (status_out)
        *status_out = status;
    if (rc != 0)
        return -1;
    if (status / 100 != 2) {
        cli_api_print_error(what, status, *ans);
        json_decref(*ans);
        *ans = NULL;
        return -1;
    }
    return 0;
}

static const char *jstr(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int do_create(const cli_api_t *api, const char *name, const char *host) {
    json_t *body = json_pack("{s:s}", "name", name), *ans;
    if (host != NULL)
        json_object_set_new(body, "host", json_string(host));
    if (call(api, "create folder", "POST", "/folders", body, &ans, NULL) < 0)
        return 1;
    printf("folder %s created (id %s, host %s)\n", jstr(ans, "name"), jstr(ans, "id"),
           jstr(ans, "host"));
    json_decref(ans);
    return 0;
}

static int do_ls(const cli_api_t *api) {
    json_t *ans;
    if (call(api, "list folders", "GET", "/folders", NULL, &ans, NULL) < 0)
        return 1;
    json_t *list = json_is_array(ans) ? ans : json_object_get(ans, "items");
    printf("%-24s  %-32s  %-20s  %-10s  %s\n", "NAME", "ID", "HOST", "PERMISSION", "STATUS");
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f) {
        printf("%-24s  %-32s  %-20s  %-10s  %s\n", jstr(f, "name"), jstr(f, "id"), jstr(f, "host"),
               jstr(f, "permission"), jstr(f, "status"));
    }
    json_decref(ans);
    return 0;
}

static int do_info(const cli_api_t *api, const char *name) {
    char path[800];
    json_t *ans;
    if (folder_path(path, sizeof path, name, "") < 0)
        return 2;
    if (call(api, "folder info", "GET", path, NULL, &ans, NULL) < 0)
        return 1;
    const char *k;
    json_t *v;
    json_object_foreach(ans, k, v) {
        char *t = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%-16s %s\n", k, t ? t : json_string_value(v));
        free(t);
    }
    json_decref(ans);
    return 0;
}

/* DELETE moves a folder to the trash bin (Backend.AI's semantics); --purge then deletes it
 * for good, which needs its id (a folder in the trash is addressed by id only). */
static int do_rm(const cli_api_t *api, const char *name, int purge) {
    char path[800], id[80] = "";
    const char *status = "ready";
    json_t *ans, *list = NULL;
    if (folder_path(path, sizeof path, name, "") < 0)
        return 2;
    if (purge) {
        if (call(api, "list folders", "GET", "/folders", NULL, &list, NULL) < 0)
            return 1;
        size_t i;
        json_t *f;
        json_array_foreach(json_is_array(list) ? list : json_object_get(list, "items"), i, f) {
            if (strcmp(jstr(f, "name"), name) == 0 && id[0] == '\0') {
                snprintf(id, sizeof id, "%s", jstr(f, "id"));
                status = jstr(f, "status");
            }
        }
        if (id[0] == '\0') {
            fprintf(stderr, "baic: no folder %s\n", name);
            json_decref(list);
            return 1;
        }
    }
    int rc = 0;
    if (strncmp(status, "delete-", 7) != 0) {
        if (call(api, "delete folder", "DELETE", path, NULL, &ans, NULL) < 0)
            rc = 1;
        json_decref(ans);
    }
    if (rc == 0 && purge) {
        if (call(api, "purge folder", "POST", "/folders/purge", json_pack("{s:s}", "id", id),
                 &ans, NULL) < 0)
            rc = 1;
        json_decref(ans);
    }
    json_decref(list);
    if (rc == 0)
        printf(purge ? "folder %s deleted\n"
                     : "folder %s moved to the trash bin (`baic folder rm --purge` deletes it)\n",
               name);
    return rc;
}

static int do_files(const cli_api_t *api, const char *name, const char *dir) {
    char path[1600], esc[700], suffix[720];
    json_t *ans;
    if (strlen(dir) > 500)
        return 2;
    cli_api_escape(dir, esc, sizeof esc);
    snprintf(suffix, sizeof suffix, "/files?path=%s", esc);
    if (folder_path(path, sizeof path, name, suffix) < 0)
        return 2;
    if (call(api, "list files", "GET", path, NULL, &ans, NULL) < 0)
        return 1;
    printf("%-9s  %12s  %-25s  %s\n", "TYPE", "SIZE", "MODIFIED", "NAME");
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(ans, "items"), i, f) {
        printf("%-9s  %12lld  %-25s  %s\n", jstr(f, "type"),
               (long long)json_integer_value(json_object_get(f, "size")), jstr(f, "modified"),
               jstr(f, "name"));
    }
    json_decref(ans);
    return 0;
}

static int do_mkdir(const cli_api_t *api, const char *name, const char *dir) {
    char path[800];
    json_t *ans;
    if (folder_path(path, sizeof path, name, "/mkdir") < 0)
        return 2;
    int status;
    if (call(api, "mkdir", "POST", path,
             json_pack("{s:s, s:b, s:b}", "path", dir, "parents", 1, "exist_ok", 0), &ans,
             &status) < 0)
        return 1;
    json_t *failed = json_object_get(json_object_get(ans, "results"), "failed");
    size_t i;
    json_t *f;
    int rc = 0;
    json_array_foreach(failed, i, f) {
        fprintf(stderr, "baic: mkdir %s: %s\n", jstr(f, "item"), jstr(f, "msg"));
        rc = 1;
    }
    if (status == 207 && json_array_size(failed) == 0) {
        fprintf(stderr, "baic: mkdir %s: not made (207)\n", dir);
        rc = 1;
    }
    json_decref(ans);
    if (rc == 0)
        printf("made %s in %s\n", dir, name);
    return rc;
}

/* ---- transfers: blocking HTTP/1.1 to the storage proxy's client API --------------------- */

typedef struct xurl {
    char host[256];
    char port[8];
    char target[4096]; /* path?token=... */
} xurl_t;

/* url "http://host[:port]/path" plus "?token=TOKEN". */
static int xurl_parse(const char *url, const char *token, xurl_t *u) {
    if (url == NULL || token == NULL || strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "baic: the manager returned no http:// transfer URL\n");
        return -1;
    }
    const char *h = url + 7, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= sizeof u->host)
        return -1;
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    snprintf(u->port, sizeof u->port, "80");
    char *close = strrchr(u->host, ']'), *colon = strrchr(u->host, ':');
    if (colon != NULL && (close == NULL || colon > close)) {
        *colon = '\0';
        snprintf(u->port, sizeof u->port, "%.6s", colon + 1);
    }
    if (u->host[0] == '[') {
        memmove(u->host, u->host + 1, strlen(u->host));
        char *b = strchr(u->host, ']');
        if (b)
            *b = '\0';
    }
    char etok[3000];
    if (strlen(token) > 900)
        return -1;
    cli_api_escape(token, etok, sizeof etok);
    const char *path = slash ? slash : "/";
    int w = snprintf(u->target, sizeof u->target, "%s%stoken=%s", path,
                     strchr(path, '?') ? "&" : "?", etok);
    return w < 0 || (size_t)w >= sizeof u->target ? -1 : 0;
}

static int xconnect(const xurl_t *u) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(u->host, u->port, &hints, &ai) != 0 || ai == NULL) {
        fprintf(stderr, "baic: cannot resolve %s\n", u->host);
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd >= 0) {
        struct timeval tv = {XFER_TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "baic: cannot connect to the storage proxy %s:%s: %s\n", u->host, u->port,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* A buffered reader over the socket. */
typedef struct rd {
    int fd;
    char buf[65536];
    size_t off, len;
} rd_t;

static ssize_t rd_fill(rd_t *r) {
    if (r->off < r->len)
        return (ssize_t)(r->len - r->off);
    ssize_t n;
    do
        n = read(r->fd, r->buf, sizeof r->buf);
    while (n < 0 && errno == EINTR);
    r->off = 0;
    r->len = n > 0 ? (size_t)n : 0;
    return n;
}

/* One line without CRLF; -1 at EOF/error or when too long. */
static int rd_line(rd_t *r, char *out, size_t n) {
    size_t w = 0;
    for (;;) {
        if (rd_fill(r) <= 0)
            return -1;
        char c = r->buf[r->off++];
        if (c == '\n') {
            if (w > 0 && out[w - 1] == '\r')
                w--;
            out[w] = '\0';
            return 0;
        }
        if (w + 1 >= n)
            return -1;
        out[w++] = c;
    }
}

typedef struct xresp {
    int status;
    long long content_length; /* -1 unknown */
    long long upload_offset;  /* -1 absent */
    int chunked;
} xresp_t;

static int read_head(rd_t *r, xresp_t *x) {
    char line[8192];
    x->status = 0;
    x->content_length = -1;
    x->upload_offset = -1;
    x->chunked = 0;
    if (rd_line(r, line, sizeof line) < 0 || sscanf(line, "HTTP/%*d.%*d %d", &x->status) != 1)
        return -1;
    for (;;) {
        if (rd_line(r, line, sizeof line) < 0)
            return -1;
        if (line[0] == '\0')
            return 0;
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcasecmp(line, "Content-Length") == 0)
            x->content_length = strtoll(v, NULL, 10);
        else if (strcasecmp(line, "Upload-Offset") == 0)
            x->upload_offset = strtoll(v, NULL, 10);
        else if (strcasecmp(line, "Transfer-Encoding") == 0 && strcasestr(v, "chunked"))
            x->chunked = 1;
    }
}

/* The body into out_fd (or into a small buffer for error bodies when out_fd < 0).
 * Returns the number of bytes, or -1. */
static long long read_body(rd_t *r, const xresp_t *x, int out_fd, char *small, size_t smalln,
                           int head_only) {
    long long total = 0;
    size_t sw = 0;
    if (head_only)
        return 0;
    for (;;) {
        long long want = x->content_length; /* -1: to EOF */
        if (x->chunked) {
            char line[128];
            if (rd_line(r, line, sizeof line) < 0)
                return -1;
            want = strtoll(line, NULL, 16);
            if (want < 0)
                return -1;
            if (want == 0) {
                while (rd_line(r, line, sizeof line) == 0 && line[0] != '\0')
                    ;
                break;
            }
        }
        long long got = 0;
        while (want < 0 || got < want) {
            ssize_t avail = rd_fill(r);
            if (avail <= 0) {
                if (want < 0 && avail == 0)
                    goto done;
                return -1;
            }
            size_t take = (size_t)avail;
            if (want >= 0 && (long long)take > want - got)
                take = (size_t)(want - got);
            if (out_fd >= 0) {
                if (baic_write_all(out_fd, r->buf + r->off, take) < 0)
                    return -1;
            } else if (small != NULL && sw + 1 < smalln) {
                size_t c = take < smalln - 1 - sw ? take : smalln - 1 - sw;
                memcpy(small + sw, r->buf + r->off, c);
                sw += c;
                small[sw] = '\0';
            }
            r->off += take;
            got += (long long)take;
        }
        total += got;
        if (!x->chunked)
            break;
        char crlf[8];
        if (rd_line(r, crlf, sizeof crlf) < 0)
            return -1;
    }
done:
    return total;
}

/* Sends a request whose body is len bytes of in_fd from offset (in_fd < 0: no body). */
static int send_request(int fd, const char *method, const xurl_t *u, const char *extra, int in_fd,
                        off_t offset, off_t len) {
    char head[6144];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: baic-cli/" BAIC_VERSION
                     "\r\nConnection: close\r\n%sContent-Length: %lld\r\n\r\n",
                     method, u->target, u->host, u->port, extra, (long long)(in_fd >= 0 ? len : 0));
    if (n < 0 || (size_t)n >= sizeof head || baic_write_all(fd, head, (size_t)n) < 0)
        return -1;
    static char buf[1 << 20];
    while (in_fd >= 0 && len > 0) {
        size_t want = len < (off_t)sizeof buf ? (size_t)len : sizeof buf;
        ssize_t r = pread(in_fd, buf, want, offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "baic: reading the local file: %s\n",
                    r < 0 ? strerror(errno) : "short");
            return -2;
        }
        if (baic_write_all(fd, buf, (size_t)r) < 0)
            return -1;
        offset += r;
        len -= r;
    }
    return 0;
}

/* One exchange. Returns 0 with x filled (body into out_fd / err text), -1 on a transport
 * error (worth a retry), -2 on a local error. */
static int exchange(const xurl_t *u, const char *method, const char *extra, int in_fd, off_t offset,
                    off_t len, int out_fd, xresp_t *x, char *err, size_t errn) {
    int fd = xconnect(u);
    if (fd < 0)
        return -1;
    static rd_t r;
    r.fd = fd;
    r.off = r.len = 0;
    int rc = send_request(fd, method, u, extra, in_fd, offset, len);
    if (rc == 0 && read_head(&r, x) < 0)
        rc = -1;
    if (rc == 0) {
        int ok = x->status / 100 == 2;
        if (read_body(&r, x, ok ? out_fd : -1, err, errn,
                      strcmp(method, "HEAD") == 0 || x->status == 204) < 0 &&
            ok)
            rc = -1;
    }
    close(fd);
    return rc;
}

static void print_xfer_error(const char *what, const xresp_t *x, const char *text) {
    json_t *j = json_loads(text, 0, NULL);
    if (j != NULL) {
        cli_api_print_error(what, x->status, j);
        json_decref(j);
    } else {
        fprintf(stderr, "baic: %s: HTTP %d %.200s\n", what, x->status, text);
    }
}

/* request-upload / request-download: the token and URL for one transfer. */
static int request_transfer(const cli_api_t *api, const char *name, const char *verb, json_t *body,
                            xurl_t *u) {
    char path[800], what[64];
    json_t *ans;
    snprintf(what, sizeof what, "%s", verb);
    if (folder_path(path, sizeof path, name, verb) < 0) {
        json_decref(body);
        return -1;
    }
    if (call(api, what + 1, "POST", path, body, &ans, NULL) < 0)
        return -1;
    int rc = xurl_parse(json_string_value(json_object_get(ans, "url")),
                        json_string_value(json_object_get(ans, "token")), u);
    json_decref(ans);
    return rc;
}

static const char *remote_default(const char *local, char *buf, size_t n) {
    snprintf(buf, n, "%s", local);
    return basename(buf);
}

static int do_upload(const cli_api_t *api, const char *name, const char *local,
                     const char *remote) {
    int in = open(local, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "baic: %s: %s\n", local, in < 0 ? strerror(errno) : "not a regular file");
        if (in >= 0)
            close(in);
        return 2;
    }
    char base[4096];
    if (remote == NULL)
        remote = remote_default(local, base, sizeof base);
    xurl_t u;
    if (request_transfer(api, name, "/request-upload",
                         json_pack("{s:s, s:I}", "path", remote, "size", (json_int_t)st.st_size),
                         &u) < 0) {
        close(in);
        return 1;
    }
    off_t size = st.st_size, offset = -1;
    char err[2048], hdr[256];
    xresp_t x;
    int tries = 0, rc = 0;
    /* Ends after the PATCH that brings the proxy to size (an empty file: one empty PATCH). */
    for (;;) {
        err[0] = '\0';
        if (offset < 0) {
            /* Where the proxy stands: a partial upload of the same file continues there. */
            rc =
                exchange(&u, "HEAD", "Tus-Resumable: 1.0.0\r\n", -1, 0, 0, -1, &x, err, sizeof err);
            if (rc == 0 &&
                (x.status / 100 != 2 || x.upload_offset < 0 || x.upload_offset > (long long)size)) {
                print_xfer_error("upload (HEAD)", &x, err);
                rc = -2;
            }
            if (rc == 0) {
                offset = (off_t)x.upload_offset;
                if (offset > 0)
                    printf("resuming at byte %lld of %lld\n", (long long)offset, (long long)size);
                continue;
            }
        } else {
            off_t len = size - offset < UPLOAD_CHUNK ? size - offset : UPLOAD_CHUNK;
            snprintf(hdr, sizeof hdr,
                     "Tus-Resumable: 1.0.0\r\nUpload-Offset: %lld\r\n"
                     "Content-Type: application/offset+octet-stream\r\n",
                     (long long)offset);
            rc = exchange(&u, "PATCH", hdr, in, offset, len, -1, &x, err, sizeof err);
            if (rc == 0 && x.status != 204 && x.status != 200) {
                print_xfer_error("upload (PATCH)", &x, err);
                rc = -2;
            }
            if (rc == 0 && x.upload_offset == (long long)(offset + len)) {
                offset += len;
                if (offset == size)
                    break;
                continue;
            }
            if (rc == 0) {
                fprintf(stderr, "baic: upload: the proxy is at byte %lld, expected %lld\n",
                        x.upload_offset, (long long)(offset + len));
                rc = -1; /* ask again */
            }
        }
        if (rc == -2)
            break;
        /* A transport error: ask where it stands and go on from there. */
        if (++tries > XFER_TRIES) {
            fprintf(stderr, "baic: upload: giving up after %d tries\n", XFER_TRIES);
            rc = -2;
            break;
        }
        fprintf(stderr, "baic: upload interrupted; retrying\n");
        offset = -1;
        sleep(1);
        rc = 0;
    }
    close(in);
    if (rc != 0)
        return 1;
    printf("uploaded %s to %s:%s (%lld bytes)\n", local, name, remote, (long long)size);
    return 0;
}

static int do_download(const cli_api_t *api, const char *name, const char *remote,
                       const char *local) {
    char base[4096], part[4200];
    if (local == NULL)
        local = remote_default(remote, base, sizeof base);
    if (*local == '\0' || strcmp(local, "/") == 0 || strcmp(local, ".") == 0) {
        fprintf(stderr, "baic: download: name a local file\n");
        return 2;
    }
    xurl_t u;
    if (request_transfer(api, name, "/request-download",
                         json_pack("{s:s, s:b}", "path", remote, "archive", 0), &u) < 0)
        return 1;
    int w = snprintf(part, sizeof part, "%s.part", local);
    if (w < 0 || (size_t)w >= sizeof part)
        return 2;
    int out = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        fprintf(stderr, "baic: %s: %s\n", part, strerror(errno));
        return 2;
    }
    xresp_t x;
    char err[2048] = "";
    int rc = exchange(&u, "GET", "", -1, 0, 0, out, &x, err, sizeof err);
    struct stat st;
    int ok = rc == 0 && x.status == 200 && fstat(out, &st) == 0 &&
             (x.content_length < 0 || st.st_size == x.content_length);
    if (close(out) < 0)
        ok = 0;
    if (rc == 0 && x.status != 200)
        print_xfer_error("download", &x, err);
    else if (!ok)
        fprintf(stderr, "baic: download: the transfer broke off\n");
    if (!ok || rename(part, local) < 0) {
        if (ok)
            fprintf(stderr, "baic: %s: %s\n", local, strerror(errno));
        unlink(part);
        return 1;
    }
    printf("downloaded %s:%s to %s (%lld bytes)\n", name, remote, local, (long long)st.st_size);
    return 0;
}

int cli_cmd_folder(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1];
    cli_api_t api;
    if (cli_api_from_env(&api) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(verb, "create") == 0 && (argc == 3 || (argc == 5 && strcmp(argv[3], "--host") == 0)))
        return do_create(&api, argv[2], argc == 5 ? argv[4] : NULL);
    if (strcmp(verb, "ls") == 0 && argc == 2)
        return do_ls(&api);
    if (strcmp(verb, "info") == 0 && argc == 3)
        return do_info(&api, argv[2]);
    if (strcmp(verb, "rm") == 0 && argc == 3)
        return do_rm(&api, argv[2], 0);
    if (strcmp(verb, "rm") == 0 && argc == 4 && strcmp(argv[2], "--purge") == 0)
        return do_rm(&api, argv[3], 1);
    if (strcmp(verb, "upload") == 0 && (argc == 4 || argc == 5))
        return do_upload(&api, argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    if (strcmp(verb, "download") == 0 && (argc == 4 || argc == 5))
        return do_download(&api, argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    if (strcmp(verb, "files") == 0 && (argc == 3 || argc == 4))
        return do_files(&api, argv[2], argc == 4 ? argv[3] : ".");
    if (strcmp(verb, "mkdir") == 0 && argc == 4)
        return do_mkdir(&api, argv[2], argv[3]);
    fputs(usage, stderr);
    return 2;
}
