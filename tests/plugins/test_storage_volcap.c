/* SPDX-License-Identifier: Apache-2.0 */
/* The common engine's volume cap (volume_quota_bytes) and capability/health reports, through
 * storage/vfs. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>

#include "plugins/storage_fixture.h"

#define FA "user:1/0123456789abcdef0123456789abcdef"
#define FB "user:2/fedcba98-7654-3210-fedc-ba9876543210"
#define FC "user:2/00000000000000000000000000000003"

static char g_root[64];

static baic_volume_t *vol_with(st_fx_t *t, const char *cap_json) {
    char conf[256];
    baic_volume_t *v = NULL;
    snprintf(conf, sizeof conf, "{\"path\":\"%s\",\"volume_quota_bytes\":%s}", g_root, cap_json);
    ck_assert_int_eq(fx_volume(t, "capped", conf, &v), 0);
    return v;
}

static void fresh_root(void) {
    snprintf(g_root, sizeof g_root, "/tmp/baic-volcap.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_root));
}

START_TEST(cap_enforced_across_folders) {
    st_fx_t tt, *t = &tt;
    fresh_root();
    fx_load(t, "vfs");
    baic_volume_t *v = vol_with(t, "10000");
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_eq(t->a, 10000);
    ck_assert_int_eq(t->b, 0);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, FA, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, FB, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_write(t, v, FA, "a", 6000), 0);
    ck_assert_int_eq(fx_write(t, v, FB, "b", 3000), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_eq(t->b, 9000);
    /* Room left: an open for writing is allowed (what it writes is not known yet). */
    ck_assert_int_eq(fx_write(t, v, FB, "c", 2000), 0);
    /* Full, whichever folder or scope asks. */
    ck_assert_int_eq(fx_write(t, v, FA, "d", 1), BAIC_EQUOTA);
    ck_assert_int_eq(fx_write(t, v, FB, "b", 1), BAIC_EQUOTA);
    ck_assert_int_eq(fx_wait(t, t->ops->open(t->st, v, FA, "a", BAIC_OPEN_READ, fx_on_open, t)), 0);
    close(t->fd);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_clone(t->st, v, FA, NULL, FC, fx_on_done, t)),
                     BAIC_EQUOTA);
    char p[256];
    snprintf(p, sizeof p, "%s/user:2/00000000000000000000000000000003", g_root);
    struct stat st;
    ck_assert_int_ne(stat(p, &st), 0); /* no half clone */
    /* Freeing room lets writers in again. */
    const char *rm[] = {"a"};
    ck_assert_int_eq(fx_wait(t, t->ops->delete_files(t->st, v, FA, rm, 1, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_write(t, v, FA, "d", 100), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_clone(t->st, v, FA, NULL, FC, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_eq(t->b, 5200);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    fx_unload(t);
    fx_sh("rm -rf %s", g_root);
}
END_TEST

/* What lies on the volume before it is opened counts: every scope is walked. */
START_TEST(cap_counts_existing_data) {
    st_fx_t tt, *t = &tt;
    fresh_root();
    ck_assert_int_eq(fx_sh("mkdir -p %s/user:7/0123456789abcdef0123456789abcdef && "
                           "head -c 5000 /dev/zero > %s/user:7/0123456789abcdef0123456789abcdef/x",
                           g_root, g_root),
                     0);
    fx_load(t, "vfs");
    baic_volume_t *v = vol_with(t, "\"4k\"");
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, FA, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_write(t, v, FA, "a", 1), BAIC_EQUOTA);
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_eq(t->a, 4096);
    ck_assert_int_eq(t->b, 5000);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    fx_unload(t);
    fx_sh("rm -rf %s", g_root);
}
END_TEST

START_TEST(cap_option_checked) {
    st_fx_t tt, *t = &tt;
    fresh_root();
    fx_load(t, "vfs");
    const char *bad[] = {"-1",     "\"abc\"", "\"5Q\"",           "1.5",   "\"\"",
                         "\"-3\"", "true",    "\"99999999999P\"", "\" 5\""};
    char conf[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        baic_volume_t *v = NULL;
        snprintf(conf, sizeof conf, "{\"path\":\"%s\",\"volume_quota_bytes\":%s}", g_root, bad[i]);
        ck_assert_msg(fx_volume(t, "c", conf, &v) == BAIC_ECONFIG_TYPE, "accepted %s", bad[i]);
    }
    ck_assert(baic_mock_host_log_contains(t->m, "volume_quota_bytes must be"));
    /* 0 means no cap */
    baic_volume_t *v = vol_with(t, "0");
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_gt(t->a, 4096);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    fx_unload(t);
    fx_sh("rm -rf %s", g_root);
}
END_TEST

START_TEST(capabilities_and_health) {
    st_fx_t tt, *t = &tt;
    fresh_root();
    fx_load(t, "vfs");
    baic_volume_t *v = vol_with(t, "0");
    uint32_t caps = 0;
    ck_assert_int_eq(t->ops->capabilities(t->st, v, &caps), 0);
    ck_assert_uint_eq(caps, BAIC_STORAGE_CAP_QUOTA | BAIC_STORAGE_CAP_CLONE |
                                BAIC_STORAGE_CAP_FILE_OPS | BAIC_STORAGE_CAP_METRIC);
    ck_assert_ptr_nonnull(t->ops->health);
    int healthy = -1;
    const char *why = "x";
    ck_assert_int_eq(t->ops->health(t->st, v, &healthy, &why), 0);
    ck_assert_int_eq(healthy, 1);
    ck_assert_ptr_null(why);
    ck_assert_int_eq(t->ops->health(t->st, NULL, &healthy, &why), BAIC_EBAD_INPUT);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    fx_unload(t);
    fx_sh("rm -rf %s", g_root);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("storage_volcap");
    BAIC_TCASE(s, tc, "volcap", 60);
    tcase_add_test(tc, cap_enforced_across_folders);
    tcase_add_test(tc, cap_counts_existing_data);
    tcase_add_test(tc, cap_option_checked);
    tcase_add_test(tc, capabilities_and_health);
    return s;
}

BAIC_CHECK_MAIN(suite)
