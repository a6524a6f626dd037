/* SPDX-License-Identifier: Apache-2.0 */
/* Byte buffers, base64, UTF-8 cleaning, run consoles and child spawning for the runner. */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int kr_buf_add(struct kr_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL)
            return -ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0'; /* so a buffer of text can be used as a C string */
    return 0;
}

void kr_buf_consume(struct kr_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p != NULL)
        b->p[b->len] = '\0';
}

void kr_buf_free(struct kr_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *kr_b64_encode(const void *p, size_t n)
{
    const unsigned char *s = p;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (out == NULL)
        return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *o++ = b64chars[v >> 18];
        *o++ = b64chars[(v >> 12) & 63];
        *o++ = b64chars[(v >> 6) & 63];
        *o++ = b64chars[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        *o++ = b64chars[v >> 18];
        *o++ = b64chars[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int kr_b64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen)
{
    unsigned char *o = malloc(n / 4 * 3 + 3);
    if (o == NULL)
        return -ENOMEM;
    size_t len = 0, pad = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=') {
            pad++;
            continue;
        }
        int d = b64val((unsigned char)s[i]);
        if (d < 0 || pad > 0) { /* nothing but padding may follow padding */
            free(o);
            return -EINVAL;
        }
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[len++] = (unsigned char)(v >> bits);
        }
    }
    if (pad > 2 || bits >= 6) {
        free(o);
        return -EINVAL;
    }
    *out = o;
    *outlen = len;
    return 0;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid, -1 if cut short by n. */
static int utf8_seq(const unsigned char *p, size_t n)
{
    int len;
    unsigned min;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = p[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -1;
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

size_t kr_utf8_clean(struct kr_buf *dst, const char *p, size_t n, int keep_tail)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, start = 0;
    while (i < n) {
        int l = utf8_seq(s + i, n - i);
        if (l > 0) {
            i += (size_t)l;
            continue;
        }
        kr_buf_add(dst, p + start, i - start);
        if (l < 0 && keep_tail)
            return i;
        kr_buf_add(dst, "\xef\xbf\xbd", 3);
        i++;
        start = i;
    }
    kr_buf_add(dst, p + start, i - start);
    return n;
}

static struct kr_item *console_push(struct kr_console *c)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct kr_item *ni = realloc(c->items, cap * sizeof *ni);
        if (ni == NULL)
            return NULL;
        c->items = ni;
        c->cap = cap;
    }
    struct kr_item *it = &c->items[c->n++];
    memset(it, 0, sizeof *it);
    return it;
}

void kr_console_text(struct kr_console *c, int kind, const char *p, size_t n)
{
    if (n == 0)
        return;
    struct kr_item *it = c->n > 0 ? &c->items[c->n - 1] : NULL;
    if (it == NULL || it->kind != kind) {
        it = console_push(c);
        if (it == NULL)
            return;
        it->kind = kind;
    }
    if (kr_buf_add(&it->text, p, n) == 0)
        c->bytes += n;
}

void kr_console_media(struct kr_console *c, json_t *media)
{
    struct kr_item *it = console_push(c);
    if (it == NULL) {
        json_decref(media);
        return;
    }
    it->kind = -1;
    it->media = media;
    c->bytes += 64;
}

json_t *kr_console_take(struct kr_console *c, int final)
{
    static const char *names[] = {"stdout", "stderr"};
    json_t *out = json_array();
    struct kr_item tail = {.kind = -1};
    for (size_t i = 0; i < c->n; i++) {
        struct kr_item *it = &c->items[i];
        if (it->kind < 0) {
            json_array_append_new(out, json_pack("[so]", "media", it->media));
            it->media = NULL;
            continue;
        }
        struct kr_buf clean = {0};
        /* Only the last item can end inside a character that the next read completes. */
        size_t used = kr_utf8_clean(&clean, it->text.p, it->text.len, !final && i + 1 == c->n);
        if (used < it->text.len) {
            tail.kind = it->kind;
            kr_buf_add(&tail.text, it->text.p + used, it->text.len - used);
        }
        if (clean.len > 0)
            json_array_append_new(out, json_pack("[ss#]", names[it->kind], clean.p, clean.len));
        kr_buf_free(&clean);
        kr_buf_free(&it->text);
    }
    c->n = 0;
    c->bytes = 0;
    if (tail.kind >= 0) {
        kr_console_text(c, tail.kind, tail.text.p, tail.text.len);
        kr_buf_free(&tail.text);
    }
    return out;
}

void kr_console_free(struct kr_console *c)
{
    for (size_t i = 0; i < c->n; i++) {
        kr_buf_free(&c->items[i].text);
        json_decref(c->items[i].media);
    }
    free(c->items);
    memset(c, 0, sizeof *c);
}

int64_t kr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kr_pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int kr_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

void kr_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

pid_t kr_spawn(char *const argv[], const char *cwd, const int fds[5], int setsid_ctty)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid < 0 ? -errno : pid;

    /* Child: undo what the runner set up for itself before user code inherits it. */
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    if (setsid_ctty >= 0) {
        setsid();
        ioctl(setsid_ctty, TIOCSCTTY, 0);
    } else {
        setpgid(0, 0);
    }
    /* Move the sources above the targets first so dup2 cannot clobber one of them. */
    int hi[5];
    for (int i = 0; i < 5; i++) {
        int src = fds[i];
        if (src < 0 && i < 3)
            src = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
        hi[i] = src >= 0 ? fcntl(src, F_DUPFD, 16) : -1;
    }
    for (int i = 0; i < 5; i++) {
        if (hi[i] >= 0)
            dup2(hi[i], i);
        else
            close(i);
    }
    syscall(SYS_close_range, 5U, ~0U, 0U);
    if (cwd != NULL && chdir(cwd) != 0)
        (void)chdir("/");
    execvp(argv[0], argv);
    _exit(127);
}
