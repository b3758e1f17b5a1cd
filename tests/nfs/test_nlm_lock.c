/* test_nlm_lock.c: the NLM lock table without a network: POSIX range
 * semantics (conflicts, splits, merges, upgrades), the blocked-request
 * queue and its grants, CANCEL, share reservations, FREE_ALL and limits. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "nfsd/nlm_lock.h"

static struct vfs_id file_a = { .len = 3, .b = { 1, 2, 3 } };
static struct vfs_id file_b = { .len = 3, .b = { 1, 2, 4 } };

static struct nlm_owner owner(const char *host, int32_t svid)
{
    static const uint8_t oh[] = "owner-handle";
    return (struct nlm_owner){ .host = host, .addr = host, .svid = svid, .oh = oh,
                               .ohlen = sizeof oh };
}

/* What the hooks saw. */
struct seen {
    int grants;
    struct { char host[64]; uint64_t offset, len; bool excl; } last;
    int firsts, lasts;
};

static void on_grant(void *arg, const struct nlm_grant *g)
{
    struct seen *s = arg;
    s->grants++;
    snprintf(s->last.host, sizeof s->last.host, "%s", g->host);
    s->last.offset = g->offset;
    s->last.len = g->len;
    s->last.excl = g->exclusive;
}

static void on_monitor(void *arg, const char *addr, bool first)
{
    struct seen *s = arg;
    (void)addr;
    if (first)
        s->firsts++;
    else
        s->lasts++;
}

static struct nlm_table *table(struct seen *s, const struct nlm_limits *lim)
{
    struct nlm_hooks h = { .granted = on_grant, .monitor = on_monitor, .arg = s };
    struct nlm_table *t;
    ck_assert_int_eq(nlm_table_create(lim, &h, &t), 0);
    return t;
}

static size_t nlocks(struct nlm_table *t)
{
    struct nlm_counts c;
    nlm_table_counts(t, &c);
    return c.locks;
}

/* An NLM owner handle may be empty (XDR then gives no buffer at all): the
 * fuzzer's LOCK with one hit memcpy(dst, NULL, 0), undefined behaviour. */
START_TEST(an_owner_with_an_empty_handle_locks_blocks_and_unlocks)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = { .host = "alpha", .addr = "alpha", .svid = 1, .oh = NULL, .ohlen = 0 };
    struct nlm_owner b = { .host = "beta", .addr = "beta", .svid = 2, .oh = NULL, .ohlen = 0 };
    struct nlm_holder h;
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_test(t, &file_a, &b, true, 0, 10, &h), NLM_CONFLICT);
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, true, 0, 10, true, NULL), NLM_QUEUED);
    ck_assert_int_eq(nlm_unlock(t, &file_a, &a, 0, 10), NLM_OK);
    ck_assert_int_eq(s.grants, 1);
    ck_assert_int_eq(nlm_share(t, &file_b, &a, 1, 2), NLM_OK);
    ck_assert_int_eq(nlocks(t), 1);
    nlm_table_destroy(t);
}
END_TEST

START_TEST(exclusive_conflicts_and_shared_locks_coexist)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1), b = owner("beta", 1);
    struct nlm_holder h;
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, false, 0, 100, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, false, 50, 100, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, true, 90, 20, false, NULL), NLM_CONFLICT);
    ck_assert_int_eq(nlm_test(t, &file_a, &b, true, 0, 10, &h), NLM_CONFLICT);
    ck_assert(!h.exclusive);
    ck_assert_int_eq(h.offset, 0);
    ck_assert_int_eq(h.len, 100);
    ck_assert_int_eq(h.svid, 1);
    /* Another file, and ranges past the holder's, are free. */
    ck_assert_int_eq(nlm_lock(t, &file_b, &b, true, 0, 0, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_test(t, &file_a, &b, true, 150, 0, NULL), NLM_OK);
    /* The same host with another svid is another owner. */
    struct nlm_owner a2 = owner("alpha", 2);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a2, true, 0, 1, false, NULL), NLM_CONFLICT);
    ck_assert_int_eq(s.firsts, 2);
    nlm_table_destroy(t);
}
END_TEST

