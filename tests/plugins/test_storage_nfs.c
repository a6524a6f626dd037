/* SPDX-License-Identifier: Apache-2.0 */
/*
 * storage/nfs: option checks, the mount command line and the health state machine (no server
 * needed), refusals of the plugin itself, then, where the kernel has nfsd and the NFS client
 * and this runs as root, a loopback NFS server (nfs-kernel-server): mount by the plugin,
 * capacity, the server going away (unhealthy, ops fail fast) and coming back, unmount at
 * close. Exits 77 with the reason when the server part cannot run here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "plugins/storage_fixture.h"

/* The plugin's pure logic, compiled in to be driven directly. */
#include "../../plugins/storage/nfs/nfs_logic.c"

#define F1 "user:1/0123456789abcdef0123456789abcdef"

static int parse(const char *json, nfs_conf_t *c, char *err) {
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    ck_assert_msg(j != NULL, "%s", je.text);
    int rc = nfs_conf_parse(j, c, err, 256);
    json_decref(j);
    return rc;
}

START_TEST(options) {
    nfs_conf_t c;
    char err[256];
    ck_assert_int_eq(
        parse("{\"path\":\"/m\",\"server\":\"nas-1.example\",\"export\":\"/srv/vols\"}", &c, err),
        0);
    ck_assert_str_eq(c.source, "nas-1.example:/srv/vols");
    ck_assert_str_eq(c.options, NFS_DEFAULT_OPTIONS);
    ck_assert_int_eq(c.health_interval_ms, NFS_DEFAULT_HEALTH_INTERVAL_MS);
    ck_assert_int_eq(parse("{\"server\":\"[fd00::1]\",\"export\":\"/x\",\"mount_options\":"
                           "\"vers=4.2,soft,timeo=10\",\"health_timeout_ms\":1500}",
                           &c, err),
                     0);
    ck_assert_str_eq(c.source, "[fd00::1]:/x");
    ck_assert_str_eq(c.options, "vers=4.2,soft,timeo=10");
    ck_assert_int_eq(c.health_timeout_ms, 1500);
    ck_assert_int_eq(parse("{}", &c, err), 0); /* mounted by someone else */
    ck_assert_str_eq(c.server, "");

    /* Nothing that could add mount options or arguments gets through. */
    const char *bad_type[] = {
        "{\"server\":\"a,b\",\"export\":\"/x\"}",
        "{\"server\":\"-oremount\",\"export\":\"/x\"}",
        "{\"server\":\"a b\",\"export\":\"/x\"}",
        "{\"server\":\"[::1\",\"export\":\"/x\"}",
        "{\"server\":\"\",\"export\":\"/x\"}",
        "{\"server\":5,\"export\":\"/x\"}",
        "{\"server\":\"h\",\"export\":\"x\"}",
        "{\"server\":\"h\",\"export\":\"/a,rw\"}",
        "{\"server\":\"h\",\"export\":\"/a b\"}",
        "{\"server\":\"h\",\"export\":\"/a\\nb\"}",
        "{\"server\":\"h\",\"export\":7}",
        "{\"server\":\"h\",\"export\":\"/x\",\"mount_options\":\"soft;reboot\"}",
        "{\"server\":\"h\",\"export\":\"/x\",\"mount_options\":\"soft nosuid\"}",
        "{\"server\":\"h\",\"export\":\"/x\",\"mount_options\":\"-v\"}",
        "{\"server\":\"h\",\"export\":\"/x\",\"mount_options\":[\"soft\"]}",
        "{\"health_interval_ms\":5}",
        "{\"health_timeout_ms\":\"1s\"}",
        "{\"mount_timeout_ms\":99999999}",
    };
    for (size_t i = 0; i < sizeof bad_type / sizeof bad_type[0]; i++)
        ck_assert_msg(parse(bad_type[i], &c, err) == BAIC_ECONFIG_TYPE, "accepted %s", bad_type[i]);
    ck_assert_int_eq(parse("{\"server\":\"h\"}", &c, err), BAIC_ECONFIG_MISSING);
    ck_assert(strstr(err, "export") != NULL);
    ck_assert_int_eq(parse("{\"export\":\"/x\"}", &c, err), BAIC_ECONFIG_MISSING);

    const char *argv[8];
    ck_assert_int_eq(parse("{\"server\":\"10.0.0.5\",\"export\":\"/e\"}", &c, err), 0);
    nfs_mount_argv(&c, "/mnt/v", argv);
    const char *want[] = {"mount", "-t", "nfs", "-o", NFS_DEFAULT_OPTIONS, "10.0.0.5:/e", "/mnt/v"};
    for (int i = 0; i < 7; i++)
        ck_assert_str_eq(argv[i], want[i]);
    ck_assert_ptr_null(argv[7]);
}
END_TEST

