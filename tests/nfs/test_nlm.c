/* test_nlm.c: NLM v4 against a real tarnfsd with libnfs's raw NLM client,
 * from two caller names: conflicts, range splits, a blocked lock granted by
 * a GRANTED_MSG callback to a lock manager registered with the real
 * rpcbind, CANCEL, FREE_ALL, LOCK_MSG answered by LOCK_RES, the grace
 * period after a restart, and bad input (forged handle, ranges past 2^64,
 * a host outside the export ACL, a flood of blocked locks).  Run by
 * tests/suites/50-nfs.sh inside a private network namespace with rpcbind. */
#include <check.h>
#include <dirent.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <nfsc/libnfs-raw-nlm.h>

#include "nlm_wire.h"
#include "server.h"

#define CONF "export / *(ro,no_root_squash)\nnlm_grace = 0\n"

/* ---- libnfs raw RPC, made synchronous ---- */

struct waiter {
    bool done;
    int rpc_status;
    int status;
    char fh[64];
    int fhlen;
    NLM4_TESTres test;              /* TEST's answer (holder fields copied) */
    void (*grab)(struct waiter *w, void *data);
};

static void raw_cb(struct rpc_context *rpc, int status, void *data, void *priv)
{
    struct waiter *w = priv;
    (void)rpc;
    w->rpc_status = status;
    if (status == RPC_STATUS_SUCCESS && data && w->grab)
        w->grab(w, data);
    w->done = true;
}

static void raw_wait(struct rpc_context *rpc, struct waiter *w)
{
    for (int i = 0; i < 600 && !w->done; i++) {
        struct pollfd p = { .fd = rpc_get_fd(rpc), .events = rpc_which_events(rpc) };
        int r = poll(&p, 1, 100);
        ck_assert_int_ge(r, 0);
        ck_assert_int_eq(rpc_service(rpc, r > 0 ? p.revents : 0), 0);
    }
    ck_assert_msg(w->done, "no reply within 60 s");
    ck_assert_int_eq(w->rpc_status, RPC_STATUS_SUCCESS);
}

static struct rpc_context *raw_connect(int port, int prog, int vers)
{
    struct rpc_context *rpc = rpc_init_context();
    ck_assert_ptr_nonnull(rpc);
    struct waiter w = { 0 };
    ck_assert_int_eq(rpc_connect_port_async(rpc, "127.0.0.1", port, prog, vers, raw_cb, &w), 0);
    raw_wait(rpc, &w);
    return rpc;
}

static void grab_mnt(struct waiter *w, void *data)
{
    mountres3 *r = data;
    w->status = r->fhs_status;
    if (r->fhs_status == MNT3_OK) {
        w->fhlen = (int)r->mountres3_u.mountinfo.fhandle.fhandle3_len;
        memcpy(w->fh, r->mountres3_u.mountinfo.fhandle.fhandle3_val, (size_t)w->fhlen);
    }
}

static void grab_lookup(struct waiter *w, void *data)
{
    LOOKUP3res *r = data;
    w->status = r->status;
    if (r->status == NFS3_OK) {
        w->fhlen = (int)r->LOOKUP3res_u.resok.object.data.data_len;
        memcpy(w->fh, r->LOOKUP3res_u.resok.object.data.data_val, (size_t)w->fhlen);
    }
}

/* The handle of /demo/big.bin, through MOUNT and LOOKUP. */
static int file_handle(const struct test_server *s, char fh[64])
{
    struct rpc_context *rpc = raw_connect(s->mount_port, MOUNT_PROGRAM, MOUNT_V3);
    struct waiter w = { .grab = grab_mnt };
    ck_assert_int_eq(rpc_mount3_mnt_async(rpc, raw_cb, "/demo", &w), 0);
    raw_wait(rpc, &w);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(w.status, MNT3_OK);
    rpc = raw_connect(s->nfs_port, NFS_PROGRAM, NFS_V3);
    LOOKUP3args la;
    memset(&la, 0, sizeof la);
    la.what.dir.data.data_len = (u_int)w.fhlen;
    la.what.dir.data.data_val = w.fh;
    la.what.name = "big.bin";
    struct waiter l = { .grab = grab_lookup };
    ck_assert_int_eq(rpc_nfs3_lookup_async(rpc, raw_cb, &la, &l), 0);
    raw_wait(rpc, &l);
    rpc_destroy_context(rpc);
    ck_assert_int_eq(l.status, NFS3_OK);
    memcpy(fh, l.fh, 64);
    return l.fhlen;
}

