/* dirsnap.c: kv_readdir_plus: directory listings with attributes, served from in-memory snapshots of whole directories (within the cache's budget) or one cursor pass. */
#include "kvstore/kv_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A snapshot is made only by a listing that starts at the beginning of the
 * directory (cookie 0), in the same cursor pass that answers it, under the
 * run's read lock, and is tagged with the run's change generation
 * (kv_run.gen, bumped by every exclusive lock holder).  It is immutable and
 * reference counted; a snapshot whose tag differs from the run's
 * generation is never used again.  Snapshots of all runs of one cache
 * share one byte budget, least recently used first out.  A directory whose
 * snapshot would exceed a quarter of the budget is remembered as too big
 * (until the run changes or the budget grows), so it is not tried again on
 * every listing. */

struct snap_ent {
    kv_ino ino;
    uint64_t cookie;
    uint32_t name_off;
    uint16_t namelen;
    bool has_attr;
    struct kv_attr a;
};

struct kv_dirsnap {
    const kv_run *run;          /* key: run (its snapshots die with it) */
    kv_ino dir;                 /* and directory */
    uint64_t gen;
    bool too_big;               /* a marker only: no entries */
    bool building;              /* a placeholder while one thread builds */
    size_t limit;               /* the per-directory bound it was built with */
    int refs;                   /* the table's one, plus users' */
    size_t n, bytes;
    struct snap_ent *ents;      /* in cookie order */
    char *names;
    struct kv_dirsnap *hnext;   /* hash chain */
    struct kv_dirsnap *older, *newer;   /* LRU list */
};

#define SNAP_BUCKETS 4096u

static size_t bucket_of(const kv_run *r, kv_ino dir)
{
    uint64_t h = ((uint64_t)(uintptr_t)r ^ dir) * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(h >> 52) & (SNAP_BUCKETS - 1);
}

static void snap_free(struct kv_dirsnap *s)
{
    free(s->ents);
    free(s->names);
    free(s);
}

/* Unlink s from the table and the LRU (snap_lock held); drop the table's
 * reference.  Returns s if nothing references it any more (the caller
 * frees it with snap_free), else NULL. */
static struct kv_dirsnap *unlink_locked(kv_cache *c, struct kv_dirsnap *s)
{
    struct kv_dirsnap **pp = &c->snap_table[bucket_of(s->run, s->dir)];
    while (*pp && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = s->hnext;
    if (s->older)
        s->older->newer = s->newer;
    else
        c->snap_oldest = s->newer;
    if (s->newer)
        s->newer->older = s->older;
    else
        c->snap_newest = s->older;
    s->older = s->newer = NULL;
    c->snap_bytes -= s->bytes;
    return --s->refs == 0 ? s : NULL;
}

static void touch_locked(kv_cache *c, struct kv_dirsnap *s)
{
    if (c->snap_newest == s)
        return;
    if (s->older)
        s->older->newer = s->newer;
    else
        c->snap_oldest = s->newer;
    s->newer->older = s->older;
    s->older = c->snap_newest;
    s->newer = NULL;
    c->snap_newest->newer = s;
    c->snap_newest = s;
}

/* Put s in the table and at the new end of the LRU list (lock held). */
static void link_locked(kv_cache *c, struct kv_dirsnap *s)
{
    size_t b = bucket_of(s->run, s->dir);
    s->hnext = c->snap_table[b];
    c->snap_table[b] = s;
    s->older = c->snap_newest;
    s->newer = NULL;
    if (c->snap_newest)
        c->snap_newest->newer = s;
    else
        c->snap_oldest = s;
    c->snap_newest = s;
    c->snap_bytes += s->bytes;
}

static struct kv_dirsnap *find_locked(kv_cache *c, const kv_run *r, kv_ino dir)
{
    for (struct kv_dirsnap *s = c->snap_table[bucket_of(r, dir)]; s; s = s->hnext)
        if (s->run == r && s->dir == dir)
            return s;
    return NULL;
}

static void put_snap(kv_cache *c, struct kv_dirsnap *s)
{
    pthread_mutex_lock(&c->snap_lock);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&c->snap_lock);
    if (last)
        snap_free(s);
}