START_TEST(health_machine) {
    nfs_health_t h;
    memset(&h, 0, sizeof h);
    nfs_health_result(&h, 0, NFS_SUPER_MAGIC_);
    ck_assert_int_eq(h.healthy, 1);
    ck_assert_int_eq(nfs_health_tick(&h, 1000, 500), 1);
    nfs_health_started(&h, 1000);
    /* in flight, within the timeout: no second probe, still healthy */
    ck_assert_int_eq(nfs_health_tick(&h, 1400, 500), 0);
    ck_assert_int_eq(h.healthy, 1);
    /* past the timeout: unhealthy without waiting for the stuck probe */
    ck_assert_int_eq(nfs_health_tick(&h, 1600, 500), 0);
    ck_assert_int_eq(h.healthy, 0);
    ck_assert(strstr(h.reason, "did not answer within 500 ms") != NULL);
    /* the stuck probe finally fails */
    nfs_health_result(&h, -EIO, 0);
    ck_assert_int_eq(h.healthy, 0);
    ck_assert_int_eq(h.inflight, 0);
    ck_assert(strstr(h.reason, strerror(EIO)) != NULL);
    /* the server is back */
    ck_assert_int_eq(nfs_health_tick(&h, 5000, 500), 1);
    nfs_health_started(&h, 5000);
    nfs_health_result(&h, 0, NFS_SUPER_MAGIC_);
    ck_assert_int_eq(h.healthy, 1);
    ck_assert_str_eq(h.reason, "");
    /* someone unmounted it: the directory below answers, but it is not NFS */
    nfs_health_result(&h, 0, 0xEF53);
    ck_assert_int_eq(h.healthy, 0);
    ck_assert(strstr(h.reason, "no longer an NFS mount") != NULL);
}
END_TEST

START_TEST(plugin_refusals) {
    st_fx_t tt, *t = &tt;
    fx_load(t, "nfs");
    char dir[] = "/tmp/baic-nfs-test.XXXXXX", conf[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    baic_volume_t *v = NULL;
    /* no server: the path must already be an NFS mount */
    snprintf(conf, sizeof conf, "{\"path\":\"%s\"}", dir);
    ck_assert_int_eq(fx_volume(t, "n", conf, &v), BAIC_ENOT_SUPPORTED);
    ck_assert(baic_mock_host_log_contains(t->m, "not an NFS mount"));
    snprintf(conf, sizeof conf, "{\"path\":\"%s\",\"server\":\"x,y\",\"export\":\"/e\"}", dir);
    ck_assert_int_eq(fx_volume(t, "n", conf, &v), BAIC_ECONFIG_TYPE);
    ck_assert(baic_mock_host_log_contains(t->m, "is not a host name"));
    /* a mount that cannot succeed (no server on this port, or no NFS here, or no rights) */
    snprintf(conf, sizeof conf,
             "{\"path\":\"%s\",\"server\":\"127.0.0.1\",\"export\":"
             "\"/baic-no-such-export\",\"mount_options\":\"port=9,soft,timeo=10,retrans=0,"
             "retry=0\",\"mount_timeout_ms\":20000}",
             dir);
    int rc = fx_volume(t, "n", conf, &v);
    ck_assert_msg(rc == BAIC_EBACKEND || rc == BAIC_ETIMEOUT, "mount gave %d", rc);
    ck_assert(baic_mock_host_log_contains(t->m, "volume_mount_failed"));
    ck_assert_int_eq(rmdir(dir), 0); /* nothing left mounted on it */
    fx_unload(t);
}
END_TEST

/* ---- the loopback server ---- */

static char g_dir[64];
static pid_t g_mountd = -1;
static char g_why[256];

static int have_fs(const char *name) {
    FILE *f = fopen("/proc/filesystems", "r");
    char line[128];
    int found = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *tab = strrchr(line, '\t');
        char *w = tab ? tab + 1 : line;
        w[strcspn(w, "\n")] = '\0';
        found |= strcmp(w, name) == 0;
    }
    if (f != NULL)
        fclose(f);
    return found;
}

