/* SPDX-License-Identifier: Apache-2.0 */
/* scheduler/fifo: oldest first, skipping a head that does not fit, with a starvation bound. */
#include <stddef.h>
#include <string.h>

#include "test_scheduler_fixture.h"

#define GIB (INT64_C(1) << 30)

START_TEST(oldest_first) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("fifo", NULL, &ops, &st);
    sf_context_t ctx;
    sf_context(&ctx, 8, 16 * GIB, 0, 0);
    sf_session_t a, b, c;
    sf_session(&a, "a", "AK1", 1, GIB, 300);
    sf_session(&b, "b", "AK1", 1, GIB, 100);
    sf_session(&c, "c", "AK2", 1, GIB, 200);
    const baic_sched_session_t *cands[] = {&a.s, &b.s, &c.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "b");
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 0), "none");
    /* Priority comes before age. */
    a.s.priority = 20;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "a");
    baic_mock_host_free(m);
}
END_TEST

/*
 * ABI 1.3: a host that says its candidates come in queue order is believed (it orders
 * at a finer precision than the _ms members); without the promise, or from a host
 * whose context predates the member, the plugin orders them itself.
 */
START_TEST(queue_order_promise) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("fifo", NULL, &ops, &st);
    sf_context_t ctx;
    sf_context(&ctx, 8, 16 * GIB, 0, 0);
    sf_session_t a, b;
    sf_session(&a, "a", "AK1", 1, GIB, 100); /* same millisecond: the host saw a first */
    sf_session(&b, "b", "AK1", 1, GIB, 100);
    a.s.id = "zz"; /* ... though its id sorts after b's */
    const baic_sched_session_t *cands[] = {&a.s, &b.s};
    ctx.c.queue_order = 1;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "zz");
    ctx.c.queue_order = 0;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "b");
    ctx.c.queue_order = 1;
    ctx.c.size = (uint32_t)offsetof(baic_sched_context_t, queue_order);
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "b");
    baic_mock_host_free(m);
}
END_TEST

START_TEST(skips_head_that_does_not_fit) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("fifo", NULL, &ops, &st);
    sf_context_t ctx;
    sf_context(&ctx, 4, 16 * GIB, 2, 4 * GIB); /* 2 cpu free */
    sf_session_t big, s1, s2;
    sf_session(&big, "big", "AK1", 4, GIB, 100);
    sf_session(&s1, "s1", "AK2", 1, GIB, 200);
    sf_session(&s2, "s2", "AK2", 1, GIB, 300);
    const baic_sched_session_t *cands[] = {&s2.s, &big.s, &s1.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "s1");
    /* The host could not place s1 this pass: the next one that fits goes. */
    s1.s.flags = BAIC_SCHED_CAND_TRIED;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "s2");
    s2.s.flags = BAIC_SCHED_CAND_TRIED;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "none");
    /* Memory counts too. */
    s1.s.flags = s2.s.flags = 0;
    s1.slots[1].value = 13 * GIB;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 3), "s2");
    baic_mock_host_free(m);
}
END_TEST

/*
 * A user-visible run: a big session waits while small ones keep arriving. The host
 * increments times_skipped each time it places a session enqueued after it. With
 * max_skips=3, exactly three small sessions overtake it, then the queue holds until
 * the big one fits.
 */
START_TEST(starvation_bound) {
    json_t *conf = json_pack("{s:i}", "max_skips", 3);
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("fifo", conf, &ops, &st);
    json_decref(conf);
    sf_context_t ctx;
    sf_context(&ctx, 4, 16 * GIB, 3, 0); /* 1 cpu free: big never fits */
    sf_session_t big, small[6];
    static const char *ids[] = {"s0", "s1", "s2", "s3", "s4", "s5"};
    sf_session(&big, "big", "AK1", 4, GIB, 100);
    const baic_sched_session_t *cands[7] = {&big.s};
    size_t n = 1;
    for (int i = 0; i < 6; i++) {
        sf_session(&small[i], ids[i], "AK2", 1, GIB, 200 + i);
        cands[n++] = &small[i].s;
    }
    int placed = 0;
    for (int round = 0; round < 10; round++) {
        size_t picked;
        ck_assert_int_eq(ops->pick(st, &ctx.c, cands, n, &picked), 0);
        if (picked == BAIC_SCHED_NONE)
            break;
        ck_assert_str_ne(cands[picked]->id, "big");
        big.s.times_skipped++; /* placed one enqueued after big */
        cands[picked] = cands[--n]; /* it runs and leaves the queue; it ends at once */
        placed++;
    }
    ck_assert_int_eq(placed, 3);
    ck_assert_uint_eq(big.s.times_skipped, 3);
    /* Once capacity frees up, big goes first even though small ones fit too. */
    sf_context(&ctx, 4, 16 * GIB, 0, 0);
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, n), "big");
    baic_mock_host_free(m);
}
END_TEST

