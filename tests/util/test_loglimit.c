/* test_loglimit.c: Check tests of the log rate limit (util/log.h): a burst per interval, the rest counted and reported once messages resume. */
#include "util/log.h"

#include <check.h>
#include <stdlib.h>

START_TEST(a_burst_passes_then_messages_are_held_back_and_counted)
{
    struct log_limit l = { 0 };
    unsigned d;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(log_limit_take(&l, 1000000, 5, 10000, &d), 1);
        ck_assert_uint_eq(d, 0);
    }
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(log_limit_take(&l, 1000000 + i, 5, 10000, &d), 0);
    /* Still inside the interval: still held back. */
    ck_assert_int_eq(log_limit_take(&l, 1009999, 5, 10000, &d), 0);
    /* The next interval: let through, and it reports the 1001 held back. */
    ck_assert_int_eq(log_limit_take(&l, 1010000, 5, 10000, &d), 1);
    ck_assert_uint_eq(d, 1001);
    ck_assert_int_eq(log_limit_take(&l, 1010001, 5, 10000, &d), 1);
    ck_assert_uint_eq(d, 0);
}
END_TEST

START_TEST(a_zeroed_limit_lets_the_first_message_through)
{
    struct log_limit l = { 0 };
    unsigned d = 7;
    ck_assert_int_eq(log_limit_take(&l, 5, 1, 10000, &d), 1);
    ck_assert_uint_eq(d, 0);
    ck_assert_int_eq(log_limit_take(&l, 6, 1, 10000, &d), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loglimit");
    TCase *tc = tcase_create("limit");
    tcase_add_test(tc, a_burst_passes_then_messages_are_held_back_and_counted);
    tcase_add_test(tc, a_zeroed_limit_lets_the_first_message_through);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
