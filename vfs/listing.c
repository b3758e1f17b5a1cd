/* listing.c: the namespace directories (the root and nested prefixes):
 * what runs and sub-directories each holds, from the backend (source mode)
 * or from the cache's published runs (cache mode), as immutable snapshots
 * cached for list_ttl_ms, with cookies that are hashes of the names. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/tarsuffix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tarball suffixes: util/tarsuffix.h (served ones, in order of preference
 * when one name has several); a run listed from the cache alone ranks
 * after all of them. */
#define NSUFFIXES tar_nsuffixes

const char *vfs_split_name(const char *name, char *prefix, size_t cap)
{
    const char *slash = strrchr(name, '/');
    if (!slash) {
        if (cap)
            prefix[0] = '\0';
        return name;
    }
    size_t n = (size_t)(slash - name) + 1;
    if (n >= cap)
        n = cap - 1;
    memcpy(prefix, name, n);
    prefix[n] = '\0';
    return slash + 1;
}

/* Entries being collected, before they become a listing. */
struct builder {
    vfs *v;
    const char *prefix;
    size_t plen;
    struct vfs_entry *ents;
    int *rank;                /* suffix preference of each run entry */
    size_t n, cap;
    int err;
};

static bool valid_component(const char *c, size_t n)
{
    if (n == 0 || n > KV_NAME_MAX || memchr(c, '/', n) || memchr(c, '\0', n))
        return false;
    if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
        return false;
    return true;
}

static int builder_add(struct builder *b, const char *comp, size_t clen,
                       bool is_dir, const char *key, const char *version,
                       struct timespec mtime, uint64_t size, int rank)
{
    if (!valid_component(comp, clen))
        return 0;
    if (b->plen + clen > KV_RUNNAME_MAX)
        return 0;
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        struct vfs_entry *ne = realloc(b->ents, ncap * sizeof *ne);
        if (!ne)
            return ENOMEM;
        b->ents = ne;
        int *nr = realloc(b->rank, ncap * sizeof *nr);
        if (!nr)
            return ENOMEM;
        b->rank = nr;
        b->cap = ncap;
    }
    struct vfs_entry *e = &b->ents[b->n];
    memset(e, 0, sizeof *e);
    e->name = strndup(comp, clen);
    e->key = key ? strdup(key) : NULL;
    e->version = strdup(version ? version : "");
    if (!e->name || (key && !e->key) || !e->version) {
        free(e->name);
        free(e->key);
        free(e->version);
        return ENOMEM;
    }
    e->is_dir = is_dir;
    e->mtime = mtime;
    e->size = size;
    uint64_t c = vfs_hash(comp, clen) >> 1;     /* 63 bits, as fileids */
    /* Cookies 0..2 mean "start", "." and ".." to nfsd: never hand them out. */
    e->cookie = c < 3 ? c + 3 : c;
    b->rank[b->n] = rank;
    b->n++;
    return 0;
}

static int source_cb(void *arg, const struct fetch_objinfo *oi)
{
    struct builder *b = arg;
    size_t klen = strlen(oi->key);
    if (klen <= b->plen || strncmp(oi->key, b->prefix, b->plen) != 0)
        return 0;
    const char *rest = oi->key + b->plen;
    size_t rlen = klen - b->plen;
    int err = 0;
    if (oi->is_prefix) {
        if (rest[rlen - 1] == '/')
            rlen--;
        err = builder_add(b, rest, rlen, true, NULL, "", oi->mtime, 0, 0);
    } else {
        size_t stem;
        int rank = tar_suffix_match(rest, rlen, true, &stem);
        if (rank >= 0)
            err = builder_add(b, rest, stem, false, oi->key, oi->version,
                              oi->mtime, oi->size, rank);
    }
    if (err) {
        b->err = err;
        return 1;
    }
    return 0;
}

