/* SPDX-License-Identifier: Apache-2.0 */
/* Registry tests: every ABI rule broken by a fixture is refused with its own message. */
#include "baic_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/compute.h>
#include <baic/scheduler.h>

#include "host/host.h"
#include "registry/registry.h"

static char fixture_dir[4096];
static uv_loop_t loop;
static baic_host_ctx_t *ctx;
static baic_registry_t *reg;

static void setup(void) {
    const char *d = getenv("BAIC_FIXTURE_PLUGIN_DIR");
    ck_assert_msg(d != NULL, "BAIC_FIXTURE_PLUGIN_DIR not set (run through ctest)");
    snprintf(fixture_dir, sizeof fixture_dir, "%s", d);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(baic_host_ctx_new(&loop, NULL, &ctx), 0);
    ck_assert_int_eq(baic_registry_new(NULL, NULL, NULL, &reg), 0);
    baic_registry_free(reg);
    ck_assert_int_eq(baic_host_registry_new(ctx, &reg), 0);
    ck_assert_int_eq(baic_registry_add_path(reg, fixture_dir), 0);
}

static void teardown(void) {
    baic_registry_free(reg);
    baic_host_ctx_free(ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static const char *path_of(const char *file) {
    static char p[4200];
    snprintf(p, sizeof p, "%s/%s.so", fixture_dir, file);
    return p;
}

/* Loads file as id and checks the code and that err names the file and says why. */
static void expect_refusal(const char *file, const char *id, int code, const char *why,
                           char *err, size_t n) {
    const char *path = path_of(file);
    int rc = baic_registry_load_file(reg, path, id, NULL, err, n);
    ck_assert_msg(rc == code, "%s: expected %d, got %d (%s)", file, code, rc, err);
    ck_assert_msg(strstr(err, path) != NULL, "message does not name the file: %s", err);
    ck_assert_msg(strstr(err, why) != NULL, "message lacks '%s': %s", why, err);
    ck_assert_uint_eq(baic_registry_count(reg), 0);
}

START_TEST(good_loads_and_unloads) {
    char err[512] = "";
    ck_assert_int_eq(baic_registry_load(reg, "scheduler/good", NULL, err, sizeof err), 0);
    ck_assert_uint_eq(baic_registry_count(reg), 1);
    const baic_plugin_t *p = baic_registry_find(reg, BAIC_KIND_SCHEDULER, "good");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->id, "scheduler/good");
    ck_assert_ptr_nonnull(p->host);
    ck_assert_uint_eq(p->host->abi_minor, BAIC_ABI_MINOR);
    const baic_scheduler_ops_t *ops = p->ops;
    size_t picked = 99;
    ck_assert_int_eq(ops->pick(p->state, NULL, NULL, 0, &picked), 0);
    ck_assert_uint_eq(picked, BAIC_SCHED_NONE);
}
END_TEST

START_TEST(each_rule_has_its_own_refusal) {
    static const struct {
        const char *file, *id;
        int code;
        const char *why;
    } cases[] = {
        {"scheduler_noentry", "scheduler/noentry", BAIC_EPLUGIN_NO_ENTRY, "not a baic plugin"},
        {"scheduler_badmagic", "scheduler/badmagic", BAIC_EPLUGIN_BAD_MAGIC, "bad magic"},
        {"scheduler_wrongmajor", "scheduler/wrongmajor", BAIC_EPLUGIN_ABI_MAJOR,
         "the major must match"},
        {"scheduler_newerminor", "scheduler/newerminor", BAIC_EPLUGIN_ABI_NEWER,
         "plugin needs a newer host"},
        {"scheduler_descshort", "scheduler/descshort", BAIC_EPLUGIN_DESC_SHORT,
         "descriptor too short"},
        {"scheduler_badsig", "scheduler/badsig", BAIC_EPLUGIN_BUILD_SIG,
         "is not binary compatible"},
        {"scheduler_opsshort", "scheduler/opsshort", BAIC_EPLUGIN_OPS_SHORT,
         "ops table too short"},
        {"scheduler_missingop", "scheduler/missingop", BAIC_EPLUGIN_OPS_MISSING,
         "mandatory scheduler op 'pick' missing"},
        {"scheduler_failinit", "scheduler/failinit", BAIC_EPLUGIN_INIT, "init failed"},
        {"scheduler_needsdep", "scheduler/needsdep", BAIC_EPLUGIN_OPEN,
         "libbaic_fixture_dep.so"},
        {"scheduler_good", "scheduler/other", BAIC_EPLUGIN_NAME_MISMATCH,
         "declares scheduler/good, config asked for scheduler/other"},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    static char msgs[N][1024];
    for (size_t i = 0; i < N; i++) {
        expect_refusal(cases[i].file, cases[i].id, cases[i].code, cases[i].why, msgs[i],
                       sizeof msgs[i]);
        /* Every message is different from every other one, path aside. */
        const char *mine = strstr(msgs[i], "refused: ");
        ck_assert_ptr_nonnull(mine);
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(mine, strstr(msgs[j], "refused: "));
    }
}
END_TEST

START_TEST(missing_dependency_names_the_library) {
    char err[1024];
    int rc = baic_registry_load_file(reg, path_of("scheduler_needsdep"), "scheduler/needsdep",
                                     NULL, err, sizeof err);
    ck_assert_int_eq(rc, BAIC_EPLUGIN_OPEN);
    /* Not libltdl's bare "file not found": the loader's real reason and a hint. */
    ck_assert_msg(strstr(err, "cannot open shared object file") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "ldd") != NULL, "%s", err);
}
END_TEST

START_TEST(failing_init_never_sees_fini) {
    char mark[] = "/tmp/baic-failinit-XXXXXX";
    int fd = mkstemp(mark);
    ck_assert_int_ge(fd, 0);
    close(fd);
    setenv("BAIC_FIXTURE_MARK", mark, 1);
    char err[512];
    ck_assert_int_eq(baic_registry_load_file(reg, path_of("scheduler_failinit"),
                                             "scheduler/failinit", NULL, err, sizeof err),
                     BAIC_EPLUGIN_INIT);
    ck_assert_msg(strstr(err, "not enough resources") != NULL, "%s", err);
    ck_assert_uint_eq(baic_registry_count(reg), 0);
    FILE *f = fopen(mark, "r");
    char buf[64] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    unlink(mark);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "init\n");
}
END_TEST

