/* SPDX-License-Identifier: Apache-2.0 */
/* storage/vfs: folders, file ops, usage kept by deltas, quota scopes, and confinement of every op. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <baic/errors.h>
#include <baic/storage.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

#define F1 "user:1/0123456789abcdef0123456789abcdef"
#define F2 "user:1/fedcba98-7654-3210-fedc-ba9876543210"

typedef struct vt {
    baic_mock_host_t *m;
    const baic_storage_ops_t *ops;
    void *st;
    baic_volume_t *vol;
    char root[64], outside[64];
    /* the last completion */
    int done, status, fd;
    int64_t a, b;
    size_t n;
    char names[1024];
    baic_file_type_t type;
} vt_t;

static void vt_open(vt_t *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->root, sizeof t->root, "/tmp/baic-vfs-test.XXXXXX");
    snprintf(t->outside, sizeof t->outside, "/tmp/baic-vfs-out.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->root));
    ck_assert_ptr_nonnull(mkdtemp(t->outside));
    t->m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    int rc = baic_mock_host_load_named(t->m, "storage", "vfs", NULL, &d, &t->st);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(t->m));
    t->ops = d->ops;
    json_t *conf = json_pack("{s:s}", "path", t->root);
    ck_assert_int_eq(t->ops->volume_open(t->st, "local", conf, &t->vol), 0);
    json_decref(conf);
}

static void vt_close(vt_t *t) {
    ck_assert_int_eq(t->ops->volume_close(t->st, t->vol), 0);
    baic_mock_host_run(t->m, 2000);
    baic_mock_host_free(t->m);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", t->root, t->outside);
    ck_assert_int_eq(system(cmd), 0);
}

static int is_done(void *arg) { return ((vt_t *)arg)->done; }

/* Waits for the completion of an op that returned rc; gives the op's status either way. */
static int vt_wait(vt_t *t, int rc) {
    if (rc != 0)
        return rc;
    ck_assert_int_eq(baic_mock_host_run_until(t->m, is_done, t, 5000), 0);
    t->done = 0;
    return t->status;
}

static void on_done(void *arg, int status) {
    vt_t *t = arg;
    t->status = status;
    t->done = 1;
}
static void on_open(void *arg, int status, int fd) {
    vt_t *t = arg;
    t->status = status;
    t->fd = fd;
    t->done = 1;
}
static void on_usage(void *arg, int status, int64_t bytes, int64_t files) {
    vt_t *t = arg;
    t->status = status;
    t->a = bytes;
    t->b = files;
    t->done = 1;
}
static void on_quota(void *arg, int status, int64_t limit) {
    vt_t *t = arg;
    t->status = status;
    t->a = limit;
    t->done = 1;
}
static void on_list(void *arg, int status, const baic_file_stat_t *const *ents, size_t n) {
    vt_t *t = arg;
    t->status = status;
    t->n = n;
    t->names[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strncat(t->names, ents[i]->name, sizeof t->names - strlen(t->names) - 2);
        strcat(t->names, ",");
    }
    t->done = 1;
}
static void on_stat(void *arg, int status, const baic_file_stat_t *st) {
    vt_t *t = arg;
    t->status = status;
    if (status == 0) {
        t->a = st->bytes;
        t->type = st->type;
    }
    t->done = 1;
}

#define OPS t->ops
#define S t->st
#define V t->vol

static int vt_write_file(vt_t *t, const char *folder, const char *path, size_t bytes) {
    int rc = vt_wait(t, OPS->open(S, V, folder, path, BAIC_OPEN_WRITE | BAIC_OPEN_CREATE |
                                  BAIC_OPEN_TRUNC, on_open, t));
    if (rc != 0)
        return rc;
    char buf[4096];
    memset(buf, 'z', sizeof buf);
    for (size_t left = bytes; left > 0;) {
        size_t n = left < sizeof buf ? left : sizeof buf;
        ck_assert_int_eq(write(t->fd, buf, n), (ssize_t)n);
        left -= n;
    }
    close(t->fd);
    return 0;
}