static int cache_cb(void *arg, const struct kv_runinfo *ri)
{
    struct builder *b = arg;
    size_t nlen = strlen(ri->name);
    if (nlen <= b->plen || strncmp(ri->name, b->prefix, b->plen) != 0)
        return 0;
    const char *rest = ri->name + b->plen;
    const char *slash = strchr(rest, '/');
    int err;
    if (slash)
        err = builder_add(b, rest, (size_t)(slash - rest), true, NULL, "",
                          ri->created, 0, 0);
    else
        err = builder_add(b, rest, strlen(rest), false, NULL,
                          ri->source_version, ri->created, ri->bytes, 0);
    if (err) {
        b->err = err;
        return 1;
    }
    return 0;
}

/* An entry with the preference rank of its suffix, while deduplicating. */
struct ranked { struct vfs_entry e; int rank; };

static int ranked_by_name(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    int c = strcmp(a->e.name, b->e.name);
    if (c)
        return c;
    /* A run hides a namespace directory of the same name; among runs the
     * preferred suffix wins. */
    if (a->e.is_dir != b->e.is_dir)
        return a->e.is_dir ? 1 : -1;
    return a->rank - b->rank;
}

static int by_cookie(const void *pa, const void *pb)
{
    const struct vfs_entry *a = pa, *b = pb;
    if (a->cookie != b->cookie)
        return a->cookie < b->cookie ? -1 : 1;
    return strcmp(a->name, b->name);
}

struct name_idx { const char *name; size_t idx; };

static int by_name_idx(const void *pa, const void *pb)
{
    const struct name_idx *a = pa, *b = pb;
    return strcmp(a->name, b->name);
}

static void entry_free(struct vfs_entry *e)
{
    free(e->name);
    free(e->key);
    free(e->version);
}

static void listing_free(struct vfs_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        entry_free(&l->ents[i]);
    free(l->ents);
    free(l->by_name);
    free(l);
}

/* Turn collected entries into a listing: drop duplicate names, sort by
 * cookie, index by name, hash the content. */
static int builder_finish(struct builder *b, struct vfs_listing **out)
{
    struct ranked *rk = malloc((b->n ? b->n : 1) * sizeof *rk);
    struct vfs_listing *l = calloc(1, sizeof *l);
    if (!rk || !l) {
        free(rk);
        free(l);
        return ENOMEM;
    }
    for (size_t i = 0; i < b->n; i++) {
        rk[i].e = b->ents[i];
        rk[i].rank = b->rank[i];
    }
    qsort(rk, b->n, sizeof *rk, ranked_by_name);
    size_t m = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (m > 0 && strcmp(rk[m - 1].e.name, rk[i].e.name) == 0) {
            if (!rk[i].e.is_dir && !rk[m - 1].e.is_dir)
                log_warn("vfs: both %s and %s exist; serving %s",
                         rk[m - 1].e.key ? rk[m - 1].e.key : "?",
                         rk[i].e.key ? rk[i].e.key : "?",
                         rk[m - 1].e.key ? rk[m - 1].e.key : "?");
            entry_free(&rk[i].e);
            continue;
        }
        rk[m++] = rk[i];
    }
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < m; i++) {
        const struct vfs_entry *e = &rk[i].e;
        h = h * 31 + vfs_hash_str(e->name);
        h = h * 31 + vfs_hash_str(e->version) + (e->is_dir ? 7 : 0);
        b->ents[i] = rk[i].e;
    }
    free(rk);
    b->n = m;
    l->content_hash = h;
    l->n = m;
    l->ents = b->ents;
    b->ents = NULL;
    if (l->n)                   /* qsort(NULL, 0) is undefined */
        qsort(l->ents, l->n, sizeof *l->ents, by_cookie);
    l->by_name = malloc((l->n ? l->n : 1) * sizeof *l->by_name);
    if (!l->by_name) {
        listing_free(l);
        return ENOMEM;
    }
    struct name_idx *ni = malloc((l->n ? l->n : 1) * sizeof *ni);
    if (!ni) {
        listing_free(l);
        return ENOMEM;
    }
    for (size_t i = 0; i < l->n; i++) {
        ni[i].name = l->ents[i].name;
        ni[i].idx = i;
    }
    qsort(ni, l->n, sizeof *ni, by_name_idx);
    for (size_t i = 0; i < l->n; i++)
        l->by_name[i] = ni[i].idx;
    free(ni);
    clock_gettime(CLOCK_REALTIME, &l->changed);
    *out = l;
    return 0;
}