/* The valid snapshot of dir (a reference the caller puts), or NULL.  An
 * outdated one is dropped on the way.  With start (a listing from the
 * beginning), when there is none, *claim says the caller must build it:
 * a placeholder is in the table meanwhile, and other listings from the
 * start wait for that build (concurrent `ls -lR` of one tree list the same
 * directories at the same time) instead of each reading the directory
 * again; when the wait gives nothing usable they read it themselves. */
static struct kv_dirsnap *get_snap(kv_run *r, kv_ino dir, bool start,
                                   size_t limit, bool *claim)
{
    kv_cache *c = r->cache;
    struct kv_dirsnap *s;
    bool waited = false;
    *claim = false;
    pthread_mutex_lock(&c->snap_lock);
    for (;;) {
        s = c->snap_table ? find_locked(c, r, dir) : NULL;
        if (s && s->building) {
            s = NULL;
            if (start) {
                pthread_cond_wait(&c->snap_cv, &c->snap_lock);
                waited = true;
                continue;
            }
            break;
        }
        if (s && (s->gen != __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE) ||
                  (s->too_big && s->limit < limit && start))) {
            /* Out of date, or too big for a budget since grown. */
            struct kv_dirsnap *dead = unlink_locked(c, s);
            if (dead)
                snap_free(dead);
            s = NULL;
        }
        if (s) {
            s->refs++;
            touch_locked(c, s);
        } else if (start && !waited && c->snap_table) {
            struct kv_dirsnap *p = calloc(1, sizeof *p);
            if (p) {
                p->run = r;
                p->dir = dir;
                p->building = true;
                p->refs = 1;
                link_locked(c, p);
                *claim = true;
            }
        }
        break;
    }
    pthread_mutex_unlock(&c->snap_lock);
    return s;
}

/* Put s (one reference, the caller's, given to the table) in the table
 * if the budget allows, replacing whatever the table has for its
 * directory (an older snapshot, a placeholder) and dropping the least
 * recently used ones as needed; s NULL (a failed build) only removes a
 * placeholder.  Wakes the listings waiting for a build.  Returns whether s
 * was kept (if not, the caller still owns its reference). */
static bool insert_snap(kv_run *r, kv_ino dir, struct kv_dirsnap *s)
{
    kv_cache *c = r->cache;
    bool kept = false;
    pthread_mutex_lock(&c->snap_lock);
    struct kv_dirsnap *old = c->snap_table ? find_locked(c, r, dir) : NULL, *dead;
    if (old && (s || old->building) && (dead = unlink_locked(c, old)))
        snap_free(dead);
    if (s && c->snap_table && s->bytes <= c->snap_budget) {
        while (c->snap_bytes + s->bytes > c->snap_budget && c->snap_oldest)
            if ((dead = unlink_locked(c, c->snap_oldest)))
                snap_free(dead);
        link_locked(c, s);
        kept = true;
    }
    pthread_cond_broadcast(&c->snap_cv);
    pthread_mutex_unlock(&c->snap_lock);
    return kept;
}

void kv_dirsnap_drop_run(kv_run *r)
{
    kv_cache *c = r->cache;
    if (!c)
        return;
    pthread_mutex_lock(&c->snap_lock);
    struct kv_dirsnap *s = c->snap_oldest, *dead = NULL;
    while (s) {
        struct kv_dirsnap *next = s->newer;
        if (s->run == r && unlink_locked(c, s)) {
            s->hnext = dead;
            dead = s;
        }
        s = next;
    }
    pthread_mutex_unlock(&c->snap_lock);
    while (dead) {
        struct kv_dirsnap *next = dead->hnext;
        snap_free(dead);
        dead = next;
    }
}

void kv_dirsnap_free_all(kv_cache *c)
{
    pthread_mutex_lock(&c->snap_lock);
    struct kv_dirsnap *dead = NULL;
    while (c->snap_oldest) {
        struct kv_dirsnap *s = c->snap_oldest;
        if (unlink_locked(c, s)) {
            s->hnext = dead;
            dead = s;
        }
    }
    free(c->snap_table);
    c->snap_table = NULL;
    pthread_cond_broadcast(&c->snap_cv);
    pthread_mutex_unlock(&c->snap_lock);
    while (dead) {
        struct kv_dirsnap *next = dead->hnext;
        snap_free(dead);
        dead = next;
    }
}

