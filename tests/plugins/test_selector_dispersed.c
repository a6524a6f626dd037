/* SPDX-License-Identifier: Apache-2.0 */
/* selector/dispersed: spreads onto the least occupied agent that fits (cluster in the fixture). */
#include "test_selector_fixture.h"

START_TEST(least_occupied_that_fits) {
    const baic_selector_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sx_load("dispersed", &ops, &st);
    sx_cluster_t c;
    sx_cluster(&c);
    char buf[64];
    ck_assert_str_eq(sx_one(ops, st, &c, 2, 4 * SX_GIB, buf, sizeof buf), "a3");
    ck_assert_str_eq(sx_one(ops, st, &c, 9, 0, buf, sizeof buf), "none");
    /* With a3 busy, a2 (0.375) beats a1 (1.0) and a4 (0.9375). */
    c.ag[2].occ[0].value = SX_CPU(7.5);
    ck_assert_str_eq(sx_one(ops, st, &c, 0.5, SX_GIB, buf, sizeof buf), "a2");
    baic_mock_host_free(m);
}
END_TEST

START_TEST(multi_kernel_spreads) {
    const baic_selector_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sx_load("dispersed", &ops, &st);
    sx_cluster_t c;
    sx_cluster(&c);
    char buf[64];
    sx_kernel_t ks[3];
    for (uint32_t i = 0; i < 3; i++)
        sx_kernel(&ks[i], i, NULL, 4, SX_GIB);
    /* k0 -> a3 (0); then a3 is at 0.53 and a2 at 0.375 -> a2; a2 is then full -> a3. */
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_MULTI_NODE, ks, 3, c.list, 4, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "a3,a2,a3");
    /* Same request, concentrated and dispersed disagree (see the other test). */
    baic_mock_host_free(m);
}
END_TEST

static Suite *dispersed_suite(void) {
    Suite *s = suite_create("selector_dispersed");
    BAIC_TCASE(s, tc, "dispersed", 30);
    tcase_add_test(tc, least_occupied_that_fits);
    tcase_add_test(tc, multi_kernel_spreads);
    return s;
}

BAIC_CHECK_MAIN(dispersed_suite)