/* Runs created here and not written back yet are listed too (after any
 * object of the same name, which takes precedence). */
static int add_new_runs(vfs *v, struct builder *b)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int err = 0;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets && !err; i++)
        for (struct vfs_run *r = v->buckets[i]; r && !err; r = r->next) {
            if (!r->is_new || strncmp(r->name, b->prefix, b->plen) != 0 ||
                strchr(r->name + b->plen, '/'))
                continue;
            err = builder_add(b, r->name + b->plen, strlen(r->name + b->plen),
                              false, NULL, "", now, 0, (int)NSUFFIXES);
        }
    pthread_mutex_unlock(&v->lock);
    return err;
}

/* List prefix from the backend or the cache (no lock held). */
static int listing_build(vfs *v, const char *prefix, struct vfs_listing **out)
{
    struct builder b = { .v = v, .prefix = prefix, .plen = strlen(prefix) };
    int err;
    if (v->backend)
        err = fetch_list(v->backend, prefix, "/", source_cb, &b);
    else
        err = kv_cache_list(v->cache, cache_cb, &b);
    if (!err)
        err = b.err;
    if (!err && v->backend)
        err = add_new_runs(v, &b);
    if (!err)
        err = builder_finish(&b, out);
    for (size_t i = 0; i < b.n && b.ents; i++)
        entry_free(&b.ents[i]);
    free(b.ents);
    free(b.rank);
    return err;
}

static struct vfs_slot *slot_get_locked(vfs *v, const char *prefix)
{
    for (struct vfs_slot *s = v->slots; s; s = s->next)
        if (strcmp(s->prefix, prefix) == 0)
            return s;
    struct vfs_slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->prefix = strdup(prefix);
    if (!s->prefix) {
        free(s);
        return NULL;
    }
    pthread_cond_init(&s->cv, NULL);
    s->next = v->slots;
    v->slots = s;
    return s;
}

/* After a source listing: runs whose cached version differs are marked for
 * re-fetch; the others count as freshly checked (lock held). */
static void note_versions_locked(vfs *v, const char *prefix,
                                 const struct vfs_listing *l)
{
    if (!v->backend)
        return;
    int64_t now = tclock_mono_ms();
    char name[KV_RUNNAME_MAX + 1];
    for (size_t i = 0; i < l->n; i++) {
        const struct vfs_entry *e = &l->ents[i];
        if (e->is_dir)
            continue;
        snprintf(name, sizeof name, "%s%s", prefix, e->name);
        struct vfs_run *r = vfs_run_lookup_locked(v, name, false);
        if (!r || !r->cached)
            continue;
        if (r->version[0] && strcmp(r->version, e->version) != 0 &&
            !r->version_stale && !r->dirty) {
            log_info("vfs: run %s changed in the backend (%s -> %s); it "
                     "will be fetched again on next access", name,
                     r->version, e->version);
            r->version_stale = true;
        }
        r->checked_ms = now;
    }
}

/* Install the result of a refresh of slot s (lock held).  Returns the
 * parked callers to call back once unlocked. */
