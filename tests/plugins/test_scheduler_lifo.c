/* SPDX-License-Identifier: Apache-2.0 */
/* scheduler/lifo: the newest session that fits goes first. */
#include <string.h>

#include "test_scheduler_fixture.h"

#define GIB (INT64_C(1) << 30)

START_TEST(newest_first) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("lifo", NULL, &ops, &st);
    sf_context_t ctx;
    sf_context(&ctx, 4, 16 * GIB, 0, 0);
    sf_session_t a, b, c;
    sf_session(&a, "a", "AK1", 1, GIB, 100);
    sf_session(&b, "b", "AK1", 1, GIB, 300);
    sf_session(&c, "c", "AK1", 8, GIB, 400); /* newest, does not fit */
    const baic_sched_session_t *cands[] = {&a.s, &b.s, &c.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "b");
    b.s.flags = BAIC_SCHED_CAND_TRIED;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "a");
    a.s.flags = BAIC_SCHED_CAND_TRIED;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "none");
    baic_mock_host_free(m);
}
END_TEST

static Suite *lifo_suite(void) {
    Suite *s = suite_create("scheduler_lifo");
    BAIC_TCASE(s, tc, "lifo", 30);
    tcase_add_test(tc, newest_first);
    return s;
}

BAIC_CHECK_MAIN(lifo_suite)