START_TEST(folders_and_files) {
    vt_t tt, *t = &tt;
    vt_open(t);
    ck_assert_int_eq(vt_wait(t, OPS->folder_create(S, V, F1, 0, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->folder_create(S, V, F1, 0, on_done, t)), BAIC_EEXISTS);
    ck_assert_int_eq(OPS->folder_create(S, V, "user:1/not-a-uuid", 0, on_done, t), BAIC_EBAD_INPUT);
    char p[2048];
    snprintf(p, sizeof p, "%s/user:1/0123456789abcdef0123456789abcdef", t->root);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);

    ck_assert_int_eq(vt_write_file(t, F1, "a.txt", 100), 0);
    ck_assert_int_eq(vt_wait(t, OPS->usage(S, V, F1, on_usage, t)), 0);
    ck_assert_int_eq(t->a, 100);
    ck_assert_int_eq(t->b, 1);
    ck_assert_int_eq(vt_wait(t, OPS->mkdir(S, V, F1, "x/y/z", 1, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->mkdir(S, V, F1, "x/y/z", 1, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->mkdir(S, V, F1, "x/y/z", 0, on_done, t)), BAIC_EEXISTS);
    ck_assert_int_eq(vt_wait(t, OPS->mkdir(S, V, F1, "q/r", 0, on_done, t)), BAIC_ENOT_FOUND);
    ck_assert_int_eq(vt_wait(t, OPS->list(S, V, F1, "", on_list, t)), 0);
    ck_assert_uint_eq(t->n, 2);
    ck_assert(strstr(t->names, "a.txt,") && strstr(t->names, "x,"));
    ck_assert_int_eq(vt_wait(t, OPS->stat(S, V, F1, "a.txt", on_stat, t)), 0);
    ck_assert_int_eq(t->a, 100);
    ck_assert_int_eq(t->type, BAIC_FILE_REGULAR);
    ck_assert_int_eq(vt_wait(t, OPS->rename(S, V, F1, "a.txt", "x/b.txt", on_done, t)), 0);
    ck_assert_int_eq(vt_write_file(t, F1, "a.txt", 10), 0);
    ck_assert_int_eq(vt_wait(t, OPS->rename(S, V, F1, "a.txt", "x/b.txt", on_done, t)), BAIC_EEXISTS);
    /* Rewriting a file counts its new size, not both. */
    ck_assert_int_eq(vt_write_file(t, F1, "a.txt", 30), 0);
    ck_assert_int_eq(vt_wait(t, OPS->usage(S, V, F1, on_usage, t)), 0);
    ck_assert_int_eq(t->a, 130);
    ck_assert_int_eq(t->b, 2);
    /* Growth after the open is seen too (the proxy writes through the fd). */
    ck_assert_int_eq(vt_wait(t, OPS->open(S, V, F1, "grow", BAIC_OPEN_WRITE | BAIC_OPEN_CREATE,
                                          on_open, t)), 0);
    ck_assert_int_eq(write(t->fd, "12345", 5), 5);
    ck_assert_int_eq(vt_wait(t, OPS->usage(S, V, F1, on_usage, t)), 0);
    ck_assert_int_eq(t->a, 135);
    ck_assert_int_eq(write(t->fd, "12345", 5), 5);
    close(t->fd);
    ck_assert_int_eq(vt_wait(t, OPS->usage(S, V, F1, on_usage, t)), 0);
    ck_assert_int_eq(t->a, 140);
    const char *one[] = {"x"};
    ck_assert_int_eq(vt_wait(t, OPS->delete_files(S, V, F1, one, 1, 0, on_done, t)), UV_ENOTEMPTY);
    ck_assert_int_eq(vt_wait(t, OPS->delete_files(S, V, F1, one, 1, 1, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->usage(S, V, F1, on_usage, t)), 0);
    ck_assert_int_eq(t->a, 40);
    ck_assert_int_eq(t->b, 2);

    /* clone, then delete the source */
    ck_assert_int_eq(vt_wait(t, OPS->folder_clone(S, V, F1, NULL, F2, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->usage(S, V, F2, on_usage, t)), 0);
    ck_assert_int_eq(t->a, 40);
    ck_assert_int_eq(vt_wait(t, OPS->folder_delete(S, V, F1, on_done, t)), 0);
    ck_assert_int_ne(stat(p, &st), 0);
    ck_assert_int_eq(vt_wait(t, OPS->stat(S, V, F2, "grow", on_stat, t)), 0);
    ck_assert_int_eq(t->a, 10);
    vt_close(t);
}
END_TEST

START_TEST(quota_scopes) {
    vt_t tt, *t = &tt;
    vt_open(t);
    ck_assert_int_eq(vt_wait(t, OPS->folder_create(S, V, F1, 0, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->folder_create(S, V, F2, 0, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->quota_get(S, V, "user:1", on_quota, t)), 0);
    ck_assert_int_eq(t->a, 0);
    ck_assert_int_eq(vt_wait(t, OPS->quota_set(S, V, "user:1", 1000, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->quota_get(S, V, "user:1", on_quota, t)), 0);
    ck_assert_int_eq(t->a, 1000);
    /* A folder id stands for its scope. */
    ck_assert_int_eq(vt_wait(t, OPS->quota_get(S, V, F2, on_quota, t)), 0);
    ck_assert_int_eq(t->a, 1000);
    ck_assert_int_eq(vt_write_file(t, F1, "a", 300), 0);
    ck_assert_int_eq(vt_write_file(t, F2, "b", 200), 0);
    ck_assert_int_eq(vt_wait(t, OPS->usage(S, V, "user:1", on_usage, t)), 0);
    ck_assert_int_eq(t->a, 500);
    ck_assert_int_eq(t->b, 2);
    ck_assert_int_eq(vt_wait(t, OPS->quota_unset(S, V, "user:1", on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->quota_get(S, V, "user:1", on_quota, t)), 0);
    ck_assert_int_eq(t->a, 0);
    ck_assert_int_eq(OPS->quota_set(S, V, "../evil", 1, on_done, t), BAIC_EBAD_INPUT);
    ck_assert_int_eq(OPS->quota_set(S, V, ".hidden", 1, on_done, t), BAIC_EBAD_INPUT);

    /* Bytes written behind the plugin's back show up after a rescan. */
    char p[2048];
    snprintf(p, sizeof p, "%s/user:1/0123456789abcdef0123456789abcdef/side", t->root);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("0123456789", f);
    fclose(f);
    json_t *ev = json_pack("{s:s, s:s}", "volume", "local", "vfid", F1);
    ck_assert_int_eq(baic_mock_host_publish(t->m, "storage_rescan", ev), 0);
    json_decref(ev);
    baic_mock_host_run(t->m, 500);
    ck_assert_int_eq(vt_wait(t, OPS->usage(S, V, F1, on_usage, t)), 0);
    ck_assert_int_eq(t->a, 310);
    vt_close(t);
}
END_TEST

/* Every file op refuses paths that leave the folder, absolute paths and symlinks. */
static void traversal(int no_openat2) {
    if (no_openat2)
        setenv("BAIC_VFS_NO_OPENAT2", "1", 1);
    vt_t tt, *t = &tt;
    vt_open(t);
    ck_assert_int_eq(vt_wait(t, OPS->folder_create(S, V, F1, 0, on_done, t)), 0);
    ck_assert_int_eq(vt_wait(t, OPS->mkdir(S, V, F1, "d", 0, on_done, t)), 0);
    char p[2048], target[2048];
    snprintf(p, sizeof p, "%s/user:1/0123456789abcdef0123456789abcdef/out-dir", t->root);
    ck_assert_int_eq(symlink(t->outside, p), 0);
    snprintf(target, sizeof target, "%s/secret", t->outside);
    FILE *f = fopen(target, "w");
    ck_assert_ptr_nonnull(f);
    fputs("secret", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/user:1/0123456789abcdef0123456789abcdef/d/out-file", t->root);
    ck_assert_int_eq(symlink(target, p), 0);
    snprintf(p, sizeof p, "%s/user:1/0123456789abcdef0123456789abcdef/d/up", t->root);
    ck_assert_int_eq(symlink("..", p), 0);

    const char *bad[] = {"..", "../x", "d/../../x", "/etc/passwd", "out-dir/secret",
                         "out-dir/new", "d/out-file", "d/up/d/out-file", "out-dir"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *b = bad[i];
        char sub[128];
        snprintf(sub, sizeof sub, "%s/sub", b);
        const char *one[] = {sub};
        ck_assert_msg(vt_wait(t, OPS->open(S, V, F1, b, BAIC_OPEN_READ, on_open, t)) ==
                          BAIC_EPERMISSION, "open read %s", b);
        ck_assert_msg(vt_wait(t, OPS->open(S, V, F1, b, BAIC_OPEN_WRITE | BAIC_OPEN_CREATE,
                                           on_open, t)) == BAIC_EPERMISSION, "open write %s", b);
        ck_assert_msg(vt_wait(t, OPS->mkdir(S, V, F1, sub, 1, on_done, t)) == BAIC_EPERMISSION,
                      "mkdir %s", sub);
        ck_assert_msg(vt_wait(t, OPS->list(S, V, F1, b, on_list, t)) == BAIC_EPERMISSION,
                      "list %s", b);
        ck_assert_msg(vt_wait(t, OPS->rename(S, V, F1, "d", sub, on_done, t)) == BAIC_EPERMISSION,
                      "rename to %s", sub);
        ck_assert_msg(vt_wait(t, OPS->rename(S, V, F1, sub, "x", on_done, t)) == BAIC_EPERMISSION,
                      "rename from %s", sub);
        ck_assert_msg(vt_wait(t, OPS->delete_files(S, V, F1, one, 1, 1, on_done, t)) ==
                          BAIC_EPERMISSION, "delete %s", sub);
        ck_assert_msg(vt_wait(t, OPS->stat(S, V, F1, sub, on_stat, t)) == BAIC_EPERMISSION,
                      "stat %s", sub);
    }
    /* The links themselves are folder entries: removing one leaves its target alone. */
    const char *lnk[] = {"out-dir", "d/out-file"};
    ck_assert_int_eq(vt_wait(t, OPS->delete_files(S, V, F1, lnk, 2, 1, on_done, t)), 0);
    struct stat st;
    ck_assert_int_eq(stat(target, &st), 0);
    ck_assert_int_eq(st.st_size, 6);
    ck_assert_int_eq(vt_wait(t, OPS->folder_delete(S, V, F1, on_done, t)), 0);
    ck_assert_int_eq(stat(target, &st), 0);
    vt_close(t);
}

START_TEST(traversal_openat2) { traversal(0); }
END_TEST

START_TEST(traversal_fallback_walk) { traversal(1); }
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("storage_vfs");
    BAIC_TCASE(s, tc, "vfs", 60);
    tcase_add_test(tc, folders_and_files);
    tcase_add_test(tc, quota_scopes);
    tcase_add_test(tc, traversal_openat2);
    tcase_add_test(tc, traversal_fallback_walk);
    return s;
}

BAIC_CHECK_MAIN(suite)