static struct vfs_waiter *refresh_done_locked(vfs *v, struct vfs_slot *s,
                                              int err, struct vfs_listing *nl,
                                              int64_t started)
{
    s->refreshing = false;
    s->gen++;
    pthread_cond_broadcast(&s->cv);
    struct vfs_waiter *w = s->waiters;
    s->waiters = NULL;
    if (err) {
        s->last_err = err;
        if (s->cur) {
            /* Keep serving the old listing; try again in a second. */
            log_warn("vfs: cannot refresh listing of '%s' (%s); serving the "
                     "previous one", s->prefix, strerror(err));
            s->fetched_ms = started - v->list_ttl_ms + 1000;
            s->expired = false;
        } else {
            log_error("vfs: cannot list '%s': %s", s->prefix, strerror(err));
        }
        return w;
    }
    if (s->cur && s->cur->content_hash == nl->content_hash)
        nl->changed = s->cur->changed;
    note_versions_locked(v, s->prefix, nl);
    nl->refs = 1;
    nl->built_ms = started;
    if (s->cur && --s->cur->refs == 0)
        listing_free(s->cur);
    s->cur = nl;
    s->fetched_ms = started;
    s->expired = false;
    s->last_err = 0;
    return w;
}

struct refresh_job { vfs *v; struct vfs_slot *s; };

/* Background refresh: requests keep using the previous listing meanwhile,
 * so a slow backend listing (100,000 keys on S3) never stalls them. */
static void *refresh_main(void *arg)
{
    struct refresh_job *j = arg;
    vfs *v = j->v;
    struct vfs_slot *s = j->s;
    free(j);
    int64_t started = tclock_mono_ms();
    struct vfs_listing *nl = NULL;
    int err = listing_build(v, s->prefix, &nl);
    pthread_mutex_lock(&v->lock);
    struct vfs_waiter *w = refresh_done_locked(v, s, err, nl, started);
    v->bg_jobs--;
    pthread_cond_broadcast(&v->bg_idle);
    pthread_mutex_unlock(&v->lock);
    vfs_park_wake(w, err);
    return NULL;
}

/* Start a background refresh of s (lock held, s->refreshing set by the
 * caller).  Returns false if no thread could be started. */
static bool refresh_async_locked(vfs *v, struct vfs_slot *s)
{
    if (v->stopping)
        return false;
    struct refresh_job *j = malloc(sizeof *j);
    if (!j)
        return false;
    j->v = v;
    j->s = s;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int err = pthread_create(&t, &attr, refresh_main, j);
    pthread_attr_destroy(&attr);
    if (err) {
        free(j);
        return false;
    }
    v->bg_jobs++;
    return true;
}

static int listing_get(vfs *v, const char *prefix, bool want_fresh,
                       struct vfs_listing **out)
{
    pthread_mutex_lock(&v->lock);
    struct vfs_slot *s = slot_get_locked(v, prefix);
    if (!s) {
        pthread_mutex_unlock(&v->lock);
        return ENOMEM;
    }
    for (;;) {
        int64_t now = tclock_mono_ms();
        if (s->cur && !s->expired && now - s->fetched_ms < v->list_ttl_ms)
            break;
        if (s->cur && !want_fresh) {
            if (!s->refreshing) {
                s->refreshing = true;
                if (!refresh_async_locked(v, s))
                    s->refreshing = false;
                else
                    break;
            } else {
                break;          /* serve the previous listing meanwhile */
            }
        }
        struct vfs_park *park = v->backend ? vfs_park_slot() : NULL;
        if (s->refreshing && park) {
            int err = vfs_park_locked(v, &s->waiters);
            pthread_mutex_unlock(&v->lock);
            return err;
        }
        if (park && park->wake_err && !park->parked && !s->cur) {
            /* The listing this call was parked on failed: say so once. */
            int err = park->wake_err == ECANCELED ? EAGAIN : EIO;
            park->wake_err = 0;
            pthread_mutex_unlock(&v->lock);
            return err;
        }
        if (park) {
            /* List on another thread; called back when it is done. */
            s->refreshing = true;
            if (refresh_async_locked(v, s)) {
                int err = vfs_park_locked(v, &s->waiters);
                pthread_mutex_unlock(&v->lock);
                return err;
            }
            s->refreshing = false;
        }
        if (s->refreshing) {
            unsigned gen = s->gen;
            while (s->refreshing && s->gen == gen)
                pthread_cond_wait(&s->cv, &v->lock);
            if (!s->cur) {
                int err = s->last_err ? s->last_err : EIO;
                pthread_mutex_unlock(&v->lock);
                return err == ENOENT ? EIO : err;
            }
            break;
        }
        s->refreshing = true;
        pthread_mutex_unlock(&v->lock);
        struct vfs_listing *nl = NULL;
        int err = listing_build(v, prefix, &nl);
        pthread_mutex_lock(&v->lock);
        struct vfs_waiter *w = refresh_done_locked(v, s, err, nl, now);
        if (w) {
            pthread_mutex_unlock(&v->lock);
            vfs_park_wake(w, err);
            pthread_mutex_lock(&v->lock);
        }
        if (!s->cur) {
            pthread_mutex_unlock(&v->lock);
            return err == ENOENT ? EIO : err;
        }
        break;
    }
    s->cur->refs++;
    *out = s->cur;
    pthread_mutex_unlock(&v->lock);
    return 0;
}

