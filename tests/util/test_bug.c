/* test_bug.c: Check tests of BUG_ON (util/bug.h): a broken invariant is
 * reported with file and line, a sound one costs nothing, and the debug
 * (sanitizer) builds abort. */
#include "util/bug.h"
#include "util/log.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(a_sound_invariant_is_false_and_silent)
{
    int pins = 1;
    ck_assert(!BUG_ON(pins < 0));
}
END_TEST

START_TEST(a_broken_invariant_names_file_and_line_and_aborts_in_debug_builds)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        log_setup("test_bug", 0, LOG_LVL_INFO);
        int pins = -1;
        bool hit = BUG_ON(pins < 0);
        _exit(hit ? 7 : 0);
    }
    close(fds[1]);
    char out[1024] = "";
    size_t n = 0;
    ssize_t got;
    while ((got = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(strstr(out, "BUG: pins < 0 at tests/util/test_bug.c:") != NULL,
                  "report was: %s", out);
#ifdef TARNFS_DEBUG
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#else
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7);
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bug");
    TCase *tc = tcase_create("bug");
    tcase_add_test(tc, a_sound_invariant_is_false_and_silent);
    tcase_add_test(tc, a_broken_invariant_names_file_and_line_and_aborts_in_debug_builds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
