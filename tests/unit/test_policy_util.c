/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the pure scheduling-policy helpers (core/manager/policy_util.c). */

#include <stdio.h>
#include <string.h>

#include "baic_check.h"

/* The helpers are pure (no manager state): compiled straight into the test. */
#include "../../core/manager/policy_util.c"

#define U BAIC_SLOT_UNIT
#define SLOTS(...) ((baic_slots_t){(const baic_slot_t[]){__VA_ARGS__}, \
                    sizeof((const baic_slot_t[]){__VA_ARGS__}) / sizeof(baic_slot_t)})

START_TEST(fits_within_and_over) {
    baic_slots_t lim = SLOTS({"cpu", 4 * U}, {"mem", 1024});
    baic_slots_t used = SLOTS({"cpu", 3 * U});
    baic_slots_t one = SLOTS({"cpu", 1 * U}, {"mem", 1024});
    baic_slots_t two = SLOTS({"cpu", 2 * U});
    const char *slot = NULL;
    ck_assert_int_eq(baic_policy_fits(&lim, 0, &used, &one, &slot), 1);
    ck_assert_int_eq(baic_policy_fits(&lim, 0, &used, &two, &slot), 0);
    ck_assert_str_eq(slot, "cpu");
    baic_slots_t more_mem = SLOTS({"mem", 1025});
    ck_assert_int_eq(baic_policy_fits(&lim, 0, NULL, &more_mem, &slot), 0);
    ck_assert_str_eq(slot, "mem");
}
END_TEST

START_TEST(fits_unspecified_and_unlimited) {
    baic_slots_t lim = SLOTS({"cpu", -1});
    baic_slots_t gpu = SLOTS({"cuda.device", 1 * U});
    baic_slots_t lots = SLOTS({"cpu", 1000 * U});
    /* LIMITED: a slot the policy does not name allows nothing. */
    ck_assert_int_eq(baic_policy_fits(&lim, 0, NULL, &gpu, NULL), 0);
    ck_assert_int_eq(baic_policy_fits(&lim, 1, NULL, &gpu, NULL), 1);
    /* Below zero = unlimited. */
    ck_assert_int_eq(baic_policy_fits(&lim, 0, NULL, &lots, NULL), 1);
    /* Zero and negative requests never fail. */
    baic_slots_t zero = SLOTS({"cuda.device", 0});
    ck_assert_int_eq(baic_policy_fits(&lim, 0, NULL, &zero, NULL), 1);
    /* Occupancy already over the limit (limit lowered): anything more fails. */
    baic_slots_t lim2 = SLOTS({"cpu", 2 * U});
    baic_slots_t used = SLOTS({"cpu", 3 * U});
    baic_slots_t tiny = SLOTS({"cpu", 1});
    ck_assert_int_eq(baic_policy_fits(&lim2, 0, &used, &tiny, NULL), 0);
    /* No overflow near INT64_MAX. */
    baic_slots_t big = SLOTS({"cpu", INT64_MAX});
    baic_slots_t used1 = SLOTS({"cpu", 1});
    ck_assert_int_eq(baic_policy_fits(&big, 0, &used1, &big, NULL), 0);
}
END_TEST

