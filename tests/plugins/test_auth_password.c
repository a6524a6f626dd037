/* SPDX-License-Identifier: Apache-2.0 */
/* auth/password under the mock host: hashing, checking on the work queue, denials, config. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

#include <baic/auth.h>

/* Made with python3 hashlib.pbkdf2_hmac("sha256", pw, b"0123456789abcdef", iter) + base64. */
#define PY_HASH_1000                                                                               \
    "pbkdf2_sha256$1000$MDEyMzQ1Njc4OWFiY2RlZg==$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4M="
#define PY_PW_1000 "correct horse"
/* Unpadded base64, UTF-8 password. */
#define PY_HASH_2000                                                                               \
    "pbkdf2_sha256$2000$MDEyMzQ1Njc4OWFiY2RlZg$pdX9XSBJ2hcs/DTyuAu1H6ftBBA1o5EYO965fUu2Psg"
#define PY_PW_2000 "p\xc3\xa4ssw\xc3\xb6rd"

typedef struct fixture {
    baic_mock_host_t *m;
    const baic_plugin_desc_t *desc;
    const baic_auth_ops_t *ops;
    void *state;
    const baic_host_t *host;
} fixture_t;

static void load(fixture_t *f, const char *conf_json) {
    memset(f, 0, sizeof(*f));
    f->m = baic_mock_host_new(NULL);
    ck_assert_ptr_nonnull(f->m);
    json_t *conf = conf_json ? json_loads(conf_json, 0, NULL) : NULL;
    int rc = baic_mock_host_load_named(f->m, "auth", "password", conf, &f->desc, &f->state);
    json_decref(conf);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(f->m));
    f->ops = f->desc->ops;
    f->host = baic_mock_host_plugin_table(f->m, f->desc);
}

static void unload(fixture_t *f) {
    baic_mock_host_free(f->m);
}

typedef struct answer {
    int called;
    baic_auth_outcome_t outcome;
    int error;
    char reason[128];
    char username[64];
    char email[64];
    int needs_rehash;
} answer_t;

static void on_done(const baic_auth_result_t *res, void *arg) {
    answer_t *a = arg;
    a->called++;
    a->outcome = res->outcome;
    a->error = res->error;
    snprintf(a->reason, sizeof(a->reason), "%s", res->reason ? res->reason : "");
    snprintf(a->username, sizeof(a->username), "%s", res->username ? res->username : "");
    snprintf(a->email, sizeof(a->email), "%s", res->email ? res->email : "");
    a->needs_rehash = res->needs_rehash;
}

static int answered(void *arg) {
    return ((answer_t *)arg)->called > 0;
}

/* Runs one attempt to completion. user_json NULL = no such user. */
static answer_t attempt(fixture_t *f, const char *user_json, const char *password) {
    answer_t a;
    memset(&a, 0, sizeof(a));
    json_t *user = user_json ? json_loads(user_json, 0, NULL) : NULL;
    if (user_json != NULL)
        ck_assert_ptr_nonnull(user);
    /* The request's strings live on this stack frame only: the plugin must copy. */
    char pw[256];
    snprintf(pw, sizeof(pw), "%s", password);
    baic_auth_request_t req = {
        .size = sizeof(req),
        .type = BAIC_AUTH_REQ_PASSWORD,
        .domain = "default",
        .username = "alice@example.com",
        .password = pw,
        .otp = NULL,
        .user = user,
        .client_addr = "127.0.0.1",
    };
    ck_assert_int_eq(f->ops->authenticate(f->state, &req, on_done, &a), 0);
    /* Never answered before authenticate returns. */
    ck_assert_int_eq(a.called, 0);
    memset(pw, 'X', sizeof(pw));
    json_decref(user);
    ck_assert_int_eq(baic_mock_host_run_until(f->m, answered, &a, 20000), 0);
    ck_assert_int_eq(a.called, 1);
    return a;
}

static char *user_record(const char *stored, const char *status, const char *totp) {
    json_t *u = json_pack("{s:s, s:s, s:s, s:s, s:s}", "email", "alice@example.com", "username",
                          "alice", "domain_name", "default", "role", "user", "password", stored);
    if (status)
        json_object_set_new(u, "status", json_string(status));
    if (totp)
        json_object_set_new(u, "totp_key", json_string(totp));
    char *s = json_dumps(u, JSON_COMPACT);
    json_decref(u);
    return s;
}

