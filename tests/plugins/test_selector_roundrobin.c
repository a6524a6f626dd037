/* SPDX-License-Identifier: Apache-2.0 */
/* selector/roundrobin: takes agents in turn by id, skipping those that do not fit. */
#include "test_selector_fixture.h"

START_TEST(rotates_by_id) {
    const baic_selector_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sx_load("roundrobin", &ops, &st);
    sx_cluster_t c;
    sx_cluster(&c);
    /* The host's listing order must not matter. */
    const baic_sel_agent_t *shuffled[4] = {c.list[2], c.list[0], c.list[3], c.list[1]};
    const baic_sel_agent_t *save[4];
    memcpy(save, c.list, sizeof save);
    memcpy(c.list, shuffled, sizeof shuffled);
    char buf[64];
    static const char *const want[] = {"a1", "a2", "a3", "a4", "a1"};
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(sx_one(ops, st, &c, 0.5, SX_GIB, buf, sizeof buf), want[i]);
    /* a4 has 0.5 cpu free: a 1-cpu kernel skips it. Last was a1. */
    static const char *const want2[] = {"a2", "a3", "a1", "a2"};
    for (int i = 0; i < 4; i++)
        ck_assert_str_eq(sx_one(ops, st, &c, 1, SX_GIB, buf, sizeof buf), want2[i]);
    /* A failure takes no turn. */
    ck_assert_str_eq(sx_one(ops, st, &c, 50, SX_GIB, buf, sizeof buf), "none");
    ck_assert_str_eq(sx_one(ops, st, &c, 1, SX_GIB, buf, sizeof buf), "a3");
    memcpy(c.list, save, sizeof save);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(multi_kernel_turns) {
    const baic_selector_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sx_load("roundrobin", &ops, &st);
    sx_cluster_t c;
    sx_cluster(&c);
    char buf[64];
    sx_kernel_t ks[3];
    for (uint32_t i = 0; i < 3; i++)
        sx_kernel(&ks[i], i, NULL, 1, SX_GIB);
    ck_assert_int_eq(sx_place(ops, st, BAIC_SEL_MULTI_NODE, ks, 3, c.list, 4, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "a1,a2,a3");
    baic_mock_host_free(m);
}
END_TEST

static Suite *roundrobin_suite(void) {
    Suite *s = suite_create("selector_roundrobin");
    BAIC_TCASE(s, tc, "roundrobin", 30);
    tcase_add_test(tc, rotates_by_id);
    tcase_add_test(tc, multi_kernel_turns);
    return s;
}

BAIC_CHECK_MAIN(roundrobin_suite)
