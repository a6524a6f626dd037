/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster HMAC: what one daemon signs the other accepts, and any change is refused. */
#include "baic_check.h"

#include <string.h>
#include <time.h>

#include "auth/cluster.h"

#define SECRET "a-cluster-secret-of-some-length"

START_TEST(sign_then_verify) {
    char date[32], mac[65];
    const char *body = "{\"kernel_id\":\"k1\"}";
    ck_assert_int_eq(baic_cluster_sign(SECRET, "POST", "/rpc/destroy_kernel", body, strlen(body),
                                       date, mac),
                     0);
    ck_assert_uint_eq(strlen(mac), 64);
    const char *why = NULL;
    int64_t now = (int64_t)time(NULL);
    ck_assert_int_eq(baic_cluster_verify(SECRET, "POST", "/rpc/destroy_kernel", date, mac, body,
                                         strlen(body), now, &why),
                     0);
    /* Every signed part matters. */
    ck_assert_int_eq(baic_cluster_verify("other", "POST", "/rpc/destroy_kernel", date, mac, body,
                                         strlen(body), now, &why), -1);
    ck_assert_str_eq(why, "bad-mac");
    ck_assert_int_eq(baic_cluster_verify(SECRET, "GET", "/rpc/destroy_kernel", date, mac, body,
                                         strlen(body), now, &why), -1);
    ck_assert_int_eq(baic_cluster_verify(SECRET, "POST", "/rpc/kernels", date, mac, body,
                                         strlen(body), now, &why), -1);
    ck_assert_int_eq(baic_cluster_verify(SECRET, "POST", "/rpc/destroy_kernel", date, mac, "{}", 2,
                                         now, &why), -1);
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(mac[i] >= 'a' && mac[i] <= 'f' ? mac[i] - 32 : mac[i]);
    ck_assert_int_eq(baic_cluster_verify(SECRET, "POST", "/rpc/destroy_kernel", date, upper, body,
                                         strlen(body), now, &why), -1);
}
END_TEST

START_TEST(date_window) {
    char date[32], mac[65];
    ck_assert_int_eq(baic_cluster_sign(SECRET, "GET", "/rpc/health", NULL, 0, date, mac), 0);
    const char *why = NULL;
    int64_t now = (int64_t)time(NULL);
    ck_assert_int_eq(baic_cluster_verify(SECRET, "GET", "/rpc/health", date, mac, NULL, 0,
                                         now + BAIC_CLUSTER_SKEW_S - 2, &why), 0);
    ck_assert_int_eq(baic_cluster_verify(SECRET, "GET", "/rpc/health", date, mac, NULL, 0,
                                         now + BAIC_CLUSTER_SKEW_S + 5, &why), -1);
    ck_assert_str_eq(why, "date-skew");
    ck_assert_int_eq(baic_cluster_verify(SECRET, "GET", "/rpc/health", "yesterday", mac, NULL, 0,
                                         now, &why), -1);
    ck_assert_str_eq(why, "bad-date");
    ck_assert_int_eq(baic_cluster_verify(SECRET, "GET", "/rpc/health", NULL, mac, NULL, 0, now,
                                         &why), -1);
    ck_assert_str_eq(why, "missing-headers");
}
END_TEST

static Suite *cluster_suite(void) {
    Suite *s = suite_create("cluster_auth");
    BAIC_TCASE(s, tc, "hmac", 10);
    tcase_add_test(tc, sign_then_verify);
    tcase_add_test(tc, date_window);
    return s;
}

BAIC_CHECK_MAIN(cluster_suite)