START_TEST(hash_then_verify) {
    fixture_t f;
    load(&f, "{\"iterations\": 1000}");
    char *stored = NULL;
    ck_assert_int_eq(f.ops->hash_password(f.state, "s3cret pass", &stored), 0);
    ck_assert_ptr_nonnull(stored);
    ck_assert_msg(strncmp(stored, "pbkdf2_sha256$1000$", 19) == 0, "%s", stored);
    /* prefix, iterations, salt (16 bytes → 24 chars), hash (32 bytes → 44 chars) */
    ck_assert_uint_eq(strlen(stored), 19 + 24 + 1 + 44);
    ck_assert_ptr_null(strstr(stored, "s3cret"));

    /* Fresh salt each time. */
    char *again = NULL;
    ck_assert_int_eq(f.ops->hash_password(f.state, "s3cret pass", &again), 0);
    ck_assert_str_ne(stored, again);
    f.host->free(again);

    char *rec = user_record(stored, "active", NULL);
    answer_t a = attempt(&f, rec, "s3cret pass");
    ck_assert_int_eq(a.outcome, BAIC_AUTH_OK);
    ck_assert_str_eq(a.username, "alice");
    ck_assert_str_eq(a.email, "alice@example.com");
    ck_assert_int_eq(a.needs_rehash, 0);

    a = attempt(&f, rec, "s3cret pasS");
    ck_assert_int_eq(a.outcome, BAIC_AUTH_DENIED);
    ck_assert_str_eq(a.reason, "User credential mismatch.");
    a = attempt(&f, rec, "");
    ck_assert_int_eq(a.outcome, BAIC_AUTH_DENIED);

    ck_assert(baic_mock_host_metric(f.m, "baic_auth_password_attempts_total", "outcome=\"ok\"") ==
              1);
    ck_assert(
        baic_mock_host_metric(f.m, "baic_auth_password_attempts_total", "outcome=\"denied\"") == 2);
    /* Secrets never reach the log. */
    ck_assert(!baic_mock_host_log_contains(f.m, "s3cret"));
    ck_assert(!baic_mock_host_log_contains(f.m, stored + 19));
    free(rec);
    f.host->free(stored);
    unload(&f);
}
END_TEST

START_TEST(python_made_hashes) {
    fixture_t f;
    load(&f, "{\"iterations\": 1000}");
    char *rec = user_record(PY_HASH_1000, NULL, NULL);
    answer_t a = attempt(&f, rec, PY_PW_1000);
    ck_assert_int_eq(a.outcome, BAIC_AUTH_OK);
    ck_assert_int_eq(a.needs_rehash, 0);
    free(rec);
    rec = user_record(PY_HASH_2000, "active", NULL);
    a = attempt(&f, rec, PY_PW_2000);
    ck_assert_int_eq(a.outcome, BAIC_AUTH_OK);
    a = attempt(&f, rec, "passwort");
    ck_assert_int_eq(a.outcome, BAIC_AUTH_DENIED);
    free(rec);
    unload(&f);
}
END_TEST

START_TEST(rehash_when_weaker) {
    fixture_t f;
    load(&f, "{\"iterations\": 1500}");
    char *rec = user_record(PY_HASH_1000, "active", NULL);
    answer_t a = attempt(&f, rec, PY_PW_1000);
    ck_assert_int_eq(a.outcome, BAIC_AUTH_OK);
    ck_assert_int_eq(a.needs_rehash, 1);
    free(rec);
    ck_assert_ptr_nonnull(f.ops->needs_rehash);
    ck_assert_int_eq(f.ops->needs_rehash(f.state, PY_HASH_1000), 1);
    ck_assert_int_eq(f.ops->needs_rehash(f.state, PY_HASH_2000), 0);
    ck_assert_int_eq(f.ops->needs_rehash(f.state, "$2b$12$abcdefghijklmnopqrstuv"),
                     BAIC_EBAD_INPUT);
    unload(&f);
}
END_TEST