/* One caller's view: its NLM connection, name and the file's handle. */
struct caller {
    struct rpc_context *rpc;
    const char *name;
    char fh[64];
    int fhlen;
};

static struct caller caller(const struct test_server *s, const char *name)
{
    struct caller c = { .name = name };
    c.fhlen = file_handle(s, c.fh);
    c.rpc = raw_connect(s->nfs_port, NLM_PROGRAM, NLM_V4);
    return c;
}

static void fill_lock(struct caller *c, nlm4_lock *l, int svid, uint64_t off, uint64_t len)
{
    l->caller_name = (char *)c->name;
    l->fh.data.data_len = (u_int)c->fhlen;
    l->fh.data.data_val = c->fh;
    l->oh = "owner";
    l->svid = (u_int)svid;
    l->l_offset = off;
    l->l_len = len;
}

static void grab_status(struct waiter *w, void *data)
{
    w->status = ((NLM4_LOCKres *)data)->status;     /* LOCK, CANCEL, UNLOCK alike */
}

static int nlm_lock(struct caller *c, int svid, bool excl, uint64_t off, uint64_t len,
                    bool block, bool reclaim)
{
    NLM4_LOCKargs a;
    memset(&a, 0, sizeof a);
    a.block = block;
    a.exclusive = excl;
    a.reclaim = reclaim;
    fill_lock(c, &a.lock, svid, off, len);
    struct waiter w = { .grab = grab_status };
    ck_assert_int_eq(rpc_nlm4_lock_async(c->rpc, raw_cb, &a, &w), 0);
    raw_wait(c->rpc, &w);
    return w.status;
}

static int nlm_unlock(struct caller *c, int svid, uint64_t off, uint64_t len)
{
    NLM4_UNLOCKargs a;
    memset(&a, 0, sizeof a);
    fill_lock(c, &a.lock, svid, off, len);
    struct waiter w = { .grab = grab_status };
    ck_assert_int_eq(rpc_nlm4_unlock_async(c->rpc, raw_cb, &a, &w), 0);
    raw_wait(c->rpc, &w);
    return w.status;
}

static int nlm_cancel(struct caller *c, int svid, bool excl, uint64_t off, uint64_t len)
{
    NLM4_CANCargs a;
    memset(&a, 0, sizeof a);
    a.block = true;
    a.exclusive = excl;
    fill_lock(c, &a.lock, svid, off, len);
    struct waiter w = { .grab = grab_status };
    ck_assert_int_eq(rpc_nlm4_cancel_async(c->rpc, raw_cb, &a, &w), 0);
    raw_wait(c->rpc, &w);
    return w.status;
}

static void grab_test(struct waiter *w, void *data)
{
    NLM4_TESTres *r = data;
    w->status = r->reply.status;
    w->test.reply.status = r->reply.status;
    if (r->reply.status == NLM4_DENIED) {
        nlm4_holder *h = &r->reply.nlm4_testreply_u.lock.holder;
        w->test.reply.nlm4_testreply_u.lock.holder.exclusive = h->exclusive;
        w->test.reply.nlm4_testreply_u.lock.holder.svid = h->svid;
        w->test.reply.nlm4_testreply_u.lock.holder.l_offset = h->l_offset;
        w->test.reply.nlm4_testreply_u.lock.holder.l_len = h->l_len;
    }
}

/* TEST; on DENIED *h gets the holder. */
static int nlm_test(struct caller *c, int svid, bool excl, uint64_t off, uint64_t len,
                    nlm4_holder *h)
{
    NLM4_TESTargs a;
    memset(&a, 0, sizeof a);
    a.exclusive = excl;
    fill_lock(c, &a.lock, svid, off, len);
    struct waiter w = { .grab = grab_test };
    ck_assert_int_eq(rpc_nlm4_test_async(c->rpc, raw_cb, &a, &w), 0);
    raw_wait(c->rpc, &w);
    if (h)
        *h = w.test.reply.nlm4_testreply_u.lock.holder;
    return w.status;
}

