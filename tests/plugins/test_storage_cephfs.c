/* SPDX-License-Identifier: Apache-2.0 */
/* storage/cephfs against a fake CephFS client (tests/fixtures/fake-cephfs, LD_PRELOADed): quota
 * xattrs, rbytes usage, the volume cap on the root. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "plugins/storage_fixture.h"

#define F1 "user:1/0123456789abcdef0123456789abcdef"
#define F2 "user:1/fedcba98-7654-3210-fedc-ba9876543210"
#define MIB (1024 * 1024)

static const char *g_root; /* the fake CephFS */

static long long xattr_of(const char *rel, const char *name) {
    char p[512], buf[32];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    ssize_t n = getxattr(p, name, buf, sizeof buf - 1);
    if (n < 0)
        return errno == ENODATA ? -1 : -2;
    buf[n] = '\0';
    return atoll(buf);
}

static void put_file(const char *rel, size_t bytes) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < bytes; i++)
        fputc('x', f);
    fclose(f);
}

static baic_volume_t *open_vol(st_fx_t *t, const char *sub, const char *extra) {
    char conf[512];
    baic_volume_t *v = NULL;
    snprintf(conf, sizeof conf, "{\"path\":\"%s/%s\"%s}", g_root, sub, extra);
    ck_assert_int_eq(fx_volume(t, sub, conf, &v), 0);
    return v;
}

START_TEST(refuses_other_filesystems) {
    st_fx_t tt, *t = &tt;
    fx_load(t, "cephfs");
    char dir[] = "/tmp/baic-notceph.XXXXXX", conf[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf, sizeof conf, "{\"path\":\"%s\"}", dir);
    baic_volume_t *v = NULL;
    ck_assert_int_eq(fx_volume(t, "v", conf, &v), BAIC_ENOT_SUPPORTED);
    ck_assert(baic_mock_host_log_contains(t->m, "not on a CephFS mount"));
    ck_assert_int_eq(fx_volume(t, "v", "{\"path\":\"relative\"}", &v), BAIC_ECONFIG_MISSING);
    snprintf(conf, sizeof conf, "{\"path\":\"%s/v\",\"volume_quota_bytes\":\"12X\"}", g_root);
    ck_assert_int_eq(fx_volume(t, "v", conf, &v), BAIC_ECONFIG_TYPE);
    rmdir(dir);
    fx_unload(t);
}
END_TEST

START_TEST(quota_and_usage) {
    st_fx_t tt, *t = &tt;
    fx_load(t, "cephfs");
    baic_volume_t *v = open_vol(t, "vol", "");
    uint32_t caps = 0;
    ck_assert_int_eq(t->ops->capabilities(t->st, v, &caps), 0);
    ck_assert(caps & BAIC_STORAGE_CAP_QUOTA);
    ck_assert(caps & BAIC_STORAGE_CAP_USAGE_FAST);

    /* create with a quota: the scope directory carries it */
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F1, 5 * MIB, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F2, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(xattr_of("vol/user:1", "ceph.quota.max_bytes"), 5 * MIB);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, "user:1", fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, 5 * MIB);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_set(t->st, v, F2, 7 * MIB, fx_on_done, t)), 0);
    ck_assert_int_eq(xattr_of("vol/user:1", "ceph.quota.max_bytes"), 7 * MIB);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, "user:1", fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, 7 * MIB);
    /* a scope no folder lives in yet */
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, "user:9", fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, 0);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_set(t->st, v, "user:9", MIB, fx_on_done, t)), 0);
    ck_assert_int_eq(xattr_of("vol/user:9", "ceph.quota.max_bytes"), MIB);
    ck_assert_int_eq(t->ops->quota_set(t->st, v, "user:1", -5, fx_on_done, t), BAIC_EBAD_INPUT);
    ck_assert_int_eq(t->ops->quota_set(t->st, v, "../..", MIB, fx_on_done, t), BAIC_EBAD_INPUT);

    /* usage is CephFS's rbytes/rfiles: files written behind the plugin's back count at once */
    ck_assert_int_eq(fx_write(t, v, F1, "a", 1000), 0);
    put_file("vol/user:1/0123456789abcdef0123456789abcdef/side", 234);
    ck_assert_int_eq(fx_wait(t, t->ops->mkdir(t->st, v, F2, "d/e", 1, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_write(t, v, F2, "d/e/b", 4000), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->usage(t->st, v, F1, fx_on_usage, t)), 0);
    ck_assert_int_eq(t->a, 1234);
    ck_assert_int_eq(t->b, 2);
    ck_assert_int_eq(fx_wait(t, t->ops->usage(t->st, v, "user:1", fx_on_usage, t)), 0);
    ck_assert_int_eq(t->a, 5234);
    ck_assert_int_eq(t->b, 3);
    ck_assert_int_eq(fx_wait(t, t->ops->usage(t->st, v, "user:5", fx_on_usage, t)), 0);
    ck_assert_int_eq(t->a, 0);
    ck_assert_int_eq(fx_wait(t, t->ops->usage(t->st, v, "user:5/00000000000000000000000000000001",
                                              fx_on_usage, t)),
                     BAIC_ENOT_FOUND);

    /* unset removes the xattr */
    ck_assert_int_eq(fx_wait(t, t->ops->quota_unset(t->st, v, "user:1", fx_on_done, t)), 0);
    ck_assert_int_eq(xattr_of("vol/user:1", "ceph.quota.max_bytes"), -1);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, "user:1", fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, 0);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    fx_unload(t);
}
END_TEST

/* volume_quota_bytes becomes a quota on the root: the MDS enforces it for every client. */
START_TEST(volume_cap_on_root) {
    st_fx_t tt, *t = &tt;
    fx_load(t, "cephfs");
    baic_volume_t *v = open_vol(t, "capped", ",\"volume_quota_bytes\":\"1M\"");
    ck_assert_int_eq(xattr_of("capped", "ceph.quota.max_bytes"), MIB);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F1, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_write(t, v, F1, "a", 3000), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_eq(t->a, MIB);
    ck_assert_int_eq(t->b, 3000);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    fx_unload(t);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("storage_cephfs");
    BAIC_TCASE(s, tc, "cephfs", 60);
    tcase_add_test(tc, refuses_other_filesystems);
    tcase_add_test(tc, quota_and_usage);
    tcase_add_test(tc, volume_cap_on_root);
    return s;
}

int main(int argc, char **argv) {
    (void)argc;
    g_root = getenv("BAIC_FAKE_CEPHFS_ROOT");
    if (g_root == NULL) {
        /* Run again with the fake client preloaded. */
        const char *bd = getenv("BAIC_BUILD_DIR");
        char shim[1024], root[] = "/tmp/baic-cephfs-test.XXXXXX", asan[1024];
        snprintf(shim, sizeof shim, "%s/fixture-deps/libbaic_fake_cephfs.so", bd ? bd : ".");
        if (access(shim, R_OK) != 0 || mkdtemp(root) == NULL) {
            fprintf(stderr, "test_storage_cephfs: %s missing (build the baic_fake_cephfs target)\n",
                    shim);
            return 1;
        }
        const char *ao = getenv("ASAN_OPTIONS");
        snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", ao ? ao : "", ao ? ":" : "");
        setenv("ASAN_OPTIONS", asan, 1);
        setenv("LD_PRELOAD", shim, 1);
        setenv("BAIC_FAKE_CEPHFS_ROOT", root, 1);
        execv("/proc/self/exe", argv);
        perror("execv");
        return 1;
    }
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        failed++;
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