int vfs_listing_get(vfs *v, const char *prefix, struct vfs_listing **out)
{
    return listing_get(v, prefix, false, out);
}

int vfs_listing_peek(vfs *v, const char *prefix, struct vfs_listing **out)
{
    int err = ENOENT;
    pthread_mutex_lock(&v->lock);
    for (struct vfs_slot *s = v->slots; s; s = s->next) {
        if (strcmp(s->prefix, prefix) == 0) {
            if (s->cur) {
                s->cur->refs++;
                *out = s->cur;
                err = 0;
            }
            break;
        }
    }
    pthread_mutex_unlock(&v->lock);
    return err;
}

int vfs_listing_lookup(vfs *v, const char *prefix, const char *name,
                       struct vfs_listing **out, const struct vfs_entry **e)
{
    int err = listing_get(v, prefix, false, out);
    if (err)
        return err;
    *e = vfs_listing_find(*out, name);
    if (*e || tclock_mono_ms() - (*out)->built_ms < v->list_ttl_ms)
        return 0;
    /* A miss in an old listing: the name may be new.  Ask again. */
    vfs_listing_put(v, *out);
    *out = NULL;
    if ((err = listing_get(v, prefix, true, out)) != 0)
        return err;
    *e = vfs_listing_find(*out, name);
    return 0;
}

void vfs_listing_put(vfs *v, struct vfs_listing *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&v->lock);
    bool last = --l->refs == 0;
    pthread_mutex_unlock(&v->lock);
    if (last)
        listing_free(l);
}

const struct vfs_entry *vfs_listing_find(const struct vfs_listing *l,
                                         const char *name)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct vfs_entry *e = &l->ents[l->by_name[mid]];
        int c = strcmp(e->name, name);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t vfs_listing_after(const struct vfs_listing *l, uint64_t cookie)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->ents[mid].cookie <= cookie)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void vfs_listings_expire(vfs *v)
{
    pthread_mutex_lock(&v->lock);
    for (struct vfs_slot *s = v->slots; s; s = s->next)
        s->expired = true;
    pthread_mutex_unlock(&v->lock);
}

void vfs_listing_refresh_now(vfs *v, const char *prefix)
{
    pthread_mutex_lock(&v->lock);
    struct vfs_slot *s = slot_get_locked(v, prefix);
    if (s)
        s->expired = true;
    pthread_mutex_unlock(&v->lock);
    struct vfs_listing *l = NULL;
    if (listing_get(v, prefix, true, &l) == 0)
        vfs_listing_put(v, l);
}

void vfs_listings_free(vfs *v)
{
    struct vfs_slot *s = v->slots;
    while (s) {
        struct vfs_slot *next = s->next;
        if (s->cur && --s->cur->refs == 0)
            listing_free(s->cur);
        pthread_cond_destroy(&s->cv);
        free(s->prefix);
        free(s);
        s = next;
    }
    v->slots = NULL;
}