START_TEST(duplicates_refused) {
    char err[512];
    ck_assert_int_eq(baic_registry_load(reg, "scheduler/good", NULL, err, sizeof err), 0);
    ck_assert_int_eq(baic_registry_load(reg, "scheduler/good", NULL, err, sizeof err),
                     BAIC_EPLUGIN_DUPLICATE);
    ck_assert_msg(strstr(err, "duplicate: scheduler/good is already loaded") != NULL, "%s", err);
    /* Another file declaring the same kind/name. */
    ck_assert_int_eq(baic_registry_load_file(reg, path_of("scheduler_good_copy"), "scheduler/good",
                                             NULL, err, sizeof err),
                     BAIC_EPLUGIN_DUPLICATE);
    ck_assert_msg(strstr(err, "scheduler_good_copy.so") != NULL, "%s", err);
    ck_assert_uint_eq(baic_registry_count(reg), 1);
}
END_TEST

START_TEST(older_minor_loads_and_new_ops_read_null) {
    char err[512] = "";
    int rc = baic_registry_load(reg, "compute/oldminor", NULL, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    const baic_plugin_t *p = baic_registry_find(reg, BAIC_KIND_COMPUTE, "oldminor");
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(p->desc->abi_minor, 0);
    ck_assert_uint_lt(p->desc->ops_size, sizeof(baic_compute_ops_t));
    const baic_compute_ops_t *ops = p->ops;
    /* The op added in 1.1 reads as NULL in the host's copy of the table. */
    ck_assert_ptr_null(ops->describe_device);
    const baic_slot_decl_t *const *decls;
    size_t n;
    ck_assert_int_eq(ops->list_slots(p->state, &decls, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(decls[0]->name, "old.device");
}
END_TEST

START_TEST(not_found_lists_the_search_path) {
    char err[1024];
    ck_assert_int_eq(baic_registry_load(reg, "scheduler/nonesuch", NULL, err, sizeof err),
                     BAIC_EPLUGIN_NOT_FOUND);
    ck_assert_msg(strstr(err, fixture_dir) != NULL, "%s", err);
    ck_assert_int_eq(baic_registry_load(reg, "gizmo/x", NULL, err, sizeof err), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_registry_load(reg, "scheduler", NULL, err, sizeof err), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_registry_load(reg, "scheduler/../x", NULL, err, sizeof err),
                     BAIC_EBAD_INPUT);
}
END_TEST

START_TEST(config_section_loads_in_order) {
    json_t *conf = json_pack("{s:{s:[s], s:[s,s]}, s:{s:{s:i}}}", "plugins", "path", fixture_dir,
                             "load", "scheduler/good", "compute/oldminor", "plugin",
                             "scheduler/good", "x", 1);
    char err[512] = "";
    size_t before = baic_registry_npaths(reg);
    int rc = baic_registry_load_config(reg, conf, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    /* The operator's directory goes to the front of the search path. */
    ck_assert_uint_eq(baic_registry_npaths(reg), before + 1);
    ck_assert_str_eq(baic_registry_path_at(reg, 0), fixture_dir);
    ck_assert_uint_eq(baic_registry_count(reg), 2);
    ck_assert_str_eq(baic_registry_at(reg, 0)->id, "scheduler/good");
    ck_assert_str_eq(baic_registry_at(reg, 1)->id, "compute/oldminor");
    json_decref(conf);

    conf = json_pack("{s:{s:[i]}}", "plugins", "load", 3);
    ck_assert_int_eq(baic_registry_load_config(reg, conf, err, sizeof err), BAIC_ECONFIG_TYPE);
    ck_assert_msg(strstr(err, "plugins.load[0]") != NULL, "%s", err);
    json_decref(conf);
}
END_TEST

START_TEST(probe_reports_without_init) {
    baic_plugin_info_t info;
    char err[512];
    setenv("BAIC_FIXTURE_MARK", "/nonexistent/dir/mark", 1);
    ck_assert_int_eq(baic_registry_probe(path_of("scheduler_good"), &info, err, sizeof err), 0);
    ck_assert_str_eq(info.kind, "scheduler");
    ck_assert_str_eq(info.name, "good");
    ck_assert_uint_eq(info.abi_minor, BAIC_ABI_MINOR);
    /* failinit passes every static check: probing does not run init. */
    ck_assert_int_eq(baic_registry_probe(path_of("scheduler_failinit"), &info, err, sizeof err), 0);
    ck_assert_int_eq(baic_registry_probe(path_of("scheduler_badmagic"), &info, err, sizeof err),
                     BAIC_EPLUGIN_BAD_MAGIC);
}
END_TEST

static Suite *registry_suite(void) {
    Suite *s = suite_create("registry");
    BAIC_TCASE(s, tc, "load", 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, good_loads_and_unloads);
    tcase_add_test(tc, each_rule_has_its_own_refusal);
    tcase_add_test(tc, missing_dependency_names_the_library);
    tcase_add_test(tc, failing_init_never_sees_fini);
    tcase_add_test(tc, duplicates_refused);
    tcase_add_test(tc, older_minor_loads_and_new_ops_read_null);
    tcase_add_test(tc, not_found_lists_the_search_path);
    tcase_add_test(tc, config_section_loads_in_order);
    tcase_add_test(tc, probe_reports_without_init);
    return s;
}

BAIC_CHECK_MAIN(registry_suite)
