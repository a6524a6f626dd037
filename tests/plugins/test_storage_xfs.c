/* SPDX-License-Identifier: Apache-2.0 */
/* storage/xfs on a loop-mounted XFS image: project ids per scope, kernel-enforced limits, fast
 * usage, the volume cap. Needs root, mkfs.xfs and a kernel with XFS quota support; exits 77 (skip)
 * with the reason otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <linux/fs.h>

#include "plugins/storage_fixture.h"

#define F1 "user:1/0123456789abcdef0123456789abcdef"
#define F2 "user:1/fedcba98-7654-3210-fedc-ba9876543210"
#define F3 "user:2/00000000000000000000000000000003"
#define MIB (1024 * 1024)

static char g_dir[64];    /* work directory */
static char g_plain[128]; /* XFS mounted without quotas */
static char g_quota[128]; /* XFS mounted with prjquota ("" when that failed) */
static char g_why[256];   /* why the quota mount is missing */

static uint32_t projid_of(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(fd, 0);
    struct fsxattr fx;
    ck_assert_int_eq(ioctl(fd, FS_IOC_FSGETXATTR, &fx), 0);
    close(fd);
    ck_assert_msg(fx.fsx_xflags & FS_XFLAG_PROJINHERIT, "%s lacks the project inherit flag", path);
    return fx.fsx_projid;
}

/* A volume that is not on XFS, or on XFS without project quotas, is refused with a reason. */
START_TEST(refuses_without_project_quota) {
    st_fx_t tt, *t = &tt;
    fx_load(t, "xfs");
    baic_volume_t *v = NULL;
    char conf[512];
    struct statfs sf;
    char other[128];
    snprintf(other, sizeof other, "%s/not-xfs", g_dir);
    ck_assert_int_eq(mkdir(other, 0755), 0);
    ck_assert_int_eq(statfs(other, &sf), 0);
    if (sf.f_type != 0x58465342) {
        snprintf(conf, sizeof conf, "{\"path\":\"%s\"}", other);
        ck_assert_int_eq(fx_volume(t, "v", conf, &v), BAIC_ENOT_SUPPORTED);
        ck_assert(baic_mock_host_log_contains(t->m, "not on an XFS filesystem"));
    }
    snprintf(conf, sizeof conf, "{\"path\":\"%s/vol\"}", g_plain);
    ck_assert_int_eq(fx_volume(t, "v", conf, &v), BAIC_ENOT_SUPPORTED);
    ck_assert(baic_mock_host_log_contains(t->m, "mount the filesystem with -o prjquota"));
    snprintf(conf, sizeof conf, "{\"path\":\"%s/vol\",\"project_id_base\":\"x\"}",
             g_quota[0] ? g_quota : g_plain);
    int rc = fx_volume(t, "v", conf, &v);
    ck_assert(rc == BAIC_ECONFIG_TYPE || (g_quota[0] == '\0' && rc == BAIC_ENOT_SUPPORTED));
    snprintf(conf, sizeof conf, "{\"path\":\"%s/vol\",\"volume_quota_bytes\":-1}", g_plain);
    ck_assert_int_eq(fx_volume(t, "v", conf, &v), BAIC_ECONFIG_TYPE);
    fx_unload(t);
}
END_TEST