START_TEST(unlocking_the_middle_splits_a_range_in_two)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1), b = owner("beta", 1);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 100, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_unlock(t, &file_a, &a, 40, 20), NLM_OK);
    ck_assert_int_eq(nlocks(t), 2);
    ck_assert_int_eq(nlm_test(t, &file_a, &b, true, 40, 20, NULL), NLM_OK);
    ck_assert_int_eq(nlm_test(t, &file_a, &b, true, 39, 1, NULL), NLM_CONFLICT);
    ck_assert_int_eq(nlm_test(t, &file_a, &b, true, 60, 1, NULL), NLM_CONFLICT);
    /* Locking the hole again merges the three back into one. */
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 40, 20, false, NULL), NLM_OK);
    ck_assert_int_eq(nlocks(t), 1);
    /* Adjacent ranges of one type merge; to-EOF (len 0) absorbs the rest. */
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 100, 0, false, NULL), NLM_OK);
    ck_assert_int_eq(nlocks(t), 1);
    struct nlm_holder h;
    ck_assert_int_eq(nlm_test(t, &file_a, &b, false, 5, 1, &h), NLM_CONFLICT);
    ck_assert_int_eq(h.offset, 0);
    ck_assert_int_eq(h.len, 0);
    ck_assert_int_eq(nlm_unlock(t, &file_a, &a, 0, 0), NLM_OK);
    ck_assert_int_eq(nlocks(t), 0);
    ck_assert_int_eq(s.lasts, 1);           /* alpha holds nothing now */
    nlm_table_destroy(t);
}
END_TEST

START_TEST(an_owner_upgrades_and_downgrades_part_of_its_own_range)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1), b = owner("beta", 1);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, false, 0, 100, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 10, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlocks(t), 3);         /* shared, exclusive, shared */
    ck_assert_int_eq(nlm_test(t, &file_a, &b, false, 0, 10, NULL), NLM_OK);
    ck_assert_int_eq(nlm_test(t, &file_a, &b, false, 15, 1, NULL), NLM_CONFLICT);
    /* Upgrading is refused while another owner shares the range. */
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, false, 50, 1, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 100, false, NULL), NLM_CONFLICT);
    /* Downgrading the middle back to shared merges to one lock again. */
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, false, 10, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_test(t, &file_a, &b, false, 15, 1, NULL), NLM_OK);
    ck_assert_int_eq(nlocks(t), 2);         /* alpha's [0,100) and beta's byte */
    nlm_table_destroy(t);
}
END_TEST

START_TEST(a_blocked_request_is_granted_when_the_holder_unlocks)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1), b = owner("beta", 7);
    struct nlm_callback cb = { .addr = { .ss_family = AF_INET } };
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, true, 5, 10, true, &cb), NLM_QUEUED);
    /* The client's retry of the same request queues nothing new. */
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, true, 5, 10, true, &cb), NLM_QUEUED);
    struct nlm_counts c;
    nlm_table_counts(t, &c);
    ck_assert_int_eq(c.waiters, 1);
    ck_assert_int_eq(s.grants, 0);
    /* A partial unlock that still conflicts grants nothing. */
    ck_assert_int_eq(nlm_unlock(t, &file_a, &a, 0, 5), NLM_OK);
    ck_assert_int_eq(s.grants, 0);
    ck_assert_int_eq(nlm_unlock(t, &file_a, &a, 0, 0), NLM_OK);
    ck_assert_int_eq(s.grants, 1);
    ck_assert_str_eq(s.last.host, "beta");
    ck_assert_int_eq(s.last.offset, 5);
    ck_assert_int_eq(s.last.len, 10);
    ck_assert(s.last.excl);
    ck_assert_int_eq(nlm_test(t, &file_a, &a, false, 7, 1, NULL), NLM_CONFLICT);
    /* The client's retry after the grant finds the lock already its own. */
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, true, 5, 10, true, &cb), NLM_OK);
    nlm_table_counts(t, &c);
    ck_assert_int_eq(c.waiters, 0);
    ck_assert_int_eq(c.locks, 1);
    nlm_table_destroy(t);
}
END_TEST

START_TEST(cancel_removes_a_queued_request_and_nothing_else)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1), b = owner("beta", 1);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 0, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, true, 0, 0, true, NULL), NLM_QUEUED);
    ck_assert_int_eq(nlm_cancel(t, &file_a, &b, true, 0, 1), NLM_CONFLICT);  /* other range */
    ck_assert_int_eq(nlm_cancel(t, &file_a, &b, true, 0, 0), NLM_OK);
    ck_assert_int_eq(nlm_cancel(t, &file_a, &b, true, 0, 0), NLM_CONFLICT);
    ck_assert_int_eq(nlm_unlock(t, &file_a, &a, 0, 0), NLM_OK);
    ck_assert_int_eq(s.grants, 0);
    struct nlm_counts c;
    nlm_table_counts(t, &c);
    ck_assert_int_eq(c.files, 0);
    ck_assert_int_eq(c.hosts, 0);
    nlm_table_destroy(t);
}
END_TEST

