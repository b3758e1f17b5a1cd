/* txn.c: the lock and transaction discipline every change of a run follows (kv_wbegin/kv_wend, kv_rbegin/kv_rend, the data transaction), and the test fault hook. */
#include "kvstore/kv_internal.h"
#include "util/log.h"

#include <errno.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>

/* Test hook (kv_set_fault): set once by a test, read on every commit and
 * every flush of kv_run_sync. */
static struct {
    kv_fault_fn fn;
    void *arg;
} fault_hook;
static pthread_mutex_t fault_lock = PTHREAD_MUTEX_INITIALIZER;

void kv_set_fault(kv_fault_fn fn, void *arg)
{
    pthread_mutex_lock(&fault_lock);
    fault_hook.fn = fn;
    fault_hook.arg = arg;
    pthread_mutex_unlock(&fault_lock);
}

int kv_fault(const char *op)
{
    pthread_mutex_lock(&fault_lock);
    kv_fault_fn fn = fault_hook.fn;
    void *arg = fault_hook.arg;
    pthread_mutex_unlock(&fault_lock);
    return fn ? fn(arg, op) : 0;
}

int kv_wbegin(kv_run *r)
{
    if (r->readonly)
        return EROFS;
    pthread_rwlock_wrlock(&r->lock);
    kv_gen_bump(r);
    if (__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE)) {
        pthread_rwlock_unlock(&r->lock);
        return ESTALE;
    }
    r->saved_next_ino = r->next_ino;
    r->saved_data_bytes = r->data_bytes;
    r->saved_inodes = r->inodes;
    r->ndrops = 0;
    /* A staged run is invisible until published and deleted if anything
     * fails, so it skips the write-ahead logs entirely. */
    if (r->staged)
        return 0;
    /* Another process may have evicted or replaced the run: its files now
     * sit in tmp/, and a transaction would put a write-ahead log under the
     * old path. */
    if (!kv_run_is_current(r)) {
        __atomic_store_n(&r->gone, true, __ATOMIC_RELEASE);
        pthread_rwlock_unlock(&r->lock);
        return ESTALE;
    }
    /* Before the first data change, make "changes may be in flight"
     * durable, so a crash is followed by a garbage sweep. */
    if (!r->unclean_marked) {
        int err = kv_kcflag(r->db, "Sunclean", "1");
        if (err) {
            pthread_rwlock_unlock(&r->lock);
            return err;
        }
        r->unclean_marked = true;
    }
    if (!kcdbbegintran(r->db, 0)) {
        int err = kv_kcfail(r->db);
        pthread_rwlock_unlock(&r->lock);
        return err;
    }
    return 0;
}

int kv_kcend(KCDB *db, int err)
{
    if (kcdbendtran(db, err == 0))
        return err;
    int fail = kv_kcfail(db);
    /* A commit that failed (a full disk) may leave the transaction open:
     * abort it, or the next begin would wait for it forever. */
    if (!err)
        kcdbendtran(db, 0);
    return err ? err : fail;
}

int kv_kcflag(KCDB *db, const char *key, const char *val)
{
    if (!kcdbbegintran(db, 0))
        return kv_kcfail(db);
    size_t klen = strlen(key);
    bool ok = val ? kcdbset(db, key, klen, val, strlen(val))
                  : kcdbremove(db, key, klen) || kcdbecode(db) == KCENOREC;
    return kv_kcend(db, ok ? 0 : kv_kcfail(db));
}

int kv_data_begin(kv_run *r)
{
    if (r->staged)
        return 0;
    return kcdbbegintran(r->data, 0) ? 0 : kv_kcfail(r->data);
}

int kv_data_end(kv_run *r, int err)
{
    if (r->staged)
        return err;
    if (!err)
        err = kv_fault("data-commit");
    err = kv_kcend(r->data, err);
    return err;
}

int kv_wend(kv_run *r, int err)
{
    if (!r->staged) {
        if (!err)
            err = kv_store_counters(r);
        if (!err)
            err = kv_fault("meta-commit");
        err = kv_kcend(r->db, err);
    }
    if (err) {
        r->next_ino = r->saved_next_ino;
        r->data_bytes = r->saved_data_bytes;
        r->inodes = r->saved_inodes;
    }
    /* Committed: free what the change dropped.  Failed: take back blocks
     * a write committed past the old end.  If that fails, the run is
     * swept at its next open (and the blocks stay unreachable until then
     * unless the file grows over them: hence the warning). */
    struct kv_drop *later = NULL;
    size_t nlater = 0;
    if (!r->staged && err == 0)
        kv_data_take_gone(r, &later, &nlater);
    if ((!r->staged || err == 0) && kv_data_run_drops(r, err == 0)) {
        log_warn("kvstore: run %s: deleting data blocks failed", r->name);
        r->keep_unclean = true;
    }
    r->ndrops = 0;
    pthread_rwlock_unlock(&r->lock);
    /* Blocks of deleted inodes are unreachable once the change committed:
     * they go now in bounded steps, so a huge file's delete does not hold
     * the run's lock for long. */
    if (nlater && kv_data_drop_gone(r, later, nlater))
        log_warn("kvstore: run %s: deleting data blocks failed", r->name);
    free(later);
    return err;
}

void kv_rbegin(kv_run *r)
{
    pthread_rwlock_rdlock(&r->lock);
}

void kv_rend(kv_run *r)
{
    pthread_rwlock_unlock(&r->lock);
}