static void drop(struct caller *c)
{
    rpc_destroy_context(c->rpc);
}

static struct test_server start(const char *conf)
{
    struct test_server s = { 0 };
    static const char *const verbose[] = { "-v", NULL };
    ck_assert_int_eq(server_start(&s, test_env("NFS_TEST_CACHE"), conf, verbose), 0);
    return s;
}

/* ---- tests ---- */

START_TEST(locks_conflict_across_caller_names_and_shared_locks_coexist)
{
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha"), b = caller(&s, "beta");
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 100, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_lock(&b, 1, true, 50, 10, false, false), NLM4_DENIED);
    ck_assert_int_eq(nlm_lock(&b, 1, false, 50, 10, false, false), NLM4_DENIED);
    ck_assert_int_eq(nlm_lock(&b, 1, true, 100, 0, false, false), NLM4_GRANTED);  /* to EOF */
    nlm4_holder h;
    ck_assert_int_eq(nlm_test(&b, 1, false, 10, 1, &h), NLM4_DENIED);
    ck_assert(h.exclusive);
    ck_assert_int_eq(h.svid, 1);
    ck_assert_int_eq(h.l_offset, 0);
    ck_assert_int_eq(h.l_len, 100);
    /* Downgraded to shared, alpha's range admits beta's readers. */
    ck_assert_int_eq(nlm_lock(&a, 1, false, 0, 100, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_lock(&b, 2, false, 0, 100, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_test(&a, 1, true, 0, 100, NULL), NLM4_DENIED);
    /* A read-only export grants locks: readers lock too. */
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(unlocking_the_middle_of_a_range_leaves_both_ends_locked)
{
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha"), b = caller(&s, "beta");
    ck_assert_int_eq(nlm_lock(&a, 7, true, 0, 1000, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_unlock(&a, 7, 400, 200), NLM4_GRANTED);
    ck_assert_int_eq(nlm_test(&b, 1, true, 400, 200, NULL), NLM4_GRANTED);
    nlm4_holder h;
    ck_assert_int_eq(nlm_test(&b, 1, true, 300, 200, &h), NLM4_DENIED);
    ck_assert_int_eq(h.l_offset, 0);
    ck_assert_int_eq(h.l_len, 400);
    ck_assert_int_eq(nlm_test(&b, 1, true, 550, 100, &h), NLM4_DENIED);
    ck_assert_int_eq(h.l_offset, 600);
    ck_assert_int_eq(h.l_len, 400);
    ck_assert_int_eq(nlm_lock(&b, 1, true, 400, 200, false, false), NLM4_GRANTED);
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(a_blocked_lock_is_granted_by_callback_when_the_holder_unlocks)
{
    int lockd = wire_lockd_open();
    ck_assert_msg(lockd >= 0, "cannot register a lock manager with rpcbind");
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha"), b = caller(&s, "beta");
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 0, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_lock(&b, 9, true, 10, 20, true, false), NLM4_BLOCKED);
    /* The client's retry of its blocked request is still just blocked. */
    ck_assert_int_eq(nlm_lock(&b, 9, true, 10, 20, true, false), NLM4_BLOCKED);
    struct wire_call call;
    ck_assert_int_eq(wire_lockd_wait(lockd, 300, &call), -1);   /* nothing yet */
    ck_assert_int_eq(nlm_unlock(&a, 1, 0, 0), NLM4_GRANTED);
    ck_assert_int_eq(wire_lockd_wait(lockd, 10000, &call), 0);
    ck_assert_int_eq(call.proc, 10);                            /* GRANTED_MSG */
    ck_assert_str_eq(call.caller, "beta");
    ck_assert_int_eq(call.svid, 9);
    ck_assert_int_eq(call.offset, 10);
    ck_assert_int_eq(call.len, 20);
    ck_assert(call.exclusive);
    ck_assert_int_eq((int)call.fhlen, b.fhlen);
    /* beta holds it now: alpha is refused, and beta's retry is granted. */
    ck_assert_int_eq(nlm_lock(&a, 1, true, 15, 1, false, false), NLM4_DENIED);
    ck_assert_int_eq(nlm_lock(&b, 9, true, 10, 20, true, false), NLM4_GRANTED);
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
    wire_lockd_close(lockd);
}
END_TEST

START_TEST(cancel_withdraws_a_blocked_lock_so_no_callback_comes)
{
    int lockd = wire_lockd_open();
    ck_assert(lockd >= 0);
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha"), b = caller(&s, "beta");
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 10, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_lock(&b, 2, true, 0, 10, true, false), NLM4_BLOCKED);
    ck_assert_int_eq(nlm_cancel(&b, 2, true, 0, 10), NLM4_GRANTED);
    ck_assert_int_eq(nlm_cancel(&b, 2, true, 0, 10), NLM4_DENIED);   /* nothing left */
    ck_assert_int_eq(nlm_unlock(&a, 1, 0, 10), NLM4_GRANTED);
    struct wire_call call;
    ck_assert_int_eq(wire_lockd_wait(lockd, 1000, &call), -1);
    ck_assert_int_eq(nlm_test(&a, 1, true, 0, 10, NULL), NLM4_GRANTED);
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
    wire_lockd_close(lockd);
}
END_TEST

START_TEST(free_all_releases_every_lock_of_one_caller_name)
{
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha"), b = caller(&s, "beta");
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 10, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_lock(&a, 2, true, 20, 10, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_lock(&b, 1, true, 40, 10, false, false), NLM4_GRANTED);
    ck_assert_int_eq(wire_free_all(s.nfs_port, "alpha"), 0);
    ck_assert_int_eq(nlm_lock(&b, 1, true, 0, 30, false, false), NLM4_GRANTED);
    ck_assert_int_eq(nlm_test(&a, 1, true, 40, 1, NULL), NLM4_DENIED);   /* beta's stays */
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(lock_msg_is_answered_with_lock_res_to_the_callers_lock_manager)
{
    int lockd = wire_lockd_open();
    ck_assert(lockd >= 0);
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha");
    ck_assert_int_eq(wire_lock_msg(s.nfs_port, "gamma", a.fh, (unsigned)a.fhlen, 3, 0, 10), 0);
    struct wire_call call;
    ck_assert_int_eq(wire_lockd_wait(lockd, 10000, &call), 0);
    ck_assert_int_eq(call.proc, 12);                            /* LOCK_RES */
    ck_assert_int_eq(call.status, NLM4_GRANTED);
    ck_assert_int_eq(nlm_lock(&a, 1, true, 5, 1, false, false), NLM4_DENIED);
    ck_assert_int_eq(wire_lock_msg(s.nfs_port, "delta", a.fh, (unsigned)a.fhlen, 3, 0, 10), 0);
    ck_assert_int_eq(wire_lockd_wait(lockd, 10000, &call), 0);
    ck_assert_int_eq(call.proc, 12);
    ck_assert_int_eq(call.status, NLM4_DENIED);
    drop(&a);
    ck_assert_int_eq(server_stop(&s), 0);
    wire_lockd_close(lockd);
}
END_TEST

/* Move the clock of the tarnfsd serving cache (started with
 * TARNFS_TEST_CLOCK=1) forward by duration (tarnfs test-clock). */
static void advance_clock(const char *cache, const char *duration)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s test-clock --cache %s %s >/dev/null",
             test_env("TARNFS"), cache, duration);
    ck_assert_int_eq(system(cmd), 0);
}

/* Is run name in the cache (tarnfs cache ls)? */
static bool cached(const char *cache, const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s cache ls --cache %s | grep -q '^%s '", test_env("TARNFS"),
             cache, name);
    return system(cmd) == 0;
}

