/* SPDX-License-Identifier: Apache-2.0 */
/* `schema upgrade`/`status` and `fixture populate` against a real, private PostgreSQL. */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "baic_check.h"
#include "integration/services.h"
#include "manager/fixtures.h"
#include "manager/schema.h"

static char *pg_dir;
static char dsn[512];
static int skipped;

static void pg_setup(void) {
    pg_dir = baic_svc_tmpdir("baic-test-schema");
    ck_assert_ptr_nonnull(pg_dir);
    int rc = baic_svc_run("start_pg", pg_dir, dsn, sizeof dsn);
    if (rc == 77) {
        skipped = 1;
        fprintf(stderr, "test_schema: PostgreSQL (initdb) not installed, skipping\n");
        return;
    }
    ck_assert_msg(rc == 0, "start_pg failed (%d)", rc);
}

static void pg_teardown(void) {
    if (!skipped)
        baic_svc_run("stop_pg", pg_dir, NULL, 0);
    baic_svc_rmdir(pg_dir);
    free(pg_dir);
}

/* Captures what baic_schema_status() prints. */
static int status_text(char *buf, size_t n) {
    FILE *f = fmemopen(buf, n, "w");
    ck_assert_ptr_nonnull(f);
    int rc = baic_schema_status(dsn, f);
    fclose(f);
    return rc;
}

static long count(const char *sql) {
    PGconn *c = PQconnectdb(dsn);
    ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* One test: the steps depend on each other (status before, upgrade, again, fixtures). */
START_TEST(test_upgrade_status_and_fixtures) {
    if (skipped)
        return;
    ck_assert_uint_ge(baic_schema_migrations_count, 1);
    ck_assert_str_eq(baic_schema_migrations[0].version, "0001");

    char out[8192];
    int pending = status_text(out, sizeof out);
    ck_assert_int_eq(pending, (int)baic_schema_migrations_count);
    ck_assert_msg(strstr(out, "0001 initial pending") != NULL, "%s", out);

    char err[512] = "";
    ck_assert_msg(baic_schema_upgrade(dsn, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(status_text(out, sizeof out), 0);
    ck_assert_msg(strstr(out, "0001 initial applied 20") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "0 pending") != NULL, "%s", out);

    /* Idempotent: a second upgrade applies nothing and changes nothing. */
    long before = count("SELECT count(*) FROM schema_migrations");
    ck_assert_msg(baic_schema_upgrade(dsn, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(count("SELECT count(*) FROM schema_migrations"), before);
    ck_assert_int_eq(count("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN "
                           "('domains','groups','users','keypairs','keypair_resource_policies',"
                           "'user_resource_policies','project_resource_policies','scaling_groups',"
                           "'sgroups_for_domains','sgroups_for_groups','sgroups_for_keypairs',"
                           "'agents','images','image_aliases','sessions','kernels',"
                           "'session_dependencies','resource_presets','shared_config')"),
                     19);

    /* Fixtures: created once; the second run returns the same keys. */
    json_t *k1 = NULL, *k2 = NULL;
    ck_assert_msg(baic_fixture_populate(dsn, "pbkdf2_sha256$x$admin", "pbkdf2_sha256$x$user", &k1,
                                        err, sizeof err) == 0, "%s", err);
    const char *ak = json_string_value(json_object_get(json_object_get(k1, "admin"), "access_key"));
    const char *sk = json_string_value(json_object_get(json_object_get(k1, "admin"), "secret_key"));
    ck_assert_ptr_nonnull(ak);
    ck_assert_ptr_nonnull(sk);
    ck_assert_uint_eq(strlen(ak), 20);
    ck_assert_int_eq(strncmp(ak, "AKIA", 4), 0);
    ck_assert_uint_eq(strspn(ak + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 16);
    ck_assert_uint_eq(strlen(sk), 40);
    ck_assert_msg(baic_fixture_populate(dsn, "other", "other", &k2, err, sizeof err) == 0, "%s", err);
    /* Same keys; only the first run says it created the users (and so knows the passwords). */
    const char *roles[] = {"admin", "user"};
    for (int i = 0; i < 2; i++) {
        json_t *a = json_object_get(k1, roles[i]), *b = json_object_get(k2, roles[i]);
        ck_assert(json_is_true(json_object_get(a, "created")));
        ck_assert(json_is_false(json_object_get(b, "created")));
        ck_assert(json_equal(json_object_get(a, "access_key"), json_object_get(b, "access_key")));
        ck_assert(json_equal(json_object_get(a, "secret_key"), json_object_get(b, "secret_key")));
    }
    ck_assert_int_eq(count("SELECT count(*) FROM keypairs"), 2);
    ck_assert_int_eq(count("SELECT count(*) FROM users WHERE password LIKE 'pbkdf2%'"), 2);
    ck_assert_int_eq(count("SELECT count(*) FROM users u JOIN keypairs k ON k.\"user\" = u.uuid "
                           "WHERE u.role = 'superadmin' AND k.is_admin AND u.main_access_key = k.access_key"),
                     1);
    ck_assert_int_eq(count("SELECT count(*) FROM association_groups_users"), 2);
    ck_assert_int_eq(count("SELECT count(*) FROM sgroups_for_domains"), 1);
    ck_assert_int_eq(count("SELECT count(*) FROM domains"), 1);
    json_decref(k1);
    json_decref(k2);
}
END_TEST

static Suite *schema_suite(void) {
    Suite *s = suite_create("schema");
    BAIC_TCASE(s, tc, "postgres", 120);
    tcase_add_unchecked_fixture(tc, pg_setup, pg_teardown);
    tcase_add_test(tc, test_upgrade_status_and_fixtures);
    return s;
}

BAIC_CHECK_MAIN(schema_suite)