START_TEST(unknown_user_and_bad_records) {
    fixture_t f;
    load(&f, "{\"iterations\": 1000}");
    answer_t a = attempt(&f, NULL, PY_PW_1000);
    ck_assert_int_eq(a.outcome, BAIC_AUTH_DENIED);
    /* Indistinguishable from a wrong password. */
    ck_assert_str_eq(a.reason, "User credential mismatch.");

    a = attempt(&f, "{\"email\": \"alice@example.com\"}", "x");
    ck_assert_int_eq(a.outcome, BAIC_AUTH_DENIED);

    static const char *bad[] = {
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "pbkdf2_sha256$0$MDEyMzQ1Njc4OWFiY2RlZg==$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4M=",
        "pbkdf2_sha256$99999999999$MDEy$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4M=",
        "pbkdf2_sha256$1000$$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4M=",
        "pbkdf2_sha256$1000$MDEy*$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4M=",
        "pbkdf2_sha256$1000$MDEy$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4",
        "pbkdf2_sha256$1000$MDEy$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4M=$x",
        "pbkdf2_sha256$+1000$MDEy$cBg8D2DungRB9k76szThf5ehfyBz991ay6PT8Srwk4M=",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *rec = user_record(bad[i], "active", NULL);
        a = attempt(&f, rec, PY_PW_1000);
        ck_assert_msg(a.outcome == BAIC_AUTH_ERROR, "accepted stored hash %s", bad[i]);
        ck_assert_int_eq(a.error, BAIC_EBAD_INPUT);
        ck_assert_int_eq(f.ops->needs_rehash(f.state, bad[i]), BAIC_EBAD_INPUT);
        free(rec);
    }
    ck_assert(baic_mock_host_log_contains(f.m, "event=stored_hash_unusable"));
    ck_assert(!baic_mock_host_log_contains(f.m, "R9h/cIPz"));
    unload(&f);
}
END_TEST

START_TEST(account_state) {
    fixture_t f;
    load(&f, "{\"iterations\": 1000}");
    char *rec = user_record(PY_HASH_1000, "inactive", NULL);
    answer_t a = attempt(&f, rec, PY_PW_1000);
    ck_assert_int_eq(a.outcome, BAIC_AUTH_DENIED);
    ck_assert_str_eq(a.reason, "User account is not active.");
    /* A wrong password on an inactive account says only "mismatch". */
    a = attempt(&f, rec, "nope");
    ck_assert_str_eq(a.reason, "User credential mismatch.");
    free(rec);
    rec = user_record(PY_HASH_1000, "active", "JBSWY3DPEHPK3PXP");
    a = attempt(&f, rec, PY_PW_1000);
    ck_assert_int_eq(a.outcome, BAIC_AUTH_ERROR);
    ck_assert_int_eq(a.error, BAIC_ENOT_SUPPORTED);
    free(rec);
    rec = user_record(PY_HASH_1000, "active", "");
    a = attempt(&f, rec, PY_PW_1000);
    ck_assert_int_eq(a.outcome, BAIC_AUTH_OK);
    free(rec);
    unload(&f);
}
END_TEST

START_TEST(bad_calls) {
    fixture_t f;
    load(&f, "{\"iterations\": 1000}");
    answer_t a;
    memset(&a, 0, sizeof(a));
    baic_auth_request_t req = {.size = sizeof(req),
                               .type = (baic_auth_req_type_t)99,
                               .domain = "default",
                               .username = "u",
                               .password = "p"};
    ck_assert_int_eq(f.ops->authenticate(f.state, &req, on_done, &a), BAIC_ENOT_SUPPORTED);
    req.type = BAIC_AUTH_REQ_PASSWORD;
    req.size = 8;
    ck_assert_int_eq(f.ops->authenticate(f.state, &req, on_done, &a), BAIC_EBAD_INPUT);
    req.size = sizeof(req);
    req.password = NULL;
    ck_assert_int_eq(f.ops->authenticate(f.state, &req, on_done, &a), BAIC_EBAD_INPUT);
    ck_assert_int_eq(f.ops->authenticate(f.state, NULL, on_done, &a), BAIC_EBAD_INPUT);
    ck_assert_int_eq(baic_mock_host_run(f.m, 100), 0);
    /* A failed call never calls back. */
    ck_assert_int_eq(a.called, 0);
    char *out = (char *)"untouched";
    ck_assert_int_eq(f.ops->hash_password(f.state, NULL, &out), BAIC_EBAD_INPUT);
    ck_assert_str_eq(out, "untouched");
    unload(&f);
}
END_TEST