START_TEST(durations) {
    int64_t ms;
    ck_assert_int_eq(baic_policy_parse_duration("30m", &ms), 0);
    ck_assert_int_eq(ms, 30 * 60000);
    ck_assert_int_eq(baic_policy_parse_duration("1h30m", &ms), 0);
    ck_assert_int_eq(ms, 90 * 60000);
    ck_assert_int_eq(baic_policy_parse_duration("2d", &ms), 0);
    ck_assert_int_eq(ms, 2 * 86400000LL);
    ck_assert_int_eq(baic_policy_parse_duration("1w", &ms), 0);
    ck_assert_int_eq(ms, 7 * 86400000LL);
    ck_assert_int_eq(baic_policy_parse_duration("90", &ms), 0);
    ck_assert_int_eq(ms, 90000);
    ck_assert_int_eq(baic_policy_parse_duration(" 10s ", &ms), 0);
    ck_assert_int_eq(ms, 10000);
    const char *bad[] = {"", "h", "1x", "-1h", "1h30", "1.5h", "400d", "9999999999s", "1h 2m",
                         "tomorrow", NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(baic_policy_parse_duration(bad[i], &ms) != 0, "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(start_times) {
    int64_t ms, now = 1700000000000LL;
    ck_assert_int_eq(baic_policy_parse_starts_at("1h", now, &ms), 0);
    ck_assert_int_eq(ms, now + 3600000);
    ck_assert_int_eq(baic_policy_parse_starts_at("2026-11-27T15:00:00Z", now, &ms), 0);
    ck_assert_int_eq(ms, 1795791600000LL);
    ck_assert_int_eq(baic_policy_parse_starts_at("2026-11-27T15:00:00", now, &ms), 0);
    ck_assert_int_eq(ms, 1795791600000LL);
    ck_assert_int_eq(baic_policy_parse_starts_at("2026-11-28T00:00:00+09:00", now, &ms), 0);
    ck_assert_int_eq(ms, 1795791600000LL);
    ck_assert_int_eq(baic_policy_parse_starts_at("2026-11-27 10:00-0500", now, &ms), 0);
    ck_assert_int_eq(ms, 1795791600000LL);
    ck_assert_int_eq(baic_policy_parse_starts_at("2026-11-27T15:00:00.250Z", now, &ms), 0);
    ck_assert_int_eq(ms, 1795791600250LL);
    ck_assert_int_eq(baic_policy_parse_starts_at("2026-11-27", now, &ms), 0);
    ck_assert_int_eq(ms, 1795737600000LL);
    const char *bad[] = {"2026-02-31T00:00:00Z", "2026-13-01", "2026-11-27T25:00", "2026-11-27T15",
                         "2026-11-27T15:00:00+2500", "2026-11-27T15:00:00Zjunk", "27/11/2026",
                         "1969-12-31", NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(baic_policy_parse_starts_at(bad[i], now, &ms) != 0, "accepted '%s'", bad[i]);
    char buf[40];
    baic_policy_format_iso(1795791600250LL, buf, sizeof buf);
    ck_assert_str_eq(buf, "2026-11-27T15:00:00.250Z");
}
END_TEST

static int deps(const char *text, char *which, size_t n) {
    json_t *j = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    int st = baic_policy_deps_state(j, which, n);
    json_decref(j);
    return st;
}

START_TEST(dependency_states) {
    char w[256];
    ck_assert_int_eq(deps("[]", w, sizeof w), BAIC_DEPS_READY);
    ck_assert_int_eq(baic_policy_deps_state(NULL, w, sizeof w), BAIC_DEPS_READY);
    ck_assert_int_eq(deps("[[\"i1\",\"a\",\"TERMINATED\",\"SUCCESS\"]]", w, sizeof w),
                     BAIC_DEPS_READY);
    ck_assert_int_eq(deps("[[\"i1\",\"a\",\"TERMINATED\",\"SUCCESS\"],"
                          " [\"i2\",\"b\",\"RUNNING\",\"UNDEFINED\"]]", w, sizeof w),
                     BAIC_DEPS_WAIT);
    ck_assert_str_eq(w, "b (i2)");
    ck_assert_int_eq(deps("[[\"i1\",\"a\",\"TERMINATED\",\"FAILURE\"],"
                          " [\"i2\",\"b\",\"PENDING\",\"UNDEFINED\"]]", w, sizeof w),
                     BAIC_DEPS_FAILED);
    ck_assert_str_eq(w, "a (i1)");
    ck_assert_int_eq(deps("[[\"i1\",\"a\",\"ERROR\",\"SUCCESS\"]]", w, sizeof w),
                     BAIC_DEPS_FAILED);
    ck_assert_int_eq(deps("[[\"i1\",\"a\",\"CANCELLED\",\"UNDEFINED\"]]", w, sizeof w),
                     BAIC_DEPS_FAILED);
    /* Ended without a result (no exit code): not a success. */
    ck_assert_int_eq(deps("[[\"i1\",\"a\",\"TERMINATED\",\"UNDEFINED\"]]", w, sizeof w),
                     BAIC_DEPS_FAILED);
    ck_assert_int_eq(deps("[[\"i1\",\"a\",\"RUNNING\",\"UNDEFINED\"],"
                          " [\"i2\",\"b\",\"SCHEDULED\",\"UNDEFINED\"]]", w, sizeof w),
                     BAIC_DEPS_WAIT);
    ck_assert_str_eq(w, "a (i1), b (i2)");
    /* A tiny buffer is cut, never overrun. */
    char small[4];
    ck_assert_int_eq(deps("[[\"i1\",\"abcdef\",\"RUNNING\",\"UNDEFINED\"]]", small, sizeof small),
                     BAIC_DEPS_WAIT);
    ck_assert_int_eq((int)strlen(small), 3);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("policy_util");
    BAIC_TCASE(s, tc, "policy", 10);
    tcase_add_test(tc, fits_within_and_over);
    tcase_add_test(tc, fits_unspecified_and_unlimited);
    tcase_add_test(tc, durations);
    tcase_add_test(tc, start_times);
    tcase_add_test(tc, dependency_states);
    return s;
}

BAIC_CHECK_MAIN(suite)