void kv_cache_set_dir_budget(kv_cache *c, uint64_t bytes)
{
    pthread_mutex_lock(&c->snap_lock);
    __atomic_store_n(&c->snap_budget, bytes, __ATOMIC_RELAXED);
    if (bytes && !c->snap_table)
        c->snap_table = calloc(SNAP_BUCKETS, sizeof *c->snap_table);
    pthread_mutex_unlock(&c->snap_lock);
    if (!bytes)
        kv_dirsnap_free_all(c);
}

uint64_t kv_cache_dir_bytes(kv_cache *c)
{
    pthread_mutex_lock(&c->snap_lock);
    uint64_t b = c->snap_bytes;
    pthread_mutex_unlock(&c->snap_lock);
    return b;
}

/* ---- one cursor pass ---------------------------------------------------- */

/* What a snapshot being built holds so far. */
struct builder {
    struct snap_ent *ents;
    size_t n, cap;
    char *names;
    size_t nlen, ncap;
    size_t limit;               /* bytes: past it, give up */
    bool over;
};

static size_t snap_cost(size_t n, size_t names)
{
    return sizeof(struct kv_dirsnap) + n * sizeof(struct snap_ent) + names;
}

static int builder_add(struct builder *b, const struct kv_dirent *de,
                       const struct kv_attr *a)
{
    if (b->over)
        return 0;
    if (snap_cost(b->n + 1, b->nlen + de->namelen + 1) > b->limit) {
        b->over = true;
        return 0;
    }
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        struct snap_ent *ne = realloc(b->ents, ncap * sizeof *ne);
        if (!ne)
            return ENOMEM;
        b->ents = ne;
        b->cap = ncap;
    }
    if (b->nlen + de->namelen + 1 > b->ncap) {
        size_t ncap = b->ncap ? b->ncap * 2 : 1024;
        while (ncap < b->nlen + de->namelen + 1)
            ncap *= 2;
        char *nn = realloc(b->names, ncap);
        if (!nn)
            return ENOMEM;
        b->names = nn;
        b->ncap = ncap;
    }
    struct snap_ent *e = &b->ents[b->n++];
    e->ino = de->ino;
    e->cookie = de->cookie;
    e->name_off = (uint32_t)b->nlen;
    e->namelen = (uint16_t)de->namelen;
    e->has_attr = a != NULL;
    if (a)
        e->a = *a;
    else
        memset(&e->a, 0, sizeof e->a);
    memcpy(b->names + b->nlen, de->name, de->namelen);
    b->names[b->nlen + de->namelen] = '\0';
    b->nlen += de->namelen + 1;
    return 0;
}

typedef int (*plus_cb)(void *arg, const struct kv_dirent *de,
                       const struct kv_attr *a);

/* List dir after cookie with one cursor, each entry's attributes read in
 * the same pass (read lock held by the caller), into cb, or, if b is not
 * NULL, into b (until b->over).  Returns cb's stop value, or an errno. */
static int cursor_pass(kv_run *r, kv_ino dir, uint64_t cookie, plus_cb cb,
                       void *arg, struct builder *b)
{
    KCCUR *cur = kcdbcursor(r->db);
    if (!cur)
        return ENOMEM;
    unsigned char k[17];
    kv_key_ino2(k, 'E', dir, cookie + 1);
    int ret = 0;
    if (kccurjumpkey(cur, (char *)k, 17)) {
        while (!(b && b->over)) {
            size_t ksiz, vsiz;
            const char *vbuf;
            char *key = kccurget(cur, &ksiz, &vbuf, &vsiz, 1);
            if (!key)
                break;
            char name[KV_NAME_MAX + 1];
            struct kv_dirent de;
            int derr = kv_dirent_decode(key, ksiz, vbuf, vsiz, k, name, &de);
            kcfree(key);
            if (derr) {
                ret = derr == EIO ? EIO : 0;
                break;
            }
            struct kv_inode in;
            struct kv_attr a;
            int err = kv_inode_load(r, de.ino, &in);
            if (err && err != ENOENT) {
                ret = err;
                break;
            }
            if (!err) {
                kv_attr_from(de.ino, &in, &a);
                kv_inode_free(&in);
            }
            /* An entry without its inode (only a damaged run has one) is
             * listed without attributes. */
            ret = b ? builder_add(b, &de, err ? NULL : &a)
                    : cb(arg, &de, err ? NULL : &a);
            if (ret)
                break;
        }
    }
    kccurdel(cur);
    return ret;
}

