/* SPDX-License-Identifier: Apache-2.0 */
/* Shared driver for storage plugin tests: loads storage/<name> into the mock host and waits for
 * completions. */
#ifndef BAIC_TEST_STORAGE_FIXTURE_H
#define BAIC_TEST_STORAGE_FIXTURE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/errors.h>
#include <baic/storage.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

typedef struct st_fx {
    baic_mock_host_t *m;
    const baic_storage_ops_t *ops;
    void *st;
    /* the last completion */
    int done, status, fd;
    int64_t a, b;
} st_fx_t;

static inline void fx_load(st_fx_t *t, const char *name) {
    memset(t, 0, sizeof *t);
    t->fd = -1;
    t->m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    int rc = baic_mock_host_load_named(t->m, "storage", name, NULL, &d, &t->st);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(t->m));
    t->ops = d->ops;
}

static inline void fx_unload(st_fx_t *t) {
    baic_mock_host_run(t->m, 200);
    baic_mock_host_free(t->m);
}

/* Opens a volume from a JSON text; returns volume_open's code. */
static inline int fx_volume(st_fx_t *t, const char *name, const char *conf_json,
                            baic_volume_t **out) {
    json_error_t err;
    json_t *conf = json_loads(conf_json, 0, &err);
    ck_assert_msg(conf != NULL, "conf: %s", err.text);
    int rc = t->ops->volume_open(t->st, name, conf, out);
    json_decref(conf);
    return rc;
}

static inline int fx_is_done(void *arg) {
    return ((st_fx_t *)arg)->done;
}

/* Waits for the completion of an op that returned rc; gives the op's status either way. */
static inline int fx_wait(st_fx_t *t, int rc) {
    if (rc != 0)
        return rc;
    ck_assert_int_eq(baic_mock_host_run_until(t->m, fx_is_done, t, 20000), 0);
    t->done = 0;
    return t->status;
}

static inline void fx_on_done(void *arg, int status) {
    st_fx_t *t = arg;
    t->status = status;
    t->done = 1;
}
static inline void fx_on_open(void *arg, int status, int fd) {
    st_fx_t *t = arg;
    t->status = status;
    t->fd = fd;
    t->done = 1;
}
static inline void fx_on_usage(void *arg, int status, int64_t bytes, int64_t files) {
    st_fx_t *t = arg;
    t->status = status;
    t->a = bytes;
    t->b = files;
    t->done = 1;
}
static inline void fx_on_quota(void *arg, int status, int64_t limit) {
    st_fx_t *t = arg;
    t->status = status;
    t->a = limit;
    t->done = 1;
}
static inline void fx_on_vusage(void *arg, int status, int64_t cap, int64_t used) {
    st_fx_t *t = arg;
    t->status = status;
    t->a = cap;
    t->b = used;
    t->done = 1;
}

/* Writes bytes through an fd the plugin opened (as the proxy does); returns the open's code
 * or, when a write fails, -errno of that write. */
static inline int fx_write(st_fx_t *t, baic_volume_t *v, const char *folder, const char *path,
                           size_t bytes) {
    int rc = fx_wait(t, t->ops->open(t->st, v, folder, path,
                                     BAIC_OPEN_WRITE | BAIC_OPEN_CREATE | BAIC_OPEN_TRUNC,
                                     fx_on_open, t));
    if (rc != 0)
        return rc;
    static char buf[65536];
    memset(buf, 'z', sizeof buf);
    for (size_t left = bytes; left > 0;) {
        size_t n = left < sizeof buf ? left : sizeof buf;
        ssize_t w = write(t->fd, buf, n);
        if (w < 0) {
            rc = -errno;
            break;
        }
        left -= (size_t)w;
    }
    if (rc == 0 && fsync(t->fd) != 0)
        rc = -errno;
    close(t->fd);
    t->fd = -1;
    return rc;
}

/* Runs a shell command; 0 when it exited 0. */
static inline int fx_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int fx_sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd)
        return -1;
    int rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

#endif