/* Whether run name is in the cache within 30 s: a run served while it
 * streams is listed once its whole tarball is in (published). */
static bool cached_soon(const char *cache, const char *name)
{
    for (int i = 0; i < 300; i++) {
        if (cached(cache, name))
            return true;
        usleep(100 * 1000);
    }
    return false;
}

START_TEST(a_lock_outlives_the_eviction_of_its_run)
{
    /* A NAS source, so that the evicted run comes back on the next touch. */
    const char *nas = test_env("NLM_TEST_NAS");
    char cache[300], cmd[1024];
    snprintf(cache, sizeof cache, "%s/nlm-evict-cache-XXXXXX", test_env("NFS_TEST_TMP"));
    ck_assert_ptr_nonnull(mkdtemp(cache));
    struct test_server s = { 0 };
    const char *const extra[] = { "--source", nas, "-v", NULL };
    ck_assert_int_eq(server_start(&s, cache, CONF, extra), 0);
    struct caller a = caller(&s, "alpha");
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 10, false, false), NLM4_GRANTED);
    ck_assert(cached_soon(cache, "demo"));
    snprintf(cmd, sizeof cmd, "%s cache evict demo --cache %s --timeout 30",
             test_env("TARNFS"), cache);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert(!cached(cache, "demo"));
    /* The lock is keyed by file id, which the run's next fetch keeps. */
    struct caller b = caller(&s, "beta");          /* fetches demo again */
    ck_assert(cached_soon(cache, "demo"));
    ck_assert_int_eq(b.fhlen, a.fhlen);
    ck_assert(!memcmp(b.fh, a.fh, (size_t)a.fhlen));
    nlm4_holder h;
    ck_assert_int_eq(nlm_test(&b, 1, true, 5, 1, &h), NLM4_DENIED);
    ck_assert_int_eq(h.svid, 1);
    ck_assert_int_eq(nlm_lock(&b, 1, true, 5, 1, false, false), NLM4_DENIED);
    ck_assert_int_eq(nlm_unlock(&a, 1, 0, 10), NLM4_GRANTED);
    ck_assert_int_eq(nlm_lock(&b, 1, true, 5, 1, false, false), NLM4_GRANTED);
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(share_reservations_deny_by_access_and_mode_between_caller_names)
{
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha");
    const int R = 1, W = 2;
    ck_assert_int_eq(wire_share(s.nfs_port, false, "alpha", a.fh, (unsigned)a.fhlen, R, W),
                     NLM4_GRANTED);
    ck_assert_int_eq(wire_share(s.nfs_port, false, "beta", a.fh, (unsigned)a.fhlen, W, 0),
                     NLM4_DENIED);                      /* alpha denies writers */
    ck_assert_int_eq(wire_share(s.nfs_port, false, "beta", a.fh, (unsigned)a.fhlen, R, 0),
                     NLM4_GRANTED);
    ck_assert_int_eq(wire_share(s.nfs_port, true, "alpha", a.fh, (unsigned)a.fhlen, 0, 0),
                     NLM4_GRANTED);
    ck_assert_int_eq(wire_share(s.nfs_port, false, "gamma", a.fh, (unsigned)a.fhlen, W, 0),
                     NLM4_GRANTED);                     /* alpha's is gone */
    a.fh[a.fhlen - 1] ^= 1;
    ck_assert_int_eq(wire_share(s.nfs_port, false, "alpha", a.fh, (unsigned)a.fhlen, R, 0),
                     NLM4_STALE_FH);
    drop(&a);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(after_a_restart_reclaims_are_accepted_and_new_locks_wait_for_the_grace_period)
{
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha");
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 10, false, false), NLM4_GRANTED);
    drop(&a);
    ck_assert_int_eq(server_stop(&s), 0);
    /* Restart on the same ports with a 90 s grace period, passed on the
     * server's test clock: the lock is gone from memory, and only its
     * owner's reclaim may take it back. */
    setenv("TARNFS_TEST_CLOCK", "1", 1);
    ck_assert_int_eq(server_start(&s, test_env("NFS_TEST_CACHE"),
                                  "export / *(ro)\nnlm_grace = 90s\n", NULL), 0);
    unsetenv("TARNFS_TEST_CLOCK");
    a = caller(&s, "alpha");
    struct caller b = caller(&s, "beta");
    ck_assert_int_eq(nlm_lock(&b, 1, true, 100, 10, false, false), NLM4_DENIED_GRACE_PERIOD);
    ck_assert_int_eq(nlm_test(&b, 1, true, 0, 10, NULL), NLM4_DENIED_GRACE_PERIOD);
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 10, false, true), NLM4_GRANTED);
    advance_clock(test_env("NFS_TEST_CACHE"), "80s");
    ck_assert_int_eq(nlm_lock(&b, 1, true, 100, 10, false, false), NLM4_DENIED_GRACE_PERIOD);
    advance_clock(test_env("NFS_TEST_CACHE"), "10s");
    ck_assert_int_eq(nlm_lock(&b, 1, true, 0, 10, false, false), NLM4_DENIED);
    ck_assert_int_eq(nlm_lock(&b, 1, true, 100, 10, false, false), NLM4_GRANTED);
    /* A reclaim after the grace period is too late. */
    ck_assert_int_eq(nlm_lock(&a, 2, true, 200, 10, false, true), NLM4_DENIED_GRACE_PERIOD);
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(bad_locks_get_clean_errors)
{
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha");
    /* A forged handle: one byte of the MAC changed. */
    struct caller forged = a;
    forged.fh[forged.fhlen - 1] ^= 1;
    ck_assert_int_eq(nlm_lock(&forged, 1, true, 0, 10, false, false), NLM4_STALE_FH);
    forged.fhlen = 3;
    ck_assert_int_eq(nlm_lock(&forged, 1, true, 0, 10, false, false), NLM4_STALE_FH);
    /* Ranges past 2^64; a zero length means "to the end" and is a lock. */
    ck_assert_int_eq(nlm_lock(&a, 1, true, UINT64_MAX - 5, 10, false, false), NLM4_FBIG);
    ck_assert_int_eq(nlm_lock(&a, 1, true, 1000, 0, false, false), NLM4_GRANTED);
    /* An empty caller name. */
    struct caller anon = a;
    anon.name = "";
    ck_assert_int_eq(nlm_lock(&anon, 1, true, 0, 10, false, false), NLM4_FAILED);
    drop(&a);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

START_TEST(a_host_outside_the_export_acl_gets_no_lock)
{
    /* Handles come from a server that admits everyone; the restarted one
     * admits only another host (handles survive restarts). */
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha");
    drop(&a);
    ck_assert_int_eq(server_stop(&s), 0);
    ck_assert_int_eq(server_start(&s, test_env("NFS_TEST_CACHE"),
                                  "export / 192.0.2.1(ro)\nnlm_grace = 0\n", NULL), 0);
    a.rpc = raw_connect(s.nfs_port, NLM_PROGRAM, NLM_V4);
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 10, false, false), NLM4_FAILED);
    ck_assert_int_eq(nlm_test(&a, 1, true, 0, 10, NULL), NLM4_FAILED);
    drop(&a);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