static void server_stop(void) {
    fx_sh("rpc.nfsd 0 >/dev/null 2>&1");
    if (g_dir[0])
        fx_sh("exportfs -u 127.0.0.1:%s/export >/dev/null 2>&1", g_dir);
    if (g_mountd > 0) {
        kill(g_mountd, SIGTERM);
        waitpid(g_mountd, NULL, 0);
        g_mountd = -1;
    }
}

/* 0 when a loopback NFSv4 server exports g_dir/export; else g_why says why not. */
static int server_start(void) {
    if (geteuid() != 0) {
        snprintf(g_why, sizeof g_why, "not root");
        return -1;
    }
    if (!have_fs("nfsd") || !have_fs("nfs")) {
        snprintf(g_why, sizeof g_why,
                 "the kernel has no %s support (a container or a VM kernel "
                 "without the NFS modules)",
                 have_fs("nfsd") ? "NFS client" : "nfsd");
        return -1;
    }
    if (fx_sh("command -v exportfs && command -v rpc.nfsd && command -v rpc.mountd && "
              "command -v mount.nfs") != 0) {
        snprintf(g_why, sizeof g_why,
                 "exportfs, rpc.nfsd, rpc.mountd or mount.nfs missing "
                 "(nfs-kernel-server, nfs-common)");
        return -1;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/baic-nfs-srv.XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    if (fx_sh("mkdir -p %s/export %s/mnt && chmod 777 %s/export && "
              "(mountpoint -q /proc/fs/nfsd || mount -t nfsd nfsd /proc/fs/nfsd) && "
              "exportfs -o rw,no_root_squash,insecure,no_subtree_check,fsid=0 127.0.0.1:%s/export",
              g_dir, g_dir, g_dir, g_dir) != 0) {
        snprintf(g_why, sizeof g_why, "mounting /proc/fs/nfsd or exportfs failed");
        return -1;
    }
    fx_sh("(command -v rpcbind && (pidof rpcbind || rpcbind -w)) >/dev/null 2>&1");
    /* Short lease and grace times: the server restarts once in the test. */
    fx_sh("echo 10 > /proc/fs/nfsd/nfsv4leasetime; echo 10 > /proc/fs/nfsd/nfsv4gracetime");
    g_mountd = fork();
    if (g_mountd == 0) {
        execlp("rpc.mountd", "rpc.mountd", "-F", "-N", "2", "-N", "3", (char *)NULL);
        _exit(127);
    }
    if (fx_sh("rpc.nfsd -N 3 4 >/dev/null 2>&1") != 0) {
        snprintf(g_why, sizeof g_why, "rpc.nfsd could not start the kernel server");
        server_stop();
        return -1;
    }
    return 0;
}

static int mounted(const char *path) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "grep -q ' %s nfs' /proc/self/mounts", path);
    return system(cmd) == 0;
}

static int health_is(st_fx_t *t, baic_volume_t *v, int want, int ms) {
    for (int waited = 0; waited <= ms; waited += 100) {
        int healthy = -1;
        const char *why = NULL;
        ck_assert_int_eq(t->ops->health(t->st, v, &healthy, &why), 0);
        if (healthy == want)
            return 1;
        baic_mock_host_run(t->m, 100);
    }
    return 0;
}