START_TEST(default_bound_is_ten) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("fifo", NULL, &ops, &st);
    sf_context_t ctx;
    sf_context(&ctx, 2, 16 * GIB, 0, 0);
    sf_session_t big, s;
    sf_session(&big, "big", "AK1", 3, GIB, 1);
    sf_session(&s, "s", "AK1", 1, GIB, 2);
    const baic_sched_session_t *cands[] = {&big.s, &s.s};
    big.s.times_skipped = 9;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "s");
    big.s.times_skipped = 10;
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "none");
    baic_mock_host_free(m);
}
END_TEST

START_TEST(update_options) {
    const baic_scheduler_ops_t *ops;
    void *st;
    baic_mock_host_t *m = sf_load("fifo", NULL, &ops, &st);
    ck_assert_ptr_nonnull(ops->update_options);
    sf_context_t ctx;
    sf_context(&ctx, 2, 16 * GIB, 0, 0);
    sf_session_t big, s;
    sf_session(&big, "big", "AK1", 3, GIB, 1);
    sf_session(&s, "s", "AK1", 1, GIB, 2);
    const baic_sched_session_t *cands[] = {&big.s, &s.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "s");
    json_t *o = json_pack("{s:i}", "max_skips", 0);
    ck_assert_int_eq(ops->update_options(st, o), 0);
    json_decref(o);
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "none");
    o = json_pack("{s:s}", "max_skips", "lots");
    ck_assert_int_eq(ops->update_options(st, o), BAIC_ECONFIG_TYPE);
    json_decref(o);
    ck_assert(baic_mock_host_log_contains(m, "plugin=scheduler/fifo event=bad_option"));
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "none"); /* old value kept */
    baic_mock_host_free(m);
}
END_TEST

START_TEST(bad_config_refused) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    json_t *conf = json_pack("{s:i}", "max_skips", -1);
    const baic_plugin_desc_t *d;
    void *st;
    ck_assert_int_eq(baic_mock_host_load_named(m, "scheduler", "fifo", conf, &d, &st),
                     BAIC_EPLUGIN_INIT);
    json_decref(conf);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(config_from_tree) {
    json_error_t e;
    json_t *tree = json_loads("{\"plugin\": {\"scheduler/fifo\": {\"max_skips\": 0}}}", 0, &e);
    baic_mock_host_t *m = baic_mock_host_new(tree);
    json_decref(tree);
    const baic_plugin_desc_t *d;
    void *st;
    ck_assert_int_eq(baic_mock_host_load_named(m, "scheduler", "fifo", NULL, &d, &st), 0);
    ck_assert_str_eq(d->name, "fifo");
    ck_assert(baic_mock_host_log_contains(m, "event=plugin_loaded"));
    const baic_scheduler_ops_t *ops = d->ops;
    sf_context_t ctx;
    sf_context(&ctx, 2, 16 * GIB, 0, 0);
    sf_session_t big, s;
    sf_session(&big, "big", "AK1", 3, GIB, 1);
    sf_session(&s, "s", "AK1", 1, GIB, 2);
    const baic_sched_session_t *cands[] = {&big.s, &s.s};
    ck_assert_str_eq(sf_pick(ops, st, &ctx, cands, 2), "none");
    ck_assert_int_eq(baic_mock_host_unload(m, d), 0);
    ck_assert_int_eq(baic_mock_host_unload(m, d), BAIC_ENOT_FOUND);
    baic_mock_host_free(m);
}
END_TEST

static Suite *fifo_suite(void) {
    Suite *s = suite_create("scheduler_fifo");
    BAIC_TCASE(s, tc, "fifo", 30);
    tcase_add_test(tc, oldest_first);
    tcase_add_test(tc, queue_order_promise);
    tcase_add_test(tc, skips_head_that_does_not_fit);
    tcase_add_test(tc, starvation_bound);
    tcase_add_test(tc, default_bound_is_ten);
    tcase_add_test(tc, update_options);
    tcase_add_test(tc, bad_config_refused);
    tcase_add_test(tc, config_from_tree);
    return s;
}

BAIC_CHECK_MAIN(fifo_suite)