/* Answer from snapshot s: the entries after cookie, to cb. */
static int serve(const struct kv_dirsnap *s, uint64_t cookie, plus_cb cb,
                 void *arg)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ents[mid].cookie <= cookie)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < s->n; i++) {
        const struct snap_ent *e = &s->ents[i];
        struct kv_dirent de = {
            .name = s->names + e->name_off,
            .namelen = e->namelen,
            .ino = e->ino,
            .cookie = e->cookie,
        };
        int ret = cb(arg, &de, e->has_attr ? &e->a : NULL);
        if (ret)
            return ret;
    }
    return 0;
}

static int check_dir(kv_run *r, kv_ino dir)
{
    struct kv_inode in;
    int err = kv_inode_load(r, dir, &in);
    if (err)
        return err;
    bool isdir = S_ISDIR(in.mode);
    kv_inode_free(&in);
    return isdir ? 0 : ENOTDIR;
}

/* Build a snapshot of dir in one pass under the read lock.  *out is NULL
 * when the directory is bigger than limit bytes (a too-big marker then).
 * Errors: ENOENT, ENOTDIR, ENOMEM, EIO. */
static int build(kv_run *r, kv_ino dir, size_t limit, struct kv_dirsnap **out)
{
    struct builder b = { .limit = limit };
    struct kv_dirsnap *s = calloc(1, sizeof *s);
    if (!s)
        return ENOMEM;
    kv_rbegin(r);
    uint64_t gen = __atomic_load_n(&r->gen, __ATOMIC_ACQUIRE);
    int err = check_dir(r, dir);
    if (!err)
        err = cursor_pass(r, dir, 0, NULL, NULL, &b);
    kv_rend(r);
    if (err || b.over) {
        free(b.ents);
        free(b.names);
        if (err) {
            free(s);
            return err;
        }
        b.ents = NULL;
        b.names = NULL;
        b.n = b.nlen = 0;
        s->too_big = true;
    }
    s->run = r;
    s->dir = dir;
    s->gen = gen;
    s->n = b.n;
    s->ents = b.ents;
    s->names = b.names;
    s->limit = limit;
    s->bytes = snap_cost(b.n, b.nlen);
    s->refs = 2;                    /* the table's and the caller's */
    *out = s;
    return 0;
}

int kv_readdir_plus(kv_run *r, kv_ino dir, uint64_t cookie,
                    int (*cb)(void *arg, const struct kv_dirent *de,
                              const struct kv_attr *a),
                    void *arg)
{
    kv_cache *c = r->cache;
    uint64_t budget = c ? __atomic_load_n(&c->snap_budget, __ATOMIC_RELAXED) : 0;
    /* No snapshots of a run being filled (an ingest or a stream: it
     * changes all the time) or of one another process may change. */
    bool snaps = budget && !r->staged && !r->readonly && cookie != UINT64_MAX;
    if (snaps) {
        size_t limit = (size_t)(budget / 4);
        bool claim;
        struct kv_dirsnap *s = get_snap(r, dir, cookie == 0, limit, &claim);
        if (claim) {
            /* The start of a listing: build the whole directory once. */
            int err = build(r, dir, limit, &s);
            if (err) {
                insert_snap(r, dir, NULL);
                return err;
            }
            if (!insert_snap(r, dir, s))
                s->refs--;
        }
        if (s && !s->too_big) {
            int ret = serve(s, cookie, cb, arg);
            put_snap(c, s);
            return ret;
        }
        if (s)
            put_snap(c, s);
    }
    kv_rbegin(r);
    int err = check_dir(r, dir);
    if (!err && cookie != UINT64_MAX)
        err = cursor_pass(r, dir, cookie, cb, arg, NULL);
    kv_rend(r);
    return err;
}
