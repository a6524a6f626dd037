/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the host-mount parameter rules (core/util/hostmount.c), shared by the
 * manager's /folders/_/mounts and the agent's /rpc/mounts. */

#include <string.h>

#include "baic_check.h"
#include "util/hostmount.h"

/* The parsed bodies: out's strings point into them, so they live until the test ends. */
static json_t *g_keep;

static void setup(void) {
    g_keep = json_array();
}

static void teardown(void) {
    json_decref(g_keep);
    g_keep = NULL;
}

/* 0 when body (JSON text) passes for mount (1) or umount (0); out filled. */
static int check(const char *text, int mount, baic_hostmount_req_t *out) {
    json_t *body = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    ck_assert_ptr_nonnull(body);
    json_array_append_new(g_keep, body);
    char msg[256] = "";
    baic_hostmount_req_t tmp;
    int rc = baic_hostmount_parse(body, mount, out ? out : &tmp, msg, sizeof msg);
    if (rc != 0)
        ck_assert_int_gt((int)strlen(msg), 0);
    return rc;
}

START_TEST(names) {
    baic_hostmount_req_t p;
    ck_assert_int_eq(check("{\"name\":\"data-1.x_Y\",\"fs_location\":\"srv:/e\"}", 1, &p), 0);
    ck_assert_str_eq(p.name, "data-1.x_Y");
    ck_assert_str_eq(p.fs_type, "nfs"); /* the default */
    ck_assert_ptr_null(p.options);
    ck_assert_int_eq(p.edit_fstab, 0);
    char buf[200];
    memset(buf, 0, sizeof buf);
    strcpy(buf, "{\"name\":\"");
    memset(buf + strlen(buf), 'a', 64);
    strcat(buf, "\",\"fs_location\":\"x\"}");
    ck_assert_int_eq(check(buf, 1, NULL), 0); /* 64: fine */
    memset(buf, 0, sizeof buf);
    strcpy(buf, "{\"name\":\"");
    memset(buf + strlen(buf), 'a', 65);
    strcat(buf, "\",\"fs_location\":\"x\"}");
    ck_assert_int_eq(check(buf, 1, NULL), -1); /* 65: too long */
    static const char *const bad[] = {"",      ".",         "..",      "a/b", "/a",   "a b",
                                      "a\\nb", "a\\u0000b", "\\u00e9", "a*",  "$(x)", "a\\\\b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf, "{\"name\":\"%s\",\"fs_location\":\"x\"}", bad[i]);
        ck_assert_msg(check(buf, 1, NULL) == -1, "name %s passed", bad[i]);
        snprintf(buf, sizeof buf, "{\"name\":\"%s\"}", bad[i]);
        ck_assert_msg(check(buf, 0, NULL) == -1, "umount name %s passed", bad[i]);
    }
    ck_assert_int_eq(check("{\"name\":\"..a\",\"fs_location\":\"x\"}", 1, NULL), 0);
    ck_assert_int_eq(check("{\"fs_location\":\"x\"}", 1, NULL), -1);
    ck_assert_int_eq(check("{\"name\":null}", 0, NULL), -1);
    ck_assert_int_eq(check("[\"a\"]", 0, NULL), -1);
}
END_TEST

START_TEST(mount_fields) {
    baic_hostmount_req_t p;
    ck_assert_int_eq(check("{\"name\":\"n\",\"fs_location\":\"tmpfs\",\"fs_type\":\"tmpfs\","
                           "\"options\":\"size=4m,mode=0755\",\"edit_fstab\":\"true\","
                           "\"fstab_path\":\"/etc/fstab\",\"scaling_group\":\"default\"}",
                           1, &p),
                     0);
    ck_assert_str_eq(p.fs_type, "tmpfs");
    ck_assert_str_eq(p.options, "size=4m,mode=0755");
    ck_assert_str_eq(p.fstab_path, "/etc/fstab");
    ck_assert_str_eq(p.scaling_group, "default");
    ck_assert_int_eq(p.edit_fstab, 1);
    ck_assert_int_eq(check("{\"name\":\"n\",\"fs_location\":\"x\",\"options\":\"\"}", 1, &p), 0);
    ck_assert_ptr_null(p.options); /* "" = none */
    ck_assert_int_eq(
        check("{\"name\":\"n\",\"fs_location\":\"x\",\"edit_fstab\":\"false\"}", 1, &p), 0);
    ck_assert_int_eq(p.edit_fstab, 0);
    static const char *const bad[] = {
        "\"fs_location\":\"\"",     "\"fs_location\":\"-o\"",
        "\"fs_location\":\"a b\"",  "\"fs_location\":\"a\\tb\"",
        "\"fs_location\":7",        "\"fs_type\":\"\"",
        "\"fs_type\":\"NFS\"",      "\"fs_type\":\"nfs-4\"",
        "\"fs_type\":\"a/b\"",      "\"fs_type\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        "\"options\":\"a b\"",      "\"options\":\"a\\nb\"",
        "\"options\":[]",           "\"edit_fstab\":1",
        "\"edit_fstab\":\"yes\"",   "\"edit_fstab\":\"True\"",
        "\"fstab_path\":\"fstab\"", "\"fstab_path\":\"/a b\"",
        "\"scaling_group\":\"\"",   "\"scaling_group\":{}",
    };
    char buf[300];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(buf, sizeof buf, "{\"name\":\"n\",\"fs_location\":\"x\",%s}", bad[i]);
        ck_assert_msg(check(buf, 1, NULL) == -1, "%s passed", bad[i]);
    }
    ck_assert_int_eq(check("{\"name\":\"n\",\"fs_type\":\"nfs4\",\"fs_location\":\"x\"}", 1, NULL),
                     0);
    /* umount ignores the mount-only fields, but not a bad edit_fstab */
    ck_assert_int_eq(check("{\"name\":\"n\",\"fs_location\":\"-x\",\"fs_type\":\"X\"}", 0, NULL),
                     0);
    ck_assert_int_eq(check("{\"name\":\"n\",\"edit_fstab\":\"x\"}", 0, NULL), -1);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("hostmount");
    BAIC_TCASE(s, tc, "params", 10);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, names);
    tcase_add_test(tc, mount_fields);
    return s;
}

BAIC_CHECK_MAIN(suite)
