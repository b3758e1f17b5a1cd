/* listcache.c: the listing reply cache: sharded hash tables of encoded READDIR(PLUS) results, least recently used out, copies handed out without the lock held. */
#include "nfsd/listcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define LC_SHARDS  16
#define LC_BUCKETS 1024         /* per shard */

struct lc_entry {
    struct listcache_key key;
    uint64_t hash;
    int refs;                   /* the table's (while linked), plus readers' */
    size_t len;
    struct lc_entry *hnext;             /* bucket chain */
    struct lc_entry *newer, *older;     /* LRU list */
    uint8_t bytes[];
};

struct lc_shard {
    pthread_mutex_t lock;
    struct lc_entry *bucket[LC_BUCKETS];
    struct lc_entry *newest, *oldest;
    uint64_t bytes, entries, budget;
};

struct listcache {
    uint64_t budget;
    _Atomic uint64_t hits, misses;
    struct lc_shard shard[LC_SHARDS];
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * UINT64_C(1099511628211);
    return h;
}

static uint64_t key_hash(const struct listcache_key *k)
{
    uint64_t h = UINT64_C(1469598103934665603);
    size_t idlen = k->dir.len > VFS_ID_MAX ? VFS_ID_MAX : k->dir.len;
    h = mix(h, &k->dir.len, 1);
    h = mix(h, k->dir.b, idlen);
    h = mix(h, &k->stamp, sizeof k->stamp);
    h = mix(h, &k->cookie, sizeof k->cookie);
    h = mix(h, &k->verf, sizeof k->verf);
    h = mix(h, &k->limit, sizeof k->limit);
    h = mix(h, &k->dir_limit, sizeof k->dir_limit);
    h = mix(h, &k->exports, sizeof k->exports);
    h = mix(h, &k->export_id, 1);
    uint8_t plus = k->plus;
    return mix(h, &plus, 1);
}

static bool key_eq(const struct listcache_key *a, const struct listcache_key *b)
{
    return a->dir.len == b->dir.len && a->dir.len <= VFS_ID_MAX &&
           memcmp(a->dir.b, b->dir.b, a->dir.len) == 0 && a->stamp == b->stamp &&
           a->cookie == b->cookie && a->verf == b->verf && a->limit == b->limit &&
           a->dir_limit == b->dir_limit && a->exports == b->exports &&
           a->export_id == b->export_id &&
           a->plus == b->plus;
}

int listcache_new(uint64_t budget, struct listcache **out)
{
    struct listcache *lc = calloc(1, sizeof *lc);
    if (!lc)
        return ENOMEM;
    lc->budget = budget;
    for (int i = 0; i < LC_SHARDS; i++) {
        pthread_mutex_init(&lc->shard[i].lock, NULL);
        lc->shard[i].budget = budget / LC_SHARDS;
    }
    *out = lc;
    return 0;
}

void listcache_free(struct listcache *lc)
{
    if (!lc)
        return;
    for (int i = 0; i < LC_SHARDS; i++) {
        struct lc_shard *sh = &lc->shard[i];
        for (struct lc_entry *e = sh->newest, *next; e; e = next) {
            next = e->older;
            free(e);
        }
        pthread_mutex_destroy(&sh->lock);
    }
    free(lc);
}

static struct lc_shard *shard_of(struct listcache *lc, uint64_t h)
{
    return &lc->shard[(h >> 32) % LC_SHARDS];
}

static struct lc_entry **slot_of(struct lc_shard *sh, uint64_t h)
{
    return &sh->bucket[h % LC_BUCKETS];
}

static void lru_unlink(struct lc_shard *sh, struct lc_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        sh->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        sh->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_front(struct lc_shard *sh, struct lc_entry *e)
{
    e->older = sh->newest;
    e->newer = NULL;
    if (sh->newest)
        sh->newest->newer = e;
    sh->newest = e;
    if (!sh->oldest)
        sh->oldest = e;
}

/* Take e out of the table (lock held); freed now if no reader holds it. */
static void unlink_entry(struct lc_shard *sh, struct lc_entry *e)
{
    struct lc_entry **pp = slot_of(sh, e->hash);
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(sh, e);
    sh->bytes -= sizeof *e + e->len;
    sh->entries--;
    if (--e->refs == 0)
        free(e);
}

static struct lc_entry *find(struct lc_shard *sh, const struct listcache_key *k,
                             uint64_t h)
{
    for (struct lc_entry *e = *slot_of(sh, h); e; e = e->hnext)
        if (e->hash == h && key_eq(&e->key, k))
            return e;
    return NULL;
}

int listcache_get(struct listcache *lc, const struct listcache_key *k,
                  uint8_t **buf, size_t *len)
{
    uint64_t h = key_hash(k);
    struct lc_shard *sh = shard_of(lc, h);
    pthread_mutex_lock(&sh->lock);
    struct lc_entry *e = find(sh, k, h);
    if (e) {
        e->refs++;
        lru_unlink(sh, e);
        lru_front(sh, e);
    }
    pthread_mutex_unlock(&sh->lock);
    atomic_fetch_add_explicit(e ? &lc->hits : &lc->misses, 1, memory_order_relaxed);
    if (!e)
        return ENOENT;
    /* Entries are immutable once linked: copied without the lock. */
    uint8_t *copy = malloc(e->len ? e->len : 1);
    if (copy)
        memcpy(copy, e->bytes, e->len);
    size_t n = e->len;
    pthread_mutex_lock(&sh->lock);
    if (--e->refs == 0)
        free(e);
    pthread_mutex_unlock(&sh->lock);
    if (!copy)
        return ENOMEM;
    *buf = copy;
    *len = n;
    return 0;
}

int listcache_put(struct listcache *lc, const struct listcache_key *k,
                  const uint8_t *buf, size_t len)
{
    uint64_t h = key_hash(k);
    struct lc_shard *sh = shard_of(lc, h);
    size_t need = sizeof(struct lc_entry) + len;
    if (sh->budget == 0 || need > sh->budget / 8)
        return EFBIG;
    struct lc_entry *e = malloc(need);
    if (!e)
        return ENOMEM;
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->hash = h;
    e->refs = 1;
    e->len = len;
    memcpy(e->bytes, buf, len);
    pthread_mutex_lock(&sh->lock);
    struct lc_entry *old = find(sh, k, h);
    if (old)
        unlink_entry(sh, old);
    while (sh->oldest && sh->bytes + need > sh->budget)
        unlink_entry(sh, sh->oldest);
    struct lc_entry **slot = slot_of(sh, h);
    e->hnext = *slot;
    *slot = e;
    lru_front(sh, e);
    sh->bytes += need;
    sh->entries++;
    pthread_mutex_unlock(&sh->lock);
    return 0;
}

void listcache_usage(struct listcache *lc, struct listcache_usage *u)
{
    uint64_t b = 0, n = 0;
    for (int i = 0; i < LC_SHARDS; i++) {
        struct lc_shard *sh = &lc->shard[i];
        pthread_mutex_lock(&sh->lock);
        b += sh->bytes;
        n += sh->entries;
        pthread_mutex_unlock(&sh->lock);
    }
    u->bytes = b;
    u->entries = n;
    u->hits = atomic_load_explicit(&lc->hits, memory_order_relaxed);
    u->misses = atomic_load_explicit(&lc->misses, memory_order_relaxed);
}
