/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel console logs and restart: the RPCs GET /rpc/kernels/{id}/logs and POST .../restart. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log/log.h"
#include "util/strerror.h"

/* Default and largest part of a log one RPC answers with. */
#define LOGS_DEFAULT_BYTES (256u * 1024)
#define LOGS_MAX_BYTES (4u * 1024 * 1024)

void agent_console_log_path(const agent_t *a, const char *id, char *buf, size_t len) {
    char dir[4096];
    agent_runner_dir(a, id, dir, sizeof dir);
    int n = snprintf(buf, len, "%s/console.log", dir);
    if (n < 0 || (size_t)n >= len)
        buf[0] = '\0';
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t left) {
    unsigned char c = p[0];
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)))
        return 0; /* overlong or a surrogate */
    if (n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)))
        return 0;
    return n;
}

char *agent_console_log_tail(const agent_t *a, const char *id, size_t max_bytes) {
    char path[4200];
    agent_console_log_path(a, id, path, sizeof path);
    int fd = path[0] ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return strdup("");
    }
    size_t size = (size_t)st.st_size, want = size < max_bytes ? size : max_bytes;
    unsigned char *raw = malloc(want + 1);
    char *out = malloc(want * 3 + 1); /* every byte may become U+FFFD */
    if (raw == NULL || out == NULL) {
        free(raw);
        free(out);
        close(fd);
        return NULL;
    }
    size_t got = 0;
    off_t off = (off_t)(size - want);
    while (got < want) {
        ssize_t n = pread(fd, raw + got, want - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    size_t i = 0, o = 0;
    /* A cut in the middle of a character: start at the next one. */
    if (off > 0)
        while (i < got && i < 3 && (raw[i] & 0xc0) == 0x80)
            i++;
    while (i < got) {
        size_t n = utf8_seq(raw + i, got - i);
        if (n == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        if (n == 1 && raw[i] == 0) { /* NUL cannot travel in a C string */
            i++;
            continue;
        }
        memcpy(out + o, raw + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    free(raw);
    return out;
}

static void not_found(baic_http_req_t *req, const char *id) {
    char msg[120];
    snprintf(msg, sizeof msg, "kernel %.64s", id ? id : "");
    baic_http_respond_problem(req, 404, "object-not-found", "No such kernel.", msg, NULL);
}

static void h_logs(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    const char *kid = baic_http_param(req, "id");
    agent_kernel_t *k = kid ? agent_kernel_find(a, kid) : NULL;
    if (k == NULL) {
        not_found(req, kid);
        return;
    }
    size_t max = LOGS_DEFAULT_BYTES;
    const char *q = baic_http_query(req, "max_bytes");
    if (q != NULL && *q) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(q, &end, 10);
        if (errno != 0 || end == q || *end != '\0' || v == 0 || v > LOGS_MAX_BYTES || *q == '-') {
            baic_http_respond_problem(req, 400, "invalid-api-params",
                                      "Missing or invalid API parameters.",
                                      "max_bytes must be an integer in 1..4194304", NULL);
            return;
        }
        max = (size_t)v;
    }
    char *text = agent_console_log_tail(a, k->id, max);
    if (text == NULL) {
        baic_http_respond_problem(req, 500, "internal-server-error", "Something went wrong.",
                                  "out of memory", NULL);
        return;
    }
    char path[4200];
    struct stat st;
    agent_console_log_path(a, k->id, path, sizeof path);
    json_int_t size = stat(path, &st) == 0 ? (json_int_t)st.st_size : 0;
    baic_http_respond_json(
        req, 200, json_pack("{s:s, s:s, s:I}", "kernel_id", k->id, "logs", text, "size", size));
    free(text);
}

static void h_restart(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    const char *kid = baic_http_param(req, "id");
    agent_kernel_t *k = kid ? agent_kernel_find(a, kid) : NULL;
    if (k == NULL) {
        not_found(req, kid);
        return;
    }
    char msg[200] = "";
    int rc = agent_kernel_restart(k, msg, sizeof msg);
    if (rc == UV_EBUSY) {
        baic_http_respond_problem(req, 409, "kernel-not-ready",
                                  "The kernel cannot be restarted now.", msg, NULL);
    } else if (rc == BAIC_ENOT_SUPPORTED) {
        baic_http_respond_problem(req, 501, "not-implemented", "The kernel cannot be restarted.",
                                  msg, NULL);
    } else if (rc != 0) {
        baic_http_respond_problem(req, 500, "internal-server-error", "Something went wrong.",
                                  baic_strerror(rc), NULL);
    } else {
        baic_http_respond_json(req, 202, json_pack("{s:s}", "kernel_id", kid));
    }
}

int agent_ops_routes(agent_t *a) {
    int rc = baic_http_route(a->http, "GET", "/rpc/kernels/{id}/logs", h_logs, a, 0);
    if (rc == 0)
        rc = baic_http_route(a->http, "POST", "/rpc/kernels/{id}/restart", h_restart, a, 0);
    return rc;
}
