/* test_hex.c: bytes go to lowercase hex and come back from either case; anything that is not a hex digit is refused. */
#include "util/hex.h"

#include <check.h>
#include <errno.h>
#include <string.h>

START_TEST(bytes_encode_as_lowercase_digit_pairs)
{
    const unsigned char b[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
    char out[2 * sizeof b + 1];
    memset(out, 'x', sizeof out);
    hex_encode(b, sizeof b, out);
    ck_assert_str_eq(out, "00017f80abff");
    hex_encode(b, 0, out);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(digits_decode_from_either_case_and_round_trip)
{
    unsigned char b[4], all[256], back[256];
    ck_assert_int_eq(hex_decode("DeadBEEF", 4, b), 0);
    ck_assert_int_eq(b[0], 0xde);
    ck_assert_int_eq(b[3], 0xef);
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char text[513];
    hex_encode(all, sizeof all, text);
    ck_assert_int_eq(hex_decode(text, sizeof back, back), 0);
    ck_assert_mem_eq(all, back, sizeof all);
}
END_TEST

START_TEST(non_digits_are_refused)
{
    unsigned char b[2];
    const char *bad[] = { "0g00", "g000", "00 0", "-100", "0x00", "00\0" "0" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(hex_decode(bad[i], 2, b) == EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(hex_digit('f'), 15);
    ck_assert_int_eq(hex_digit('F'), 15);
    ck_assert_int_eq(hex_digit('9'), 9);
    ck_assert_int_eq(hex_digit('G'), -1);
    ck_assert_int_eq(hex_digit('\0'), -1);
}
END_TEST

START_TEST(hex_is_tells_digits_and_case)
{
    ck_assert(hex_is("0123456789abcdef", 16, true));
    ck_assert(hex_is("ABCDEF", 6, false));
    ck_assert(!hex_is("ABCDEF", 6, true));
    ck_assert(!hex_is("abcdeg", 6, false));
    ck_assert(hex_is("", 0, true));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hex");
    TCase *tc = tcase_create("hex");
    tcase_add_test(tc, bytes_encode_as_lowercase_digit_pairs);
    tcase_add_test(tc, digits_decode_from_either_case_and_round_trip);
    tcase_add_test(tc, non_digits_are_refused);
    tcase_add_test(tc, hex_is_tells_digits_and_case);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
