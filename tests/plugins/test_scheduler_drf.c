/* SPDX-License-Identifier: Apache-2.0 */
/* scheduler/drf: orderings checked against dominant shares computed by hand. */
#include <stdio.h>
#include <string.h>

#include "test_scheduler_fixture.h"

/*
 * Group: 10 cpu, 100000 bytes of mem.
 * AKX holds 4 cpu, 10000 mem;  AKY holds 1 cpu, 30000 mem.
 * x1 (AKX, enq 1) asks 1 cpu, 10000 mem: AKX would hold 5/10 cpu, 20000/100000 mem
 *    -> dominant share 0.5 (cpu)
 * y1 (AKY, enq 2) asks 1 cpu, 10000 mem: AKY would hold 2/10 cpu, 40000/100000 mem
 *    -> dominant share 0.4 (mem)
 * => y1 first although x1 is older.
 * After y1 runs AKY holds 2 cpu, 40000 mem; y2 (AKY, enq 3) asks the same:
 *    3/10 cpu, 50000/100000 mem -> 0.5, a tie with x1's 0.5 -> x1 (older).
 * z1 (AKZ, nothing held, enq 9) asks 2 cpu: 0.2 -> before everyone.
 */
START_TEST(two_users_by_hand) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("drf", NULL, &ops, &st);
    sf_keypair_t kx, ky;
    sf_keypair(&kx, "AKX", 4, 10000);
    sf_keypair(&ky, "AKY", 1, 30000);
    const baic_sched_occupancy_t *kps[] = {&kx.o, &ky.o};
    sf_context_t ctx;
    sf_context(&ctx, 10, 100000, 5, 40000);
    ctx.c.keypairs = kps;
    ctx.c.n_keypairs = 2;

    sf_session_t x1, y1, y2, z1;
    sf_session(&x1, "x1", "AKX", 1, 10000, 1);
    sf_session(&y1, "y1", "AKY", 1, 10000, 2);
    const baic_sched_session_t *c1[] = {&x1.s, &y1.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c1, 2), "y1");

    /* y1 runs. */
    sf_keypair(&ky, "AKY", 2, 40000);
    sf_context(&ctx, 10, 100000, 6, 50000);
    ctx.c.keypairs = kps;
    ctx.c.n_keypairs = 2;
    sf_session(&y2, "y2", "AKY", 1, 10000, 3);
    const baic_sched_session_t *c2[] = {&y2.s, &x1.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c2, 2), "x1");

    sf_session(&z1, "z1", "AKZ", 2, 0, 9);
    const baic_sched_session_t *c3[] = {&y2.s, &x1.s, &z1.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c3, 3), "z1");

    /* A session that does not fit is passed over, whatever its share. */
    z1.slots[0].value = SF_CPU(5);
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c3, 3), "x1");
    baic_mock_host_free(m);
}
END_TEST

/* Fractional cpu stays exact: 1/3 vs 0.333333 is not a tie. */
START_TEST(exact_shares) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("drf", NULL, &ops, &st);
    sf_context_t ctx;
    sf_context(&ctx, 3, 3, 0, 0); /* 3 cpu, 3 bytes */
    sf_session_t a, b;
    sf_session(&a, "a", "AKA", 0.999999, 0, 1); /* 0.333333 */
    sf_session(&b, "b", "AKB", 0, 1, 2);        /* 1/3 of mem */
    const baic_sched_session_t *c[] = {&b.s, &a.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c, 2), "a");
    a.slots[0].value = SF_CPU(1); /* now exactly 1/3 each: the older wins */
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c, 2), "a");
    a.s.enqueued_at_ms = 5;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c, 2), "b");
    baic_mock_host_free(m);
}
END_TEST

/*
 * Candidates of one key asking the same are judged alike within a pick (the plugin computes
 * such a pair once): one passed over (tried) must not hide the next; one the group cannot
 * take hides none that asks less; and past the plugin's table of pairs (300 distinct
 * requests of one key here) every candidate is still judged.
 */
START_TEST(repeated_requests) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("drf", NULL, &ops, &st);
    sf_context_t ctx;
    sf_context(&ctx, 10, 100000, 0, 0);
    sf_session_t x1, x2, y1;
    sf_session(&x1, "x1", "AKX", 1, 10000, 1); /* 0.1 */
    sf_session(&x2, "x2", "AKX", 1, 10000, 2); /* 0.1, the same pair */
    sf_session(&y1, "y1", "AKY", 2, 10000, 3); /* 0.2 */
    const baic_sched_session_t *c[] = {&x1.s, &x2.s, &y1.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c, 3), "x1");
    x1.s.flags |= BAIC_SCHED_CAND_TRIED;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c, 3), "x2");
    x2.s.flags |= BAIC_SCHED_CAND_TRIED;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, c, 3), "y1");

    enum { N = 300 };
    static sf_session_t many[N];
    static char ids[N][8];
    const baic_sched_session_t *cm[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "m%d", i);
        /* mem shares 0.9 down to 0.9 - 299/1000: the last asks least */
        sf_session(&many[i], ids[i], "AKM", 0.1, 90000 - i * 100, 10 + i);
        cm[i] = &many[i].s;
    }
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cm, N), "m299");
    many[N - 1].slots[1].value = 200000; /* more than the group has: passed over */
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cm, N), "m298");
    baic_mock_host_free(m);
}
END_TEST

static Suite *drf_suite(void) {
    Suite *s = suite_create("scheduler_drf");
    BAIC_TCASE(s, tc, "drf", 30);
    tcase_add_test(tc, two_users_by_hand);
    tcase_add_test(tc, exact_shares);
    tcase_add_test(tc, repeated_requests);
    return s;
}

BAIC_CHECK_MAIN(drf_suite)