START_TEST(project_quotas) {
    st_fx_t tt, *t = &tt;
    fx_load(t, "xfs");
    baic_volume_t *v = NULL;
    char conf[512], p[512];
    snprintf(conf, sizeof conf, "{\"path\":\"%s/vol\",\"project_id_base\":5000}", g_quota);
    ck_assert_int_eq(fx_volume(t, "v", conf, &v), 0);
    uint32_t caps = 0;
    ck_assert_int_eq(t->ops->capabilities(t->st, v, &caps), 0);
    ck_assert(caps & BAIC_STORAGE_CAP_QUOTA);
    ck_assert(caps & BAIC_STORAGE_CAP_FILE_OPS);

    /* A folder created with a quota: its scope becomes a project with that limit. */
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F1, 2 * MIB, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F2, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F3, 0, fx_on_done, t)), 0);
    snprintf(p, sizeof p, "%s/vol/user:1", g_quota);
    uint32_t id1 = projid_of(p);
    ck_assert_uint_eq(id1, 5000);
    snprintf(p, sizeof p, "%s/vol/user:1/0123456789abcdef0123456789abcdef", g_quota);
    ck_assert_uint_eq(projid_of(p), id1); /* inherited */
    snprintf(p, sizeof p, "%s/vol/user:2", g_quota);
    ck_assert_uint_eq(projid_of(p), 5001);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, "user:1", fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, 2 * MIB);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, "user:2", fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, 0);

    /* Usage of the scope comes from the project's accounting. */
    ck_assert_int_eq(fx_write(t, v, F1, "a", MIB), 0);
    ck_assert_int_eq(fx_write(t, v, F2, "b", MIB / 2), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->usage(t->st, v, "user:1", fx_on_usage, t)), 0);
    ck_assert_msg(t->a >= MIB + MIB / 2 && t->a < MIB + MIB / 2 + 256 * 1024, "scope used %lld",
                  (long long)t->a);
    /* The folder's own figure is walked. */
    ck_assert_int_eq(fx_wait(t, t->ops->usage(t->st, v, F2, fx_on_usage, t)), 0);
    ck_assert_int_eq(t->a, MIB / 2);
    ck_assert_int_eq(t->b, 1);

    /* The kernel stops a writer at the limit, whoever writes. */
    int rc = fx_write(t, v, F1, "big", MIB);
    ck_assert_msg(rc == -EDQUOT || rc == -ENOSPC, "write past the project limit gave %d", rc);

    /* set replaces, unset removes; the other scope is untouched. */
    ck_assert_int_eq(fx_wait(t, t->ops->quota_set(t->st, v, "user:1", 8 * MIB, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, F1, fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, 8 * MIB);
    ck_assert_int_eq(fx_write(t, v, F1, "big", 3 * MIB), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_unset(t->st, v, "user:1", fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, "user:1", fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, 0);
    /* A scope with no folder yet gets its project on quota_set. */
    ck_assert_int_eq(fx_wait(t, t->ops->quota_set(t->st, v, "project:x", MIB, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->quota_get(t->st, v, "project:x", fx_on_quota, t)), 0);
    ck_assert_int_eq(t->a, MIB);
    ck_assert_int_eq(t->ops->quota_set(t->st, v, "../x", MIB, fx_on_done, t), BAIC_EBAD_INPUT);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);

    /* Reopened, new scopes continue above the ids in use. */
    ck_assert_int_eq(fx_volume(t, "v", conf, &v), 0);
    ck_assert_int_eq(
        fx_wait(t, t->ops->folder_create(t->st, v, "user:3/00000000000000000000000000000004", 0,
                                         fx_on_done, t)),
        0);
    snprintf(p, sizeof p, "%s/vol/user:3", g_quota);
    ck_assert_uint_eq(projid_of(p), 5003);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    fx_unload(t);
}
END_TEST

/* volume_quota_bytes: the sum over the volume's projects is capped. */
START_TEST(volume_cap) {
    st_fx_t tt, *t = &tt;
    fx_load(t, "xfs");
    baic_volume_t *v = NULL;
    char conf[512];
    snprintf(conf, sizeof conf,
             "{\"path\":\"%s/capped\",\"volume_quota_bytes\":\"2M\","
             "\"project_id_base\":5000}",
             g_quota);
    ck_assert_int_eq(fx_volume(t, "c", conf, &v), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F1, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F3, 0, fx_on_done, t)), 0);
    /* The same base as the volume "vol" on this filesystem: ids in use there are skipped. */
    char p[512];
    snprintf(p, sizeof p, "%s/capped/user:1", g_quota);
    ck_assert_uint_eq(projid_of(p), 5004);
    snprintf(p, sizeof p, "%s/capped/user:2", g_quota);
    ck_assert_uint_eq(projid_of(p), 5005);
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_eq(t->a, 2 * MIB);
    ck_assert_int_eq(fx_write(t, v, F1, "a", MIB), 0);
    ck_assert_int_eq(fx_write(t, v, F3, "b", MIB), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_ge(t->b, 2 * MIB);
    /* Full: opening for writing is refused, reading is not. */
    ck_assert_int_eq(fx_write(t, v, F1, "c", 1), BAIC_EQUOTA);
    ck_assert_int_eq(fx_wait(t, t->ops->open(t->st, v, F1, "a", BAIC_OPEN_READ, fx_on_open, t)), 0);
    close(t->fd);
    ck_assert_int_eq(
        fx_wait(t, t->ops->folder_clone(t->st, v, F1, NULL,
                                        "user:1/00000000000000000000000000000009", fx_on_done, t)),
        BAIC_EQUOTA);
    const char *rm[] = {"a"};
    ck_assert_int_eq(fx_wait(t, t->ops->delete_files(t->st, v, F1, rm, 1, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_write(t, v, F1, "c", 1000), 0);
    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    fx_unload(t);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("storage_xfs");
    BAIC_TCASE(s, tc, "refusals", 60);
    tcase_add_test(tc, refuses_without_project_quota);
    if (g_quota[0] != '\0') {
        BAIC_TCASE(s, tq, "xfs-prjquota", 120);
        tcase_add_test(tq, project_quotas);
        tcase_add_test(tq, volume_cap);
    }
    return s;
}

static void cleanup(void) {
    if (g_quota[0])
        fx_sh("umount %s 2>/dev/null", g_quota);
    if (g_plain[0])
        fx_sh("umount %s 2>/dev/null", g_plain);
    fx_sh("rm -rf %s", g_dir);
}

int main(void) {
    if (geteuid() != 0 || fx_sh("command -v mkfs.xfs >/dev/null 2>&1") != 0) {
        printf("SKIP storage/xfs: needs root and mkfs.xfs (xfsprogs) to loop-mount an XFS image\n");
        return 77;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/baic-xfs-test.XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return 1;
    snprintf(g_plain, sizeof g_plain, "%s/plain", g_dir);
    if (fx_sh("truncate -s 320M %s/img && mkfs.xfs -q %s/img && mkdir %s/plain %s/quota && "
              "mount -o loop %s/img %s/plain",
              g_dir, g_dir, g_dir, g_dir, g_dir, g_dir) != 0) {
        g_plain[0] = '\0';
        cleanup();
        printf("SKIP storage/xfs: cannot loop-mount an XFS image here (no loop devices or no "
               "mount permission in this container)\n");
        return 77;
    }
    /* Quotas on an image of their own: mounting the plain image's file again right after
     * its umount can find the old loop device still attached (it is released
     * asynchronously) and hand back the quota-less superblock. A mount without prjquota
     * in its options counts as no quota support. */
    if (fx_sh("truncate -s 320M %s/img2 && mkfs.xfs -q %s/img2", g_dir, g_dir) != 0) {
        cleanup();
        return 1;
    }
    if (fx_sh("mount -o loop,prjquota %s/img2 %s/quota 2>/dev/null", g_dir, g_dir) == 0) {
        snprintf(g_quota, sizeof g_quota, "%s/quota", g_dir);
        if (fx_sh("grep -q ' %s xfs [^ ]*prjquota' /proc/mounts", g_quota) != 0) {
            snprintf(g_why, sizeof g_why, "the prjquota mount came up without project quotas");
            fx_sh("umount %s", g_quota);
            g_quota[0] = '\0';
        }
    } else {
        snprintf(g_why, sizeof g_why,
                 "mount -o prjquota failed (dmesg: XFS quota support not "
                 "available in this kernel?)");
    }
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cleanup();
    if (failed != 0)
        return EXIT_FAILURE;
    if (g_quota[0] == '\0') {
        printf("SKIP storage/xfs project-quota cases: %s; only the refusal cases ran\n", g_why);
        return 77;
    }
    return EXIT_SUCCESS;
}
