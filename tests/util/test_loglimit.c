/* test_loglimit.c: Check tests of util/log.h: the rate limit (a burst per interval, the rest counted and reported once messages resume) and that a client's name cannot forge log lines. */
#include "util/log.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

START_TEST(a_name_with_control_characters_logs_as_one_clean_line)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    fflush(stderr);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fileno(f), 2), 2);
    log_setup("t", 0, LOG_LVL_INFO);
    /* a caller name as a hostile client sends it */
    log_info("nlm: FREE_ALL from %s: done", "evil\n12:00:00.000 tarnfsd: error: forged\r\x1b[2J\x7f");
    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    char buf[512] = "";
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    ck_assert_uint_gt(n, 0);
    buf[n] = '\0';
    ck_assert_ptr_eq(strchr(buf, '\n'), buf + n - 1);     /* one line */
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_msg((unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f,
                      "control byte 0x%02x at %zu", (unsigned char)buf[i], i);
    ck_assert_ptr_nonnull(strstr(buf, "evil?12:00:00.000 tarnfsd: error: forged??[2J?: done"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loglimit");
    TCase *tc = tcase_create("limit");
    tcase_add_test(tc, a_burst_passes_then_messages_are_held_back_and_counted);
    tcase_add_test(tc, a_zeroed_limit_lets_the_first_message_through);
    tcase_add_test(tc, a_name_with_control_characters_logs_as_one_clean_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
