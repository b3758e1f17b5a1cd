/* test_units.c: sizes and durations parse as written, and anything signed, overflowing or followed by junk is refused. */
#include "util/units.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

START_TEST(sizes_take_binary_units_with_or_without_b_or_ib)
{
    uint64_t v;
    ck_assert_int_eq(units_size("4096", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(units_size("512k", &v), 0);
    ck_assert_uint_eq(v, 512u << 10);
    ck_assert_int_eq(units_size("64M", &v), 0);
    ck_assert_uint_eq(v, 64u << 20);
    ck_assert_int_eq(units_size("1GiB", &v), 0);
    ck_assert_uint_eq(v, 1u << 30);
    ck_assert_int_eq(units_size("2tb", &v), 0);
    ck_assert_uint_eq(v, (uint64_t)2 << 40);
    ck_assert_int_eq(units_size("100B", &v), 0);
    ck_assert_uint_eq(v, 100);
    ck_assert_int_eq(units_size("18446744073709551615", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
}
END_TEST

START_TEST(sizes_refuse_signs_spaces_junk_and_overflow)
{
    uint64_t v = 7;
    const char *bad[] = { "", "-1", "+1", " 1", "1 ", "1X", "1KX", "1iB", "K", "1.5M", "0x10" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(units_size(bad[i], &v) == EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(units_size("18446744073709551616", &v), ERANGE);
    ck_assert_int_eq(units_size("16777216T", &v), ERANGE);     /* 2^64 */
    ck_assert_int_eq(units_size("16777215T", &v), 0);
    ck_assert_uint_eq(v, (uint64_t)16777215 << 40);
}
END_TEST

START_TEST(durations_take_ms_s_m_h_d_and_bare_seconds)
{
    uint64_t ms;
    ck_assert_int_eq(units_duration_ms("250ms", &ms), 0);
    ck_assert_uint_eq(ms, 250);
    ck_assert_int_eq(units_duration_ms("7", &ms), 0);
    ck_assert_uint_eq(ms, 7000);
    ck_assert_int_eq(units_duration_ms("90s", &ms), 0);
    ck_assert_uint_eq(ms, 90000);
    ck_assert_int_eq(units_duration_ms("2m", &ms), 0);
    ck_assert_uint_eq(ms, 120000);
    ck_assert_int_eq(units_duration_ms("1.5h", &ms), 0);
    ck_assert_uint_eq(ms, 5400000);
    ck_assert_int_eq(units_duration_ms("1d", &ms), 0);
    ck_assert_uint_eq(ms, 86400000);
    ck_assert_int_eq(units_duration_ms("0.25", &ms), 0);
    ck_assert_uint_eq(ms, 250);
}
END_TEST

START_TEST(durations_refuse_signs_junk_and_overflow)
{
    uint64_t ms;
    const char *bad[] = { "", "-1s", "+1", "1 s", "fast", "1.", ".5s", "1w", "5S", "1e3" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(units_duration_ms(bad[i], &ms) == EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(units_duration_ms("99999999999999999999", &ms), ERANGE);
    ck_assert_int_eq(units_duration_ms("200000000000000d", &ms), ERANGE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("units");
    TCase *tc = tcase_create("units");
    tcase_add_test(tc, sizes_take_binary_units_with_or_without_b_or_ib);
    tcase_add_test(tc, sizes_refuse_signs_spaces_junk_and_overflow);
    tcase_add_test(tc, durations_take_ms_s_m_h_d_and_bare_seconds);
    tcase_add_test(tc, durations_refuse_signs_junk_and_overflow);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
