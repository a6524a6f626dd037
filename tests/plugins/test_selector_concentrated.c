/* SPDX-License-Identifier: Apache-2.0 */
/* selector/concentrated: fills the most occupied agent that fits (cluster in the fixture). */
#include "test_selector_fixture.h"

START_TEST(most_occupied_that_fits) {
    const baic_selector_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sx_load("concentrated", &ops, &st);
    sx_cluster_t c;
    sx_cluster(&c);
    char buf[64];
    ck_assert_str_eq(sx_one(ops, st, &c, 2, 4 * SX_GIB, buf, sizeof buf), "a1");
    ck_assert_str_eq(sx_one(ops, st, &c, 0.5, SX_GIB, buf, sizeof buf), "a1"); /* 1.0 > .9375 */
    ck_assert_str_eq(sx_one(ops, st, &c, 3, 4 * SX_GIB, buf, sizeof buf), "a2");
    ck_assert_str_eq(sx_one(ops, st, &c, 7, 4 * SX_GIB, buf, sizeof buf), "a3");
    ck_assert_str_eq(sx_one(ops, st, &c, 9, 0, buf, sizeof buf), "none");
    ck_assert_str_eq(sx_one(ops, st, &c, 1, 25 * SX_GIB, buf, sizeof buf), "a2");
    baic_mock_host_free(m);
}
END_TEST

START_TEST(multi_kernel) {
    const baic_selector_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sx_load("concentrated", &ops, &st);
    sx_cluster_t c;
    sx_cluster(&c);
    char buf[64];
    sx_kernel_t ks[4];
    for (uint32_t i = 0; i < 4; i++)
        sx_kernel(&ks[i], i, NULL, 4, SX_GIB);
    /* Multi-node: kernels placed earlier in the call count against the agent. */
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_MULTI_NODE, ks, 3, c.list, 4, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "a2,a3,a3");
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_MULTI_NODE, ks, 4, c.list, 4, buf, sizeof buf),
                     BAIC_ENO_RESOURCES);
    /* Single-node: the sum (8 cpu) must fit on one agent. */
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_SINGLE_NODE, ks, 2, c.list, 4, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "a3,a3");
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_SINGLE_NODE, ks, 3, c.list, 4, buf, sizeof buf),
                     BAIC_ENO_RESOURCES);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(architecture) {
    const baic_selector_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sx_load("concentrated", &ops, &st);
    sx_cluster_t c;
    sx_cluster(&c);
    c.ag[0].a.architecture = "aarch64";
    char buf[64];
    sx_kernel_t k;
    sx_kernel(&k, 0, "x86_64", 2, SX_GIB);
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_SINGLE_NODE, &k, 1, c.list, 4, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "a2");
    sx_kernel(&k, 0, "aarch64", 2, SX_GIB);
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_SINGLE_NODE, &k, 1, c.list, 4, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "a1");
    sx_kernel(&k, 0, "riscv64", 2, SX_GIB);
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_SINGLE_NODE, &k, 1, c.list, 4, buf, sizeof buf),
                     BAIC_ENO_RESOURCES);
    baic_mock_host_free(m);
}
END_TEST

static Suite *concentrated_suite(void) {
    Suite *s = suite_create("selector_concentrated");
    BAIC_TCASE(s, tc, "concentrated", 30);
    tcase_add_test(tc, most_occupied_that_fits);
    tcase_add_test(tc, multi_kernel);
    tcase_add_test(tc, architecture);
    return s;
}

BAIC_CHECK_MAIN(concentrated_suite)
