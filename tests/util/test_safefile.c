/* test_safefile.c: Check tests of safe_write_file: content replaced whole,
 * planted symlinks (at the name and at the old fixed temp name) never
 * followed, nothing left behind. */
#include "util/safefile.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_safefile.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static int count_entries(void)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

START_TEST(a_file_is_written_and_replaced_whole)
{
    char path[128], buf[64];
    snprintf(path, sizeof path, "%s/f", dir);
    ck_assert_int_eq(safe_write_file(path, "first version", 13, 0600, true), 0);
    read_text(path, buf, sizeof buf);
    ck_assert_str_eq(buf, "first version");
    ck_assert_int_eq(safe_write_file(path, "two", 3, 0600, false), 0);
    read_text(path, buf, sizeof buf);
    ck_assert_str_eq(buf, "two");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(count_entries(), 1);
}
END_TEST

START_TEST(a_planted_symlink_is_replaced_never_followed)
{
    char path[128], victim[128], oldtmp[160], buf[64];
    snprintf(path, sizeof path, "%s/stats", dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(oldtmp, sizeof oldtmp, "%s.tmp", path);
    FILE *f = fopen(victim, "w");
    fputs("root's file", f);
    fclose(f);
    ck_assert_int_eq(symlink(victim, path), 0);
    ck_assert_int_eq(symlink(victim, oldtmp), 0);
    ck_assert_int_eq(safe_write_file(path, "new", 3, 0644, true), 0);
    read_text(victim, buf, sizeof buf);
    ck_assert_str_eq(buf, "root's file");
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    read_text(path, buf, sizeof buf);
    ck_assert_str_eq(buf, "new");
    ck_assert_int_eq(count_entries(), 3);   /* stats, victim, the old link */
    /* Reading refuses a symlink too. */
    ck_assert_int_eq(safe_open_read(oldtmp), -1);
    ck_assert_int_eq(errno, ELOOP);
}
END_TEST

START_TEST(a_failed_write_leaves_nothing)
{
    char path[128];
    snprintf(path, sizeof path, "%s/missing-dir/f", dir);
    ck_assert_int_eq(safe_write_file(path, "x", 1, 0644, false), ENOENT);
    snprintf(path, sizeof path, "%s/sub", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    /* rename over a directory fails: the temp file must go again. */
    ck_assert_int_eq(safe_write_file(path, "x", 1, 0644, false), EISDIR);
    ck_assert_int_eq(count_entries(), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safefile");
    TCase *tc = tcase_create("safefile");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_file_is_written_and_replaced_whole);
    tcase_add_test(tc, a_planted_symlink_is_replaced_never_followed);
    tcase_add_test(tc, a_failed_write_leaves_nothing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