/* Does statd's monitor directory hold a record?  (statd names it after
 * the host's canonical name: "localhost" for 127.0.0.1.) */
static bool monitoring(const char *sm)
{
    DIR *d = opendir(sm);
    ck_assert_ptr_nonnull(d);
    bool any = false;
    struct dirent *e;
    while (!any && (e = readdir(d)))
        any = e->d_name[0] != '.';
    closedir(d);
    return any;
}

/* Wait up to ms for monitoring(sm) to be want. */
static bool monitoring_within(const char *sm, bool want, int ms)
{
    for (int i = 0; i < ms / 100; i++) {
        if (monitoring(sm) == want)
            return true;
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return monitoring(sm) == want;
}

/* With the real rpc.statd (its state directory in NLM_TEST_STATD_DIR),
 * started by tests/suites/50-nfs.sh in the namespace's rpcbind. */
START_TEST(statd_monitors_a_lock_holder_and_its_reboot_releases_its_locks)
{
    const char *dir = test_env("NLM_TEST_STATD_DIR");
    char mon[512];
    snprintf(mon, sizeof mon, "%s/sm", dir);
    ck_assert(!monitoring(mon));
    struct test_server s = { .rpcbind = 1 };
    static const char *const verbose[] = { "-v", NULL };
    ck_assert_int_eq(server_start(&s, test_env("NFS_TEST_CACHE"), CONF, verbose), 0);
    struct caller a = caller(&s, "alpha"), b = caller(&s, "beta");
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 10, false, false), NLM4_GRANTED);
    ck_assert_msg(monitoring_within(mon, true, 10000), "statd was not asked to monitor 127.0.0.1");
    ck_assert_int_eq(nlm_lock(&b, 1, true, 0, 10, false, false), NLM4_DENIED);
    /* 127.0.0.1 "reboots": statd hears it and calls tarnfsd back. */
    ck_assert_int_eq(wire_sm_notify("127.0.0.1", 3), 0);
    int st = NLM4_DENIED;
    for (int i = 0; i < 100 && st != NLM4_GRANTED; i++) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        st = nlm_lock(&b, 1, true, 0, 10, false, false);
    }
    ck_assert_int_eq(st, NLM4_GRANTED);
    /* Once nothing from 127.0.0.1 holds a lock, statd stops monitoring it. */
    ck_assert_int_eq(nlm_unlock(&b, 1, 0, 0), NLM4_GRANTED);
    ck_assert_msg(monitoring_within(mon, false, 10000), "statd still monitors 127.0.0.1");
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