/* Several attempts in flight at once, each answered once with its own result. */
START_TEST(concurrent) {
    fixture_t f;
    load(&f, "{\"iterations\": 1000}");
    char *good = user_record(PY_HASH_1000, "active", NULL);
    json_t *user = json_loads(good, 0, NULL);
    answer_t a[8];
    memset(a, 0, sizeof(a));
    for (int i = 0; i < 8; i++) {
        baic_auth_request_t req = {.size = sizeof(req),
                                   .type = BAIC_AUTH_REQ_PASSWORD,
                                   .domain = "default",
                                   .username = "alice",
                                   .password = i % 2 ? "wrong" : PY_PW_1000,
                                   .user = user};
        ck_assert_int_eq(f.ops->authenticate(f.state, &req, on_done, &a[i]), 0);
    }
    ck_assert_int_eq(baic_mock_host_run(f.m, 20000), 0);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(a[i].called, 1);
        ck_assert_int_eq(a[i].outcome, i % 2 ? BAIC_AUTH_DENIED : BAIC_AUTH_OK);
    }
    json_decref(user);
    free(good);
    unload(&f);
}
END_TEST

/* fini with work queued: every callback still fires exactly once, nothing leaks. The code
 * must stay mapped for that, as with a host that drains late. */
START_TEST(fini_while_inflight) {
    setenv("BAIC_NO_DLCLOSE", "1", 1);
    fixture_t f;
    load(&f, "{\"iterations\": 20000}");
    char *good = user_record(PY_HASH_1000, "active", NULL);
    json_t *user = json_loads(good, 0, NULL);
    answer_t a[4];
    memset(a, 0, sizeof(a));
    for (int i = 0; i < 4; i++) {
        baic_auth_request_t req = {.size = sizeof(req),
                                   .type = BAIC_AUTH_REQ_PASSWORD,
                                   .domain = "default",
                                   .username = "alice",
                                   .password = PY_PW_1000,
                                   .user = i ? user : NULL};
        ck_assert_int_eq(f.ops->authenticate(f.state, &req, on_done, &a[i]), 0);
    }
    ck_assert_int_eq(baic_mock_host_unload(f.m, f.desc), 0);
    ck_assert_int_eq(baic_mock_host_run(f.m, 20000), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(a[i].called, 1);
        ck_assert_int_eq(a[i].outcome, BAIC_AUTH_ERROR);
        ck_assert_int_eq(a[i].error, BAIC_ECANCELLED);
    }
    json_decref(user);
    free(good);
    baic_mock_host_free(f.m);
}
END_TEST

START_TEST(config_checks) {
    static const char *bad[] = {"{\"iterations\": 0}", "{\"iterations\": \"1000\"}",
                                "{\"iterations\": 1.5}", "{\"iterations\": 99999999999}", "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        baic_mock_host_t *m = baic_mock_host_new(NULL);
        json_t *conf = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        const baic_plugin_desc_t *d;
        void *st;
        ck_assert_msg(baic_mock_host_load_named(m, "auth", "password", conf, &d, &st) != 0,
                      "accepted %s", bad[i]);
        ck_assert(baic_mock_host_log_contains(m, "event=config_invalid"));
        json_decref(conf);
        baic_mock_host_free(m);
    }
    /* Low counts load but say so. */
    fixture_t f;
    load(&f, "{\"iterations\": 1000}");
    ck_assert(baic_mock_host_log_contains(f.m, "event=weak_config"));
    unload(&f);
}
END_TEST

/* The default is 600000 rounds (one real-cost hash). */
START_TEST(default_iterations) {
    fixture_t f;
    load(&f, NULL);
    ck_assert(!baic_mock_host_log_contains(f.m, "weak_config"));
    char *stored = NULL;
    ck_assert_int_eq(f.ops->hash_password(f.state, "pw", &stored), 0);
    ck_assert_msg(strncmp(stored, "pbkdf2_sha256$600000$", 21) == 0, "%s", stored);
    ck_assert_int_eq(f.ops->needs_rehash(f.state, stored), 0);
    ck_assert_int_eq(f.ops->needs_rehash(f.state, PY_HASH_1000), 1);
    f.host->free(stored);
    unload(&f);
}
END_TEST

static Suite *auth_password_suite(void) {
    Suite *s = suite_create("auth_password");
    BAIC_TCASE(s, tc, "password", 60);
    tcase_add_test(tc, hash_then_verify);
    tcase_add_test(tc, python_made_hashes);
    tcase_add_test(tc, rehash_when_weaker);
    tcase_add_test(tc, unknown_user_and_bad_records);
    tcase_add_test(tc, account_state);
    tcase_add_test(tc, bad_calls);
    tcase_add_test(tc, concurrent);
    tcase_add_test(tc, fini_while_inflight);
    tcase_add_test(tc, config_checks);
    tcase_add_test(tc, default_iterations);
    return s;
}

BAIC_CHECK_MAIN(auth_password_suite)
