/* test_tarsuffix.c: Check tests of the one tarball suffix table (util/tarsuffix.h): which names are runs, in which preference order, which compression each suffix means, and what ingest strips. */
#include "util/tarsuffix.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static int match(const char *name, bool served_only, size_t *stem)
{
    return tar_suffix_match(name, strlen(name), served_only, stem);
}

START_TEST(served_suffixes_rank_tar_zst_gz_tgz)
{
    size_t stem;
    ck_assert_int_eq(match("run.tar", true, &stem), 0);
    ck_assert_uint_eq(stem, 3);
    ck_assert_int_eq(match("run.tar.zst", true, &stem), 1);
    ck_assert_int_eq(match("2024/run.tar.gz", true, &stem), 2);
    ck_assert_uint_eq(stem, 8);
    ck_assert_int_eq(match("run.tgz", true, &stem), 3);
    ck_assert_int_eq(tar_suffixes[2].filter, TAR_FILTER_GZIP);
    ck_assert_int_eq(tar_suffixes[3].filter, TAR_FILTER_GZIP);
    ck_assert_int_eq(tar_suffixes[1].filter, TAR_FILTER_ZSTD);
}
END_TEST

START_TEST(other_compressions_are_for_ingest_only)
{
    size_t stem;
    ck_assert_int_eq(match("run.tar.xz", true, NULL), -1);
    ck_assert_int_ge(match("run.tar.xz", false, &stem), 0);
    ck_assert_uint_eq(stem, 3);
    ck_assert_int_ge(match("run.tbz2", false, &stem), 0);
    ck_assert_int_ge(match("run.tar.zstd", false, &stem), 0);
    ck_assert_uint_eq(stem, 3);
}
END_TEST

START_TEST(a_bare_suffix_or_other_names_are_not_runs)
{
    ck_assert_int_eq(match(".tar", false, NULL), -1);
    ck_assert_int_eq(match("run.tar.sha256", false, NULL), -1);
    ck_assert_int_eq(match("run.zip", false, NULL), -1);
    ck_assert_int_eq(tar_suffix_match("run.tar.gz", 7, true, NULL), 0);
}
END_TEST

START_TEST(each_filter_has_its_written_suffix)
{
    ck_assert_str_eq(tar_suffix_for(TAR_FILTER_NONE), ".tar");
    ck_assert_str_eq(tar_suffix_for(TAR_FILTER_GZIP), ".tar.gz");
    ck_assert_str_eq(tar_suffix_for(TAR_FILTER_ZSTD), ".tar.zst");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util-tarsuffix");
    TCase *tc = tcase_create("tarsuffix");
    tcase_add_test(tc, served_suffixes_rank_tar_zst_gz_tgz);
    tcase_add_test(tc, other_compressions_are_for_ingest_only);
    tcase_add_test(tc, a_bare_suffix_or_other_names_are_not_runs);
    tcase_add_test(tc, each_filter_has_its_written_suffix);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