static void count_status(struct rpc_context *rpc, int status, void *data, void *priv)
{
    int *counts = priv;
    (void)rpc;
    if (status == RPC_STATUS_SUCCESS && data) {
        int st = ((NLM4_LOCKres *)data)->status;
        if (st >= 0 && st < 10)
            counts[st]++;
    }
    counts[10]++;
}

START_TEST(a_flood_of_blocked_locks_stops_at_the_per_host_limit)
{
    struct test_server s = start(CONF);
    struct caller a = caller(&s, "alpha"), b = caller(&s, "beta");
    ck_assert_int_eq(nlm_lock(&a, 1, true, 0, 0, false, false), NLM4_GRANTED);
    enum { N = 1000 };
    int counts[11] = { 0 };
    for (int i = 0; i < N; i++) {
        NLM4_LOCKargs la;
        memset(&la, 0, sizeof la);
        la.block = true;
        la.exclusive = true;
        fill_lock(&b, &la.lock, 1000 + i, 0, 0);
        ck_assert_int_eq(rpc_nlm4_lock_async(b.rpc, count_status, &la, counts), 0);
    }
    for (int i = 0; i < 1200 && counts[10] < N; i++) {
        struct pollfd p = { .fd = rpc_get_fd(b.rpc), .events = rpc_which_events(b.rpc) };
        int r = poll(&p, 1, 100);
        ck_assert_int_eq(rpc_service(b.rpc, r > 0 ? p.revents : 0), 0);
    }
    ck_assert_int_eq(counts[10], N);
    ck_assert_int_eq(counts[NLM4_BLOCKED], 256);
    ck_assert_int_eq(counts[NLM4_DENIED_NOLOCKS], N - 256);
    /* The server still answers everyone; FREE_ALL drops the queue. */
    ck_assert_int_eq(wire_free_all(s.nfs_port, "beta"), 0);
    ck_assert_int_eq(nlm_lock(&b, 5, true, 0, 0, true, false), NLM4_BLOCKED);
    drop(&a);
    drop(&b);
    ck_assert_int_eq(server_stop(&s), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nlm");
    TCase *t = tcase_create("nlm");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, locks_conflict_across_caller_names_and_shared_locks_coexist);
    tcase_add_test(t, unlocking_the_middle_of_a_range_leaves_both_ends_locked);
    tcase_add_test(t, a_blocked_lock_is_granted_by_callback_when_the_holder_unlocks);
    tcase_add_test(t, cancel_withdraws_a_blocked_lock_so_no_callback_comes);
    tcase_add_test(t, free_all_releases_every_lock_of_one_caller_name);
    tcase_add_test(t, lock_msg_is_answered_with_lock_res_to_the_callers_lock_manager);
    tcase_add_test(t, share_reservations_deny_by_access_and_mode_between_caller_names);
    tcase_add_test(t, a_lock_outlives_the_eviction_of_its_run);
    tcase_add_test(t, after_a_restart_reclaims_are_accepted_and_new_locks_wait_for_the_grace_period);
    tcase_add_test(t, bad_locks_get_clean_errors);
    tcase_add_test(t, a_host_outside_the_export_acl_gets_no_lock);
    tcase_add_test(t, a_flood_of_blocked_locks_stops_at_the_per_host_limit);
    suite_add_tcase(s, t);
    /* Needs rpc.statd: the suite runs it alone (CK_RUN_CASE=statd). */
    TCase *st = tcase_create("statd");
    tcase_set_timeout(st, 120);
    tcase_add_test(st, statd_monitors_a_lock_holder_and_its_reboot_releases_its_locks);
    suite_add_tcase(s, st);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
