/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers for check-based tests: a main() that runs one suite with CK_FORK. */
#ifndef BAIC_TESTS_CHECK_H
#define BAIC_TESTS_CHECK_H

#include <check.h>
#include <stdlib.h>

/* Every TCase gets a timeout; a hang fails the test instead of stalling CI. */
#define BAIC_TCASE(suite, tc, name, timeout_s)                                          \
    TCase *tc = tcase_create(name);                                                     \
    tcase_set_timeout(tc, timeout_s);                                                   \
    suite_add_tcase(suite, tc)

#define BAIC_CHECK_MAIN(make_suite)                                                     \
    int main(void) {                                                                    \
        SRunner *sr = srunner_create(make_suite());                                     \
        srunner_set_fork_status(sr, CK_FORK);                                           \
        srunner_run_all(sr, CK_NORMAL);                                                 \
        int failed = srunner_ntests_failed(sr);                                         \
        srunner_free(sr);                                                               \
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                               \
    }

#endif