START_TEST(loopback_server) {
    st_fx_t tt, *t = &tt;
    fx_load(t, "nfs");
    char conf[1024], mnt[128];
    snprintf(mnt, sizeof mnt, "%s/mnt", g_dir);
    snprintf(conf, sizeof conf,
             "{\"path\":\"%s\",\"server\":\"127.0.0.1\",\"export\":\"/\","
             "\"mount_options\":\"vers=4.2,soft,timeo=10,retrans=1\",\"health_interval_ms\":200,"
             "\"health_timeout_ms\":1500}",
             mnt);
    baic_volume_t *v = NULL;
    ck_assert_int_eq(fx_volume(t, "n", conf, &v), 0);
    ck_assert(mounted(mnt));
    ck_assert(baic_mock_host_log_contains(t->m, "volume_mounted"));
    ck_assert_int_eq(fx_wait(t, t->ops->volume_usage(t->st, v, fx_on_vusage, t)), 0);
    ck_assert_int_gt(t->a, 0); /* the export's capacity */
    ck_assert_int_eq(fx_wait(t, t->ops->folder_create(t->st, v, F1, 0, fx_on_done, t)), 0);
    ck_assert_int_eq(fx_write(t, v, F1, "a", 4096), 0);
    ck_assert_int_eq(fx_wait(t, t->ops->usage(t->st, v, F1, fx_on_usage, t)), 0);
    ck_assert_int_eq(t->a, 4096);
    char p[256];
    snprintf(p, sizeof p, "%s/export/user:1/0123456789abcdef0123456789abcdef/a", g_dir);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0); /* on the server's side */
    ck_assert(health_is(t, v, 1, 1000));

    /* The server goes away: unhealthy, and ops fail fast. */
    ck_assert_int_eq(fx_sh("rpc.nfsd 0"), 0);
    ck_assert_msg(health_is(t, v, 0, 15000), "still healthy with the server stopped");
    int healthy;
    const char *why = NULL;
    ck_assert_int_eq(t->ops->health(t->st, v, &healthy, &why), 0);
    ck_assert_ptr_nonnull(why);
    ck_assert_int_eq(t->ops->usage(t->st, v, F1, fx_on_usage, t), BAIC_EBACKEND);
    ck_assert_int_eq(t->ops->mkdir(t->st, v, F1, "d", 0, fx_on_done, t), BAIC_EBACKEND);

    /* It comes back. */
    ck_assert_int_eq(fx_sh("rpc.nfsd -N 3 4"), 0);
    ck_assert_msg(health_is(t, v, 1, 30000), "not healthy again after the server came back");
    ck_assert_int_eq(fx_wait(t, t->ops->mkdir(t->st, v, F1, "d", 0, fx_on_done, t)), 0);

    ck_assert_int_eq(t->ops->volume_close(t->st, v), 0);
    baic_mock_host_run(t->m, 3000);
    ck_assert(!mounted(mnt)); /* the plugin mounted it, the plugin unmounts it */
    fx_unload(t);
}
END_TEST

static int g_server;

static Suite *suite(void) {
    Suite *s = suite_create("storage_nfs");
    BAIC_TCASE(s, tc, "nfs", 60);
    tcase_add_test(tc, options);
    tcase_add_test(tc, health_machine);
    tcase_add_test(tc, plugin_refusals);
    if (g_server) {
        BAIC_TCASE(s, ts, "nfs-loopback", 120);
        tcase_add_test(ts, loopback_server);
    }
    return s;
}

int main(void) {
    g_server = server_start() == 0;
    SRunner *sr = srunner_create(suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (g_server) {
        fx_sh("umount -l %s/mnt >/dev/null 2>&1", g_dir);
        server_stop();
        fx_sh("rm -rf %s", g_dir);
    } else if (g_dir[0]) {
        fx_sh("rm -rf %s", g_dir);
    }
    if (failed != 0)
        return EXIT_FAILURE;
    if (!g_server) {
        printf("SKIP storage/nfs loopback-server case: %s; the option, health and refusal cases "
               "passed\n",
               g_why);
        return 77;
    }
    return EXIT_SUCCESS;
}
