/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An HTTP/1.1 client for the storage benchmark that leaves the bytes in the kernel, so
 * the server under test sets the pace rather than the client: an upload is sendfile(2)
 * from the file to the socket, a download splice(2) from the socket through a pipe into
 * the file (curl and Python copy every byte through user space in small pieces).
 *   xfer get URL OUT                  download URL into OUT (200 or 206)
 *   xfer put|patch URL IN [H:V ...]   IN as the body of a PUT or PATCH (status < 300)
 * URL is http://HOST:PORT/PATH (an IPv4 address; no TLS, no redirects). Exits 0 on success.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD_MAX 16384

static void die(const char *what) {
    fprintf(stderr, "xfer: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

/* http://HOST:PORT/PATH -> connected socket; *path points into url. */
static int connect_url(const char *url, const char **path) {
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    if (p == NULL)
        die("URL must start with http://");
    const char *colon = strchr(p, ':'), *slash = strchr(p, '/');
    if (colon == NULL || slash == NULL || colon > slash)
        die("URL must be http://HOST:PORT/PATH");
    char host[64];
    size_t hl = (size_t)(colon - p);
    if (hl >= sizeof host)
        die("host too long");
    memcpy(host, p, hl);
    host[hl] = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        die("host must be an IPv4 address");
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect");
    *path = slash;
    return s;
}

static void send_all(int s, const char *b, size_t n) {
    while (n > 0) {
        ssize_t k = send(s, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("send");
        b += k;
        n -= (size_t)k;
    }
}

/* Reads the response head into buf (NUL-terminated); returns the status and sets *body
 * and *blen to the body bytes read with it, *clen to Content-Length (-1 if none). */
static int read_head(int s, char *buf, size_t cap, char **body, size_t *blen, long long *clen) {
    size_t n = 0;
    char *end = NULL;
    while (end == NULL) {
        if (n + 1 >= cap)
            die("response head too long");
        ssize_t k = recv(s, buf + n, cap - 1 - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            die("reading the response");
        n += (size_t)k;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *body = end + 4;
    *blen = n - (size_t)(*body - buf);
    *end = '\0';
    *clen = -1;
    for (char *l = strstr(buf, "\r\n"); l != NULL; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
            *clen = atoll(l + 17);
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        die("not an HTTP response");
    return status;
}

static int do_get(const char *url, const char *out) {
    const char *path;
    int s = connect_url(url, &path);
    char req[4096];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", path);
    if (rl < 0 || (size_t)rl >= sizeof req)
        die("URL too long");
    send_all(s, req, (size_t)rl);
    static char head[HEAD_MAX];
    char *body;
    size_t blen;
    long long clen;
    int st = read_head(s, head, sizeof head, &body, &blen, &clen);
    if (st != 200 && st != 206) {
        fprintf(stderr, "xfer: GET %s: %d\n", url, st);
        return 1;
    }
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(out);
    if (blen > 0 && write(fd, body, blen) != (ssize_t)blen)
        die("write");
    long long got = (long long)blen;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        die("pipe");
    (void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    while (clen < 0 || got < clen) {
        size_t want = 1 << 20;
        if (clen >= 0 && (long long)want > clen - got)
            want = (size_t)(clen - got);
        ssize_t n = splice(s, NULL, p[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("splice from the socket");
        if (n == 0)
            break;
        for (ssize_t left = n; left > 0;) {
            ssize_t k = splice(p[0], NULL, fd, NULL, (size_t)left, SPLICE_F_MOVE);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                die("splice into the file");
            left -= k;
        }
        got += n;
    }
    if (clen >= 0 && got != clen) {
        fprintf(stderr, "xfer: GET %s: %lld of %lld bytes\n", url, got, clen);
        return 1;
    }
    if (close(fd) != 0)
        die("close");
    close(s);
    return 0;
}

static int do_send(const char *method, const char *url, const char *in, char **hdrs, int nh) {
    int fd = open(in, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die(in);
    const char *path;
    int s = connect_url(url, &path);
    static char req[HEAD_MAX];
    int rl = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
                      "Content-Length: %lld\r\n", method, path, (long long)st.st_size);
    for (int i = 0; i < nh && rl > 0 && (size_t)rl < sizeof req; i++) {
        char *c = strchr(hdrs[i], ':');
        if (c == NULL)
            die("headers are NAME:VALUE");
        rl += snprintf(req + rl, sizeof req - (size_t)rl, "%.*s: %s\r\n", (int)(c - hdrs[i]), hdrs[i],
                       c + 1);
    }
    if (rl < 0 || (size_t)rl + 2 >= sizeof req)
        die("request head too long");
    rl += snprintf(req + rl, sizeof req - (size_t)rl, "\r\n");
    send_all(s, req, (size_t)rl);
    off_t off = 0;
    while (off < st.st_size) {
        ssize_t k = sendfile(s, fd, &off, (size_t)(st.st_size - off));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break; /* the server may have answered early: read it */
    }
    static char head[HEAD_MAX];
    char *body;
    size_t blen;
    long long clen;
    int status = read_head(s, head, sizeof head, &body, &blen, &clen);
    close(s);
    close(fd);
    if (status >= 300 || off < st.st_size) {
        fprintf(stderr, "xfer: %s %s: %d after %lld of %lld bytes\n", method, url, status,
                (long long)off, (long long)st.st_size);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "get") == 0)
        return do_get(argv[2], argv[3]);
    if (argc >= 4 && (strcmp(argv[1], "put") == 0 || strcmp(argv[1], "patch") == 0))
        return do_send(argv[1][1] == 'u' ? "PUT" : "PATCH", argv[2], argv[3], argv + 4, argc - 4);
    fprintf(stderr, "usage: xfer get URL OUT | xfer put|patch URL IN [Header:Value ...]\n");
    return 2;
}
