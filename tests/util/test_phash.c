/* test_phash.c: Check tests pinning the persisted hash (util/phash.h) and its two consumers, kvstore's inode numbers and vfs's name hash, to values recorded before they shared one definition: a change here would rename every inode, catalog entry and marker on disk. */
#include "util/phash.h"
#include "kvstore/kvfs.h"
#include "vfs/vfs_internal.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(the_persisted_hash_keeps_its_recorded_values)
{
    ck_assert_uint_eq(phash("", 0), UINT64_C(0xf52a15e9a9b5e89b));
    ck_assert_uint_eq(phash("a", 1), UINT64_C(0x02c0bdbf481420f8));
    ck_assert_uint_eq(phash("241023_A01295_0431_BHK3NFDRX1", 29),
                      UINT64_C(0x7d783dc492aa1e13));
    ck_assert_uint_eq(phash("2024/run1", 9), UINT64_C(0x02e8ba853c41f48d));
}
END_TEST

START_TEST(feeding_in_pieces_equals_feeding_at_once)
{
    uint64_t h = phash_update(PHASH_INIT, "2024/", 5);
    h = phash_update(h, "run1", 4);
    ck_assert_uint_eq(phash_final(h), phash("2024/run1", 9));
    ck_assert_uint_eq(phash_update(PHASH_INIT, "", 0), PHASH_INIT);
}
END_TEST

START_TEST(kvstore_inode_numbers_keep_their_recorded_values)
{
    ck_assert_uint_eq(kv_ino_for("241023_A01295_0431_BHK3NFDRX1", ""),
                      UINT64_C(0x04eb5894271952ed));
    ck_assert_uint_eq(kv_ino_for("241023_A01295_0431_BHK3NFDRX1",
                                 "Data/Intensities/s.locs"),
                      UINT64_C(0x72dfc60f4c6dc685));
    ck_assert_uint_eq(kv_ino_for("a", "b"), UINT64_C(0x6b38c838c62d597e));
}
END_TEST

START_TEST(vfs_name_hash_is_the_persisted_hash)
{
    ck_assert_uint_eq(vfs_hash_str("2024/run1"), UINT64_C(0x02e8ba853c41f48d));
    ck_assert_uint_eq(vfs_hash("", 0), phash("", 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util-phash");
    TCase *tc = tcase_create("phash");
    tcase_add_test(tc, the_persisted_hash_keeps_its_recorded_values);
    tcase_add_test(tc, feeding_in_pieces_equals_feeding_at_once);
    tcase_add_test(tc, kvstore_inode_numbers_keep_their_recorded_values);
    tcase_add_test(tc, vfs_name_hash_is_the_persisted_hash);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