START_TEST(a_caller_name_from_another_address_cannot_free_test_or_unlock_its_locks)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1);
    a.addr = "192.0.2.1";
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 10, false, NULL), NLM_OK);
    /* The same caller name, svid and owner handle from another address. */
    struct nlm_owner fake = a;
    fake.addr = "192.0.2.66";
    ck_assert_int_eq(nlm_free_host(t, "alpha", "192.0.2.66"), 0);
    ck_assert_int_eq(nlm_unlock(t, &file_a, &fake, 0, 10), NLM_OK);  /* held nothing */
    struct nlm_holder h;
    ck_assert_int_eq(nlm_test(t, &file_a, &fake, true, 0, 1, &h), NLM_CONFLICT);
    ck_assert_int_eq(nlm_lock(t, &file_a, &fake, true, 0, 1, false, NULL), NLM_CONFLICT);
    ck_assert_int_eq(nlocks(t), 1);
    /* The real one still owns it. */
    ck_assert_int_eq(nlm_test(t, &file_a, &a, true, 0, 1, &h), NLM_OK);
    ck_assert_int_eq(nlm_free_host(t, "alpha", "192.0.2.1"), 1);
    ck_assert_int_eq(nlocks(t), 0);
    nlm_table_destroy(t);
}
END_TEST

START_TEST(free_all_drops_one_hosts_locks_and_wakes_the_others)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1), a2 = owner("alpha", 2), b = owner("beta", 1);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_b, &a2, false, 0, 0, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_share(t, &file_b, &a, 1, 2), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, false, 0, 0, true, NULL), NLM_QUEUED);
    ck_assert_int_eq(nlm_free_host(t, "alpha", "alpha"), 3);
    ck_assert_int_eq(s.grants, 1);
    ck_assert_str_eq(s.last.host, "beta");
    ck_assert_int_eq(nlm_free_host(t, "nobody", "nobody"), 0);
    ck_assert_int_eq(nlm_free_host(t, "beta", "beta"), 1);
    struct nlm_counts c;
    nlm_table_counts(t, &c);
    ck_assert_int_eq(c.locks + c.waiters + c.shares + c.files + c.hosts, 0);
    ck_assert_int_eq(s.firsts, s.lasts);
    nlm_table_destroy(t);
}
END_TEST

START_TEST(share_reservations_deny_by_mode_and_access)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1), b = owner("beta", 1);
    ck_assert_int_eq(nlm_share(t, &file_a, &a, 1 /* read */, 2 /* deny write */), NLM_OK);
    ck_assert_int_eq(nlm_share(t, &file_a, &b, 2, 0), NLM_CONFLICT);
    ck_assert_int_eq(nlm_share(t, &file_a, &b, 1, 0), NLM_OK);
    ck_assert_int_eq(nlm_share(t, &file_a, &b, 1, 1), NLM_CONFLICT);  /* alpha reads */
    ck_assert_int_eq(nlm_unshare(t, &file_a, &a), NLM_OK);
    ck_assert_int_eq(nlm_share(t, &file_a, &b, 3, 3), NLM_OK);        /* replaces beta's */
    ck_assert_int_eq(nlm_unshare(t, &file_a, &b), NLM_OK);
    struct nlm_counts c;
    nlm_table_counts(t, &c);
    ck_assert_int_eq(c.shares + c.files, 0);
    nlm_table_destroy(t);
}
END_TEST

