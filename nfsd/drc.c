/* drc.c: keeps recent replies of non-idempotent NFS calls so retransmissions get the first reply. */
#include "nfsd/drc.h"
#include "util/clock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct drc_entry {
    struct drc_entry *hnext;                /* bucket chain */
    struct drc_entry *newer, *older;        /* LRU list */
    struct drc_key k;
    bool busy;                              /* the call is still running */
    int64_t t_ms;                           /* when it was first seen */
    uint8_t *reply;                         /* len bytes, no headroom */
    size_t len;
};

static int64_t now_ms(void)
{
    return tclock_mono_ms();
}

static size_t bucket_of(const struct drc_key *k)
{
    uint64_t h = k->body ^ ((uint64_t)k->xid << 32) ^ k->proc;
    for (int i = 0; i < 16; i++)
        h = (h ^ k->addr[i]) * UINT64_C(0x100000001b3);
    h ^= h >> 29;
    return (size_t)(h % DRC_BUCKETS);
}

static bool key_eq(const struct drc_key *a, const struct drc_key *b)
{
    return a->xid == b->xid && a->prog == b->prog && a->vers == b->vers &&
           a->proc == b->proc && a->body == b->body && !memcmp(a->addr, b->addr, 16);
}

static size_t entry_bytes(const struct drc_entry *e)
{
    return sizeof *e + e->len;
}

void drc_init(struct drc *d)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->lock, NULL);
    d->on = true;
}

static struct drc_entry **find_slot(struct drc *d, const struct drc_key *k)
{
    struct drc_entry **pp = &d->buckets[bucket_of(k)];
    while (*pp && !key_eq(&(*pp)->k, k))
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlink e from its bucket and the LRU list and free it (lock held). */
static void entry_drop(struct drc *d, struct drc_entry *e)
{
    struct drc_entry **pp = &d->buckets[bucket_of(&e->k)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->newer)
        e->newer->older = e->older;
    else
        d->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        d->oldest = e->newer;
    d->n--;
    d->bytes -= entry_bytes(e);
    free(e->reply);
    free(e);
}

/* Drop the oldest finished entries until extra_n more entries of
 * extra_bytes fit (lock held); false when only running calls are left. */
static bool make_room(struct drc *d, size_t extra_n, size_t extra_bytes)
{
    struct drc_entry *e = d->oldest;
    while (d->n + extra_n > DRC_MAX_ENTRIES || d->bytes + extra_bytes > DRC_MAX_BYTES) {
        while (e && e->busy)
            e = e->newer;
        if (!e)
            return false;
        struct drc_entry *next = e->newer;
        entry_drop(d, e);
        e = next;
    }
    return true;
}

void drc_free(struct drc *d)
{
    if (!d->on)
        return;
    while (d->oldest)
        entry_drop(d, d->oldest);
    pthread_mutex_destroy(&d->lock);
    d->on = false;
}

enum drc_state drc_begin(struct drc *d, const struct drc_key *k,
                         struct rpc_reply_out *reply)
{
    if (!d->on)
        return DRC_MISS;
    int64_t now = now_ms();
    pthread_mutex_lock(&d->lock);
    struct drc_entry *e = *find_slot(d, k);
    if (e && !e->busy && now - e->t_ms > DRC_MAX_AGE_MS) {
        entry_drop(d, e);
        e = NULL;
    }
    if (e && e->busy) {
        pthread_mutex_unlock(&d->lock);
        return DRC_BUSY;
    }
    if (e) {
        uint8_t *buf = malloc(RPC_REPLY_HEADROOM + e->len);
        if (buf) {
            memcpy(buf + RPC_REPLY_HEADROOM, e->reply, e->len);
            reply->buf = buf;
            reply->len = e->len;
        }
        pthread_mutex_unlock(&d->lock);
        return buf ? DRC_HIT : DRC_BUSY;    /* no memory: let the client retry */
    }
    e = calloc(1, sizeof *e);
    if (e && make_room(d, 1, sizeof *e)) {
        e->k = *k;
        e->busy = true;
        e->t_ms = now;
        struct drc_entry **slot = find_slot(d, k);
        *slot = e;
        e->older = d->newest;
        if (d->newest)
            d->newest->newer = e;
        else
            d->oldest = e;
        d->newest = e;
        d->n++;
        d->bytes += entry_bytes(e);
        e = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    free(e);
    return DRC_MISS;
}

void drc_done(struct drc *d, const struct drc_key *k, const struct rpc_reply_out *reply)
{
    if (!d->on)
        return;
    uint8_t *copy = NULL;
    size_t len = reply->len;
    bool keep = reply->buf && !reply->tail && len <= DRC_MAX_REPLY &&
                (copy = malloc(len ? len : 1)) != NULL;
    if (keep)
        memcpy(copy, reply->buf + RPC_REPLY_HEADROOM, len);
    pthread_mutex_lock(&d->lock);
    struct drc_entry *e = *find_slot(d, k);
    if (e && e->busy) {
        if (keep) {
            /* Account the reply first, so make_room never drops e. */
            d->bytes -= entry_bytes(e);
            e->reply = copy;
            e->len = len;
            d->bytes += entry_bytes(e);
            e->busy = false;
            copy = NULL;
            if (d->bytes > DRC_MAX_BYTES) {
                e->busy = true;             /* shield it while room is made */
                if (!make_room(d, 0, 0)) {
                    entry_drop(d, e);
                    e = NULL;
                }
                if (e)
                    e->busy = false;
            }
        } else {
            entry_drop(d, e);
        }
    }
    pthread_mutex_unlock(&d->lock);
    free(copy);
}

void drc_abandon(struct drc *d, const struct drc_key *k)
{
    if (!d->on)
        return;
    pthread_mutex_lock(&d->lock);
    struct drc_entry *e = *find_slot(d, k);
    if (e && e->busy)
        entry_drop(d, e);
    pthread_mutex_unlock(&d->lock);
}
