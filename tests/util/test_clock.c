/* test_clock.c: Check tests of the decision clock (util/clock.h): a replaced source is what decisions read, advancing needs enabling and moves both clocks, listeners hear every advance until they unlisten. */
#include "util/clock.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>

static int64_t fake_mono = 5000, fake_wall = 1700000000000LL;
static int64_t read_fake_mono(void) { return fake_mono; }
static int64_t read_fake_wall(void) { return fake_wall; }
static const struct tclock_source fake = { read_fake_mono, read_fake_wall };

/* The offset only grows, so each test measures from where it finds it. */
START_TEST(decisions_read_the_replaced_source_plus_the_offset)
{
    tclock_set_source(&fake);
    int64_t off = tclock_offset_ms();
    ck_assert_int_eq(tclock_mono_ms(), 5000 + off);
    ck_assert_int_eq(tclock_wall_ms(), 1700000000000LL + off);
    fake_mono += 250;
    ck_assert_int_eq(tclock_mono_ms(), 5250 + off);
    tclock_set_source(NULL);
}
END_TEST

START_TEST(the_real_clock_is_used_by_default_and_never_goes_back)
{
    int64_t a = tclock_mono_ms(), w = tclock_wall_ms();
    ck_assert_int_gt(w, 1600000000000LL);      /* after 2020 */
    ck_assert_int_ge(tclock_mono_ms(), a);
}
END_TEST

START_TEST(advancing_is_refused_until_the_process_enables_it)
{
    tclock_enable_advance(false);
    int64_t off = tclock_offset_ms();
    ck_assert_int_eq(tclock_advance(1000), EPERM);
    ck_assert_int_eq(tclock_offset_ms(), off);
    ck_assert(!tclock_advance_enabled());
}
END_TEST

START_TEST(an_advance_moves_both_clocks_by_exactly_that_much)
{
    tclock_set_source(&fake);
    tclock_enable_advance(true);
    int64_t m = tclock_mono_ms(), w = tclock_wall_ms();
    ck_assert_int_eq(tclock_advance(6000), 0);
    ck_assert_int_eq(tclock_mono_ms(), m + 6000);
    ck_assert_int_eq(tclock_wall_ms(), w + 6000);
    ck_assert_int_eq(tclock_advance(1), 0);
    ck_assert_int_eq(tclock_mono_ms(), m + 6001);
    tclock_enable_advance(false);
    tclock_set_source(NULL);
}
END_TEST

START_TEST(an_advance_out_of_range_changes_nothing)
{
    tclock_enable_advance(true);
    int64_t off = tclock_offset_ms();
    ck_assert_int_eq(tclock_advance(0), EINVAL);
    ck_assert_int_eq(tclock_advance(-5), EINVAL);
    ck_assert_int_eq(tclock_advance(TCLOCK_ADVANCE_MAX_MS + 1), EINVAL);
    ck_assert_int_eq(tclock_offset_ms(), off);
    /* A century at most in all: the clocks never overflow. */
    int err = 0;
    for (int i = 0; i < 200 && !err; i++)
        err = tclock_advance(TCLOCK_ADVANCE_MAX_MS);
    ck_assert_int_eq(err, EOVERFLOW);
    ck_assert_int_le(tclock_offset_ms(), 100 * TCLOCK_ADVANCE_MAX_MS);
    tclock_enable_advance(false);
}
END_TEST

static void count(void *arg) { ++*(int *)arg; }

START_TEST(listeners_hear_every_advance_until_they_unlisten)
{
    tclock_enable_advance(true);
    int a = 0, b = 0;
    ck_assert_int_eq(tclock_listen(count, &a), 0);
    ck_assert_int_eq(tclock_listen(count, &b), 0);
    ck_assert_int_eq(tclock_advance(10), 0);
    ck_assert_int_eq(a, 1);
    ck_assert_int_eq(b, 1);
    tclock_unlisten(count, &a);
    ck_assert_int_eq(tclock_advance(10), 0);
    ck_assert_int_eq(a, 1);
    ck_assert_int_eq(b, 2);
    /* A refused advance tells nobody. */
    ck_assert_int_eq(tclock_advance(0), EINVAL);
    ck_assert_int_eq(b, 2);
    tclock_unlisten(count, &b);
    tclock_enable_advance(false);
}
END_TEST

START_TEST(listeners_are_bounded)
{
    int slots[TCLOCK_LISTENERS_MAX + 1];
    for (int i = 0; i < TCLOCK_LISTENERS_MAX; i++)
        ck_assert_int_eq(tclock_listen(count, &slots[i]), 0);
    ck_assert_int_eq(tclock_listen(count, &slots[TCLOCK_LISTENERS_MAX]), ENOSPC);
    tclock_unlisten(count, &slots[3]);
    ck_assert_int_eq(tclock_listen(count, &slots[TCLOCK_LISTENERS_MAX]), 0);
    for (int i = 0; i <= TCLOCK_LISTENERS_MAX; i++)
        tclock_unlisten(count, &slots[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("clock");
    TCase *tc = tcase_create("clock");
    tcase_add_test(tc, decisions_read_the_replaced_source_plus_the_offset);
    tcase_add_test(tc, the_real_clock_is_used_by_default_and_never_goes_back);
    tcase_add_test(tc, advancing_is_refused_until_the_process_enables_it);
    tcase_add_test(tc, an_advance_moves_both_clocks_by_exactly_that_much);
    tcase_add_test(tc, listeners_hear_every_advance_until_they_unlisten);
    tcase_add_test(tc, listeners_are_bounded);
    tcase_add_test(tc, an_advance_out_of_range_changes_nothing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