START_TEST(limits_and_ranges_past_two_to_the_64_are_refused_cleanly)
{
    struct seen s = { 0 };
    struct nlm_limits lim = { .max_locks_per_host = 4, .max_waiters_per_host = 2 };
    struct nlm_table *t = table(&s, &lim);
    struct nlm_owner a = owner("alpha", 1), b = owner("beta", 1);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, UINT64_MAX, 2, false, NULL),
                     NLM_RANGE);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, UINT64_MAX, 1, false, NULL),
                     NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 5, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 10, 1, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 20, 1, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 100, 1, false, NULL), NLM_NOLOCKS);
    /* An unlock that splits a range is never refused for the limit. */
    ck_assert_int_eq(nlm_unlock(t, &file_a, &a, 2, 1), NLM_OK);
    ck_assert_int_eq(nlocks(t), 5);
    /* A flood of blocked requests stops at the per-host queue limit. */
    int queued = 0, refused = 0;
    for (int i = 0; i < 100; i++) {
        struct nlm_owner bi = owner("beta", i);
        enum nlm_result r = nlm_lock(t, &file_a, &bi, true, 0, 0, true, NULL);
        queued += r == NLM_QUEUED;
        refused += r == NLM_NOLOCKS;
    }
    ck_assert_int_eq(queued, 2);
    ck_assert_int_eq(refused, 98);
    ck_assert_int_eq(nlm_free_host(t, "beta", "beta"), 2);
    /* One address inventing caller names gets 16 of them (a share each:
     * its locks are limited as one client's, below). */
    int names = 0;
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "name-%d", i);
        struct nlm_owner n = owner(name, 1);
        n.addr = "192.0.2.99";
        names += nlm_share(t, &file_b, &n, 1, 0) == NLM_OK;
    }
    ck_assert_int_eq(names, 16);
    /* Its names share one address's limits: 4 locks and 2 queued requests
     * in all, however many names it uses (before, 4 and 2 per name: 16
     * names took 64 and 32). */
    int locked = 0, waits = 0;
    for (int i = 0; i < 16; i++) {
        char name[32];
        snprintf(name, sizeof name, "name-%d", i);
        struct nlm_owner n = owner(name, 1);
        n.addr = "192.0.2.99";
        locked += nlm_lock(t, &file_b, &n, false, (uint64_t)i * 10, 1, false, NULL) == NLM_OK;
        waits += nlm_lock(t, &file_a, &n, true, 0, 1, true, NULL) == NLM_QUEUED;
    }
    ck_assert_int_eq(locked, 4);
    ck_assert_int_eq(waits, 2);
    (void)b;
    nlm_table_destroy(t);
}
END_TEST

START_TEST(statd_monitors_an_address_once_and_its_reboot_frees_every_name_there)
{
    struct seen s = { 0 };
    struct nlm_table *t = table(&s, NULL);
    struct nlm_owner a = owner("alpha", 1), a2 = owner("alpha-again", 1), b = owner("beta", 1);
    a.addr = a2.addr = "192.0.2.7";
    ck_assert_int_eq(nlm_lock(t, &file_a, &a, true, 0, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_b, &a2, true, 0, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, true, 20, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(s.firsts, 2);          /* 192.0.2.7 once, beta once */
    ck_assert_int_eq(nlm_unlock(t, &file_b, &a2, 0, 0), NLM_OK);
    ck_assert_int_eq(s.lasts, 0);           /* alpha still holds one there */
    ck_assert_int_eq(nlm_lock(t, &file_b, &a2, true, 0, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_free_addr(t, "192.0.2.7"), 2);
    ck_assert_int_eq(s.lasts, 1);
    ck_assert_int_eq(nlm_lock(t, &file_a, &b, true, 0, 10, false, NULL), NLM_OK);
    ck_assert_int_eq(nlm_free_addr(t, "198.51.100.1"), 0);
    nlm_table_destroy(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nlm_lock");
    TCase *t = tcase_create("table");
    tcase_add_test(t, an_owner_with_an_empty_handle_locks_blocks_and_unlocks);
    tcase_add_test(t, exclusive_conflicts_and_shared_locks_coexist);
    tcase_add_test(t, unlocking_the_middle_splits_a_range_in_two);
    tcase_add_test(t, an_owner_upgrades_and_downgrades_part_of_its_own_range);
    tcase_add_test(t, a_blocked_request_is_granted_when_the_holder_unlocks);
    tcase_add_test(t, cancel_removes_a_queued_request_and_nothing_else);
    tcase_add_test(t, free_all_drops_one_hosts_locks_and_wakes_the_others);
    tcase_add_test(t, a_caller_name_from_another_address_cannot_free_test_or_unlock_its_locks);
    tcase_add_test(t, share_reservations_deny_by_mode_and_access);
    tcase_add_test(t, limits_and_ranges_past_two_to_the_64_are_refused_cleanly);
    tcase_add_test(t, statd_monitors_an_address_once_and_its_reboot_frees_every_name_there);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
