/* nlm_lock.c: the in-memory NLM lock table: POSIX byte-range locks per file
 * id, the FIFO of blocked requests granted as conflicts go, and share
 * reservations, with per-host accounting and limits. */
#include "nfsd/nlm_lock.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nfsd/fhandle.h"

#define FILE_BUCKETS 4096
#define HOST_BUCKETS 1024

/* One client address: what all its caller names hold together, so the
 * per-client limits hold however many names it invents. */
struct nlm_peer {
    struct nlm_peer *next;
    size_t nlocks, nwaiters, nshares, nnames;
    char addr[NLM_ADDR_MAX];
};

struct nlm_host {
    struct nlm_host *next;
    struct nlm_peer *peer;      /* its address's */
    size_t nlocks, nwaiters, nshares;
    char addr[NLM_ADDR_MAX];
    char name[];
};

/* A granted lock range [start, end], both inclusive. */
struct lk {
    struct lk *next;
    struct nlm_host *host;
    int32_t svid;
    bool excl;
    uint64_t start, end;
    size_t ohlen;
    uint8_t oh[];
};

/* A blocked request, in arrival order. */
struct waiter {
    struct waiter *next;
    struct nlm_host *host;
    int32_t svid;
    bool excl;
    uint64_t start, end;
    struct nlm_callback cb;
    size_t ohlen;
    uint8_t oh[];
};

struct share {
    struct share *next;
    struct nlm_host *host;
    unsigned access, deny;
    size_t ohlen;
    uint8_t oh[];
};

struct nfile {
    struct nfile *next;
    struct vfs_id id;
    struct lk *locks;
    struct waiter *waiters;     /* FIFO: head is oldest */
    struct share *shares;
};

struct nlm_table {
    pthread_mutex_t mu;
    struct nlm_limits lim;
    struct nlm_hooks hooks;
    struct nfile *files[FILE_BUCKETS];
    struct nlm_host *hosts[HOST_BUCKETS];
    size_t nfiles, nlocks, nwaiters, nshares, nhosts;
    struct nlm_peer *peers[HOST_BUCKETS];
};

/* ---- helpers ---- */

static uint64_t hash_bytes(const void *p, size_t n)
{
    static const uint8_t k[16] = { 't', 'a', 'r', 'n', 'f', 's', '-', 'n', 'l', 'm' };
    return fh_siphash24(k, p, n);
}

/* [offset, offset+len) as an inclusive range; false past 2^64. */
static bool to_range(uint64_t offset, uint64_t len, uint64_t *start, uint64_t *end)
{
    *start = offset;
    if (len == 0) {
        *end = UINT64_MAX;
        return true;
    }
    if (len - 1 > UINT64_MAX - offset)
        return false;
    *end = offset + (len - 1);
    return true;
}

static bool overlaps(uint64_t s1, uint64_t e1, uint64_t s2, uint64_t e2)
{
    return s1 <= e2 && s2 <= e1;
}

static bool same_owner(const struct nlm_host *h, int32_t svid, const uint8_t *oh, size_t ohlen,
                       const struct nlm_host *h2, int32_t svid2, const uint8_t *oh2,
                       size_t ohlen2)
{
    return h == h2 && svid == svid2 && ohlen == ohlen2 && (!ohlen || !memcmp(oh, oh2, ohlen));
}

/* ---- hosts ---- */

/* The peer record of addr, made if needed (NULL: out of memory). */
static struct nlm_peer *peer_get(struct nlm_table *t, const char *addr)
{
    struct nlm_peer **b = &t->peers[hash_bytes(addr, strlen(addr)) % HOST_BUCKETS];
    for (struct nlm_peer *p = *b; p; p = p->next)
        if (!strcmp(p->addr, addr))
            return p;
    struct nlm_peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    p->next = *b;
    *b = p;
    return p;
}

/* Forget p when no caller name from it is left. */
static void peer_put(struct nlm_table *t, struct nlm_peer *p)
{
    if (p->nnames)
        return;
    struct nlm_peer **pp = &t->peers[hash_bytes(p->addr, strlen(p->addr)) % HOST_BUCKETS];
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    free(p);
}

/* statd watches an address while some caller name from it holds anything:
 * told at its first name and after its last. */
static void monitor(struct nlm_table *t, struct nlm_host *h, bool first)
{
    if (t->hooks.monitor && h->addr[0] && h->peer->nnames == 1)
        t->hooks.monitor(t->hooks.arg, h->addr, first);
}

/* The host (caller_name, address): a name alone is only what the client
 * says it is, so a call from another address never finds, frees or
 * unlocks another address's locks (as Linux lockd matches both). */
static struct nlm_host *host_find(struct nlm_table *t, const char *name, const char *addr,
                                  bool create)
{
    size_t n = strlen(name);
    if (!addr)
        addr = "";
    struct nlm_host **b = &t->hosts[hash_bytes(name, n) % HOST_BUCKETS];
    for (struct nlm_host *h = *b; h; h = h->next)
        if (!strcmp(h->name, name) && !strcmp(h->addr, addr))
            return h;
    if (!create || t->nhosts >= t->lim.max_hosts)
        return NULL;
    struct nlm_peer *p = peer_get(t, addr);
    if (!p)
        return NULL;
    struct nlm_host *h = NULL;
    if (!addr[0] || p->nnames < t->lim.max_names_per_addr)  /* else one client
                                                               inventing names */
        h = calloc(1, sizeof *h + n + 1);
    if (!h) {
        peer_put(t, p);
        return NULL;
    }
    memcpy(h->name, name, n + 1);
    snprintf(h->addr, sizeof h->addr, "%s", addr);
    h->peer = p;
    p->nnames++;
    h->next = *b;
    *b = h;
    t->nhosts++;
    monitor(t, h, true);
    return h;
}

/* Forget h when it holds nothing any more. */
static void host_release(struct nlm_table *t, struct nlm_host *h)
{
    if (!h || h->nlocks || h->nwaiters || h->nshares)
        return;
    struct nlm_host **pp = &t->hosts[hash_bytes(h->name, strlen(h->name)) % HOST_BUCKETS];
    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    t->nhosts--;
    monitor(t, h, false);
    h->peer->nnames--;
    peer_put(t, h->peer);
    free(h);
}

/* ---- files ---- */

static struct nfile **file_slot(struct nlm_table *t, const struct vfs_id *id)
{
    struct nfile **pp = &t->files[hash_bytes(id->b, id->len) % FILE_BUCKETS];
    while (*pp && ((*pp)->id.len != id->len || memcmp((*pp)->id.b, id->b, id->len)))
        pp = &(*pp)->next;
    return pp;
}

static struct nfile *file_get(struct nlm_table *t, const struct vfs_id *id, bool create)
{
    struct nfile **pp = file_slot(t, id);
    if (*pp || !create)
        return *pp;
    struct nfile *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->id = *id;
    *pp = f;
    t->nfiles++;
    return f;
}

static void file_release(struct nlm_table *t, struct nfile *f)
{
    if (!f || f->locks || f->waiters || f->shares)
        return;
    struct nfile **pp = file_slot(t, &f->id);
    *pp = f->next;
    t->nfiles--;
    free(f);
}

/* ---- locks ---- */

static struct lk *lk_new(struct nlm_host *h, int32_t svid, const uint8_t *oh, size_t ohlen,
                         bool excl, uint64_t start, uint64_t end)
{
    struct lk *l = malloc(sizeof *l + ohlen);
    if (!l)
        return NULL;
    l->next = NULL;
    l->host = h;
    l->svid = svid;
    l->excl = excl;
    l->start = start;
    l->end = end;
    l->ohlen = ohlen;
    if (ohlen)                  /* an empty handle may come as NULL */
        memcpy(l->oh, oh, ohlen);
    return l;
}

static void lk_unlink_free(struct nlm_table *t, struct lk **pp)
{
    struct lk *l = *pp;
    *pp = l->next;
    l->host->nlocks--;
    l->host->peer->nlocks--;
    t->nlocks--;
    free(l);
}

static void lk_link(struct nlm_table *t, struct nfile *f, struct lk *l)
{
    l->next = f->locks;
    f->locks = l;
    l->host->nlocks++;
    l->host->peer->nlocks++;
    t->nlocks++;
}

/* The first lock of another owner that conflicts with the request. */
static struct lk *find_conflict(struct nfile *f, struct nlm_host *h, int32_t svid,
                                const uint8_t *oh, size_t ohlen, bool excl,
                                uint64_t start, uint64_t end)
{
    for (struct lk *l = f ? f->locks : NULL; l; l = l->next) {
        if (!overlaps(l->start, l->end, start, end) || (!excl && !l->excl))
            continue;
        if (h && same_owner(l->host, l->svid, l->oh, l->ohlen, h, svid, oh, ohlen))
            continue;
        return l;
    }
    return NULL;
}

/* Locks the owner's request adds at most: the new range plus the second
 * half of one of its own locks split by it. */
static bool room_for(struct nlm_table *t, struct nlm_host *h, size_t n)
{
    return t->nlocks + n <= t->lim.max_locks &&
           h->peer->nlocks + n <= t->lim.max_locks_per_host;
}

/* Remove the owner's coverage of [start, end] in f, splitting a lock that
 * reaches past both ends.  *spare (NULL or a preallocated lock) is used for
 * the split's second half; it is consumed (set to NULL) when used. */
static void carve(struct nlm_table *t, struct nfile *f, struct nlm_host *h, int32_t svid,
                  const uint8_t *oh, size_t ohlen, uint64_t start, uint64_t end,
                  struct lk **spare)
{
    struct lk **pp = &f->locks;
    while (*pp) {
        struct lk *l = *pp;
        if (!same_owner(l->host, l->svid, l->oh, l->ohlen, h, svid, oh, ohlen) ||
            !overlaps(l->start, l->end, start, end)) {
            pp = &l->next;
            continue;
        }
        if (l->start < start && l->end > end) {
            struct lk *tail = *spare;       /* the caller made sure there is one */
            *spare = NULL;
            tail->excl = l->excl;
            tail->start = end + 1;
            tail->end = l->end;
            l->end = start - 1;
            lk_link(t, f, tail);
            pp = &l->next;
        } else if (l->start < start) {
            l->end = start - 1;
            pp = &l->next;
        } else if (l->end > end) {
            l->start = end + 1;
            pp = &l->next;
        } else {
            lk_unlink_free(t, pp);
        }
    }
}

/* Does one of the owner's locks reach past both ends of [start, end]? */
static bool would_split(struct nfile *f, struct nlm_host *h, int32_t svid, const uint8_t *oh,
                        size_t ohlen, uint64_t start, uint64_t end)
{
    for (struct lk *l = f->locks; l; l = l->next)
        if (same_owner(l->host, l->svid, l->oh, l->ohlen, h, svid, oh, ohlen) &&
            l->start < start && l->end > end)
            return true;
    return false;
}

/* Set the owner's lock on [start, end] (no conflict with others: checked).
 * Merges with the owner's touching locks of the same type.  ENOMEM or
 * ENOLCK (a limit) leave f as it was. */
static int apply_lock(struct nlm_table *t, struct nfile *f, struct nlm_host *h, int32_t svid,
                      const uint8_t *oh, size_t ohlen, bool excl, uint64_t start, uint64_t end)
{
    bool split = would_split(f, h, svid, oh, ohlen, start, end);
    if (!room_for(t, h, split ? 2 : 1))
        return ENOLCK;
    struct lk *n = lk_new(h, svid, oh, ohlen, excl, start, end);
    struct lk *spare = split ? lk_new(h, svid, oh, ohlen, excl, 0, 0) : NULL;
    if (!n || (split && !spare)) {
        free(n);
        free(spare);
        return ENOMEM;
    }
    carve(t, f, h, svid, oh, ohlen, start, end, &spare);
    free(spare);
    /* Merge: the owner's locks of this type that touch n are folded in. */
    struct lk **pp = &f->locks;
    while (*pp) {
        struct lk *l = *pp;
        bool touches = l->excl == excl &&
            same_owner(l->host, l->svid, l->oh, l->ohlen, h, svid, oh, ohlen) &&
            (overlaps(l->start, l->end, n->start, n->end) ||
             (l->end != UINT64_MAX && l->end + 1 == n->start) ||
             (n->end != UINT64_MAX && n->end + 1 == l->start));
        if (!touches) {
            pp = &l->next;
            continue;
        }
        if (l->start < n->start)
            n->start = l->start;
        if (l->end > n->end)
            n->end = l->end;
        lk_unlink_free(t, pp);
    }
    lk_link(t, f, n);
    return 0;
}

static void fill_holder(const struct lk *l, struct nlm_holder *out)
{
    if (!out)
        return;
    out->exclusive = l->excl;
    out->svid = l->svid;
    out->ohlen = l->ohlen;
    memcpy(out->oh, l->oh, l->ohlen);
    out->offset = l->start;
    out->len = l->end == UINT64_MAX ? 0 : l->end - l->start + 1;
}

/* ---- blocked requests ---- */

static void waiter_unlink_free(struct nlm_table *t, struct waiter **pp)
{
    struct waiter *w = *pp;
    *pp = w->next;
    w->host->nwaiters--;
    w->host->peer->nwaiters--;
    t->nwaiters--;
    free(w);
}

/* Grant, oldest first, the queued requests on f that fit now. */
static void wake_waiters(struct nlm_table *t, struct nfile *f)
{
    struct waiter **pp = &f->waiters;
    while (*pp) {
        struct waiter *w = *pp;
        if (find_conflict(f, w->host, w->svid, w->oh, w->ohlen, w->excl, w->start, w->end) ||
            apply_lock(t, f, w->host, w->svid, w->oh, w->ohlen, w->excl, w->start, w->end)) {
            pp = &w->next;          /* still blocked, or no room yet: keep waiting */
            continue;
        }
        if (t->hooks.granted) {
            struct nlm_grant g = {
                .file = &f->id, .host = w->host->name, .svid = w->svid, .oh = w->oh,
                .ohlen = w->ohlen, .exclusive = w->excl, .offset = w->start,
                .len = w->end == UINT64_MAX ? 0 : w->end - w->start + 1,
                .cb = &w->cb,
            };
            t->hooks.granted(t->hooks.arg, &g);
        }
        waiter_unlink_free(t, pp);
    }
}

/* ---- public ---- */

int nlm_table_create(const struct nlm_limits *lim, const struct nlm_hooks *hooks,
                     struct nlm_table **out)
{
    struct nlm_table *t = calloc(1, sizeof *t);
    if (!t)
        return ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    if (lim)
        t->lim = *lim;
    if (!t->lim.max_locks) t->lim.max_locks = 65536;
    if (!t->lim.max_locks_per_host) t->lim.max_locks_per_host = 4096;
    if (!t->lim.max_waiters) t->lim.max_waiters = 4096;
    if (!t->lim.max_waiters_per_host) t->lim.max_waiters_per_host = 256;
    if (!t->lim.max_shares_per_host) t->lim.max_shares_per_host = 1024;
    if (!t->lim.max_hosts) t->lim.max_hosts = 4096;
    if (!t->lim.max_names_per_addr) t->lim.max_names_per_addr = 16;
    if (hooks)
        t->hooks = *hooks;
    *out = t;
    return 0;
}

void nlm_table_destroy(struct nlm_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < FILE_BUCKETS; i++) {
        while (t->files[i]) {
            struct nfile *f = t->files[i];
            t->files[i] = f->next;
            while (f->locks) { struct lk *l = f->locks; f->locks = l->next; free(l); }
            while (f->waiters) { struct waiter *w = f->waiters; f->waiters = w->next; free(w); }
            while (f->shares) { struct share *s = f->shares; f->shares = s->next; free(s); }
            free(f);
        }
    }
    for (size_t i = 0; i < HOST_BUCKETS; i++) {
        while (t->hosts[i]) {
            struct nlm_host *h = t->hosts[i];
            t->hosts[i] = h->next;
            free(h);
        }
        while (t->peers[i]) {
            struct nlm_peer *p = t->peers[i];
            t->peers[i] = p->next;
            free(p);
        }
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

enum nlm_result nlm_test(struct nlm_table *t, const struct vfs_id *file,
                         const struct nlm_owner *o, bool exclusive,
                         uint64_t offset, uint64_t len, struct nlm_holder *h)
{
    uint64_t s, e;
    if (!to_range(offset, len, &s, &e))
        return NLM_RANGE;
    pthread_mutex_lock(&t->mu);
    struct nlm_host *host = host_find(t, o->host, o->addr, false);   /* none: holds nothing */
    struct lk *l = find_conflict(file_get(t, file, false), host, o->svid, o->oh, o->ohlen,
                                 exclusive, s, e);
    if (l)
        fill_holder(l, h);
    pthread_mutex_unlock(&t->mu);
    return l ? NLM_CONFLICT : NLM_OK;
}

enum nlm_result nlm_lock(struct nlm_table *t, const struct vfs_id *file,
                         const struct nlm_owner *o, bool exclusive,
                         uint64_t offset, uint64_t len, bool block,
                         const struct nlm_callback *cb)
{
    uint64_t s, e;
    if (!to_range(offset, len, &s, &e))
        return NLM_RANGE;
    if (o->ohlen > NLM_OH_MAX)
        return NLM_NOLOCKS;
    enum nlm_result r;
    pthread_mutex_lock(&t->mu);
    struct nlm_host *h = host_find(t, o->host, o->addr, true);
    struct nfile *f = h ? file_get(t, file, true) : NULL;
    if (!f) {
        r = NLM_NOLOCKS;
        goto out;
    }
    if (!find_conflict(f, h, o->svid, o->oh, o->ohlen, exclusive, s, e)) {
        r = apply_lock(t, f, h, o->svid, o->oh, o->ohlen, exclusive, s, e) ? NLM_NOLOCKS : NLM_OK;
        goto out;
    }
    if (!block) {
        r = NLM_CONFLICT;
        goto out;
    }
    for (struct waiter *w = f->waiters; w; w = w->next) {
        if (w->excl == exclusive && w->start == s && w->end == e &&
            same_owner(w->host, w->svid, w->oh, w->ohlen, h, o->svid, o->oh, o->ohlen)) {
            r = NLM_QUEUED;         /* the client's retry of a queued request */
            goto out;
        }
    }
    if (t->nwaiters >= t->lim.max_waiters ||
        h->peer->nwaiters >= t->lim.max_waiters_per_host) {
        r = NLM_NOLOCKS;
        goto out;
    }
    struct waiter *w = calloc(1, sizeof *w + o->ohlen);
    if (!w) {
        r = NLM_NOLOCKS;
        goto out;
    }
    w->host = h;
    w->svid = o->svid;
    w->excl = exclusive;
    w->start = s;
    w->end = e;
    if (cb)
        w->cb = *cb;
    w->ohlen = o->ohlen;
    if (o->ohlen)
        memcpy(w->oh, o->oh, o->ohlen);
    struct waiter **pp = &f->waiters;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    h->nwaiters++;
    h->peer->nwaiters++;
    t->nwaiters++;
    r = NLM_QUEUED;
out:
    file_release(t, f);
    host_release(t, h);
    pthread_mutex_unlock(&t->mu);
    return r;
}

enum nlm_result nlm_unlock(struct nlm_table *t, const struct vfs_id *file,
                           const struct nlm_owner *o, uint64_t offset, uint64_t len)
{
    uint64_t s, e;
    if (!to_range(offset, len, &s, &e))
        return NLM_RANGE;
    enum nlm_result r = NLM_OK;
    pthread_mutex_lock(&t->mu);
    struct nlm_host *h = host_find(t, o->host, o->addr, false);
    struct nfile *f = h ? file_get(t, file, false) : NULL;
    if (f) {
        struct lk *spare = NULL;
        if (would_split(f, h, o->svid, o->oh, o->ohlen, s, e)) {
            /* Splitting one range in two: one more lock, allowed past the
             * limits (an unlock must not fail for them). */
            spare = lk_new(h, o->svid, o->oh, o->ohlen, false, 0, 0);
            if (!spare)
                r = NLM_NOLOCKS;
        }
        if (r == NLM_OK) {
            carve(t, f, h, o->svid, o->oh, o->ohlen, s, e, &spare);
            free(spare);
            wake_waiters(t, f);
        }
        file_release(t, f);
    }
    host_release(t, h);
    pthread_mutex_unlock(&t->mu);
    return r;
}

enum nlm_result nlm_cancel(struct nlm_table *t, const struct vfs_id *file,
                           const struct nlm_owner *o, bool exclusive,
                           uint64_t offset, uint64_t len)
{
    uint64_t s, e;
    if (!to_range(offset, len, &s, &e))
        return NLM_RANGE;
    enum nlm_result r = NLM_CONFLICT;
    pthread_mutex_lock(&t->mu);
    struct nlm_host *h = host_find(t, o->host, o->addr, false);
    struct nfile *f = h ? file_get(t, file, false) : NULL;
    for (struct waiter **pp = f ? &f->waiters : NULL; pp && *pp; pp = &(*pp)->next) {
        struct waiter *w = *pp;
        if (w->excl == exclusive && w->start == s && w->end == e &&
            same_owner(w->host, w->svid, w->oh, w->ohlen, h, o->svid, o->oh, o->ohlen)) {
            waiter_unlink_free(t, pp);
            r = NLM_OK;
            break;
        }
    }
    file_release(t, f);
    host_release(t, h);
    pthread_mutex_unlock(&t->mu);
    return r;
}

static bool share_owner(const struct share *s, const struct nlm_host *h, const uint8_t *oh,
                        size_t ohlen)
{
    return s->host == h && s->ohlen == ohlen && (!ohlen || !memcmp(s->oh, oh, ohlen));
}

enum nlm_result nlm_share(struct nlm_table *t, const struct vfs_id *file,
                          const struct nlm_owner *o, unsigned access, unsigned deny)
{
    if (o->ohlen > NLM_OH_MAX)
        return NLM_NOLOCKS;
    access &= 3;
    deny &= 3;
    enum nlm_result r = NLM_OK;
    pthread_mutex_lock(&t->mu);
    struct nlm_host *h = host_find(t, o->host, o->addr, true);
    struct nfile *f = h ? file_get(t, file, true) : NULL;
    struct share *mine = NULL;
    if (!f) {
        r = NLM_NOLOCKS;
        goto out;
    }
    for (struct share *s = f->shares; s; s = s->next) {
        if (share_owner(s, h, o->oh, o->ohlen))
            mine = s;
        else if ((s->deny & access) || (deny & s->access))
            r = NLM_CONFLICT;
    }
    if (r != NLM_OK)
        goto out;
    if (!mine) {
        if (h->peer->nshares >= t->lim.max_shares_per_host ||
            !(mine = calloc(1, sizeof *mine + o->ohlen))) {
            r = NLM_NOLOCKS;
            goto out;
        }
        mine->host = h;
        mine->ohlen = o->ohlen;
        if (o->ohlen)
            memcpy(mine->oh, o->oh, o->ohlen);
        mine->next = f->shares;
        f->shares = mine;
        h->nshares++;
        h->peer->nshares++;
        t->nshares++;
    }
    mine->access = access;
    mine->deny = deny;
out:
    file_release(t, f);
    host_release(t, h);
    pthread_mutex_unlock(&t->mu);
    return r;
}

enum nlm_result nlm_unshare(struct nlm_table *t, const struct vfs_id *file,
                            const struct nlm_owner *o)
{
    pthread_mutex_lock(&t->mu);
    struct nlm_host *h = host_find(t, o->host, o->addr, false);
    struct nfile *f = h ? file_get(t, file, false) : NULL;
    for (struct share **pp = f ? &f->shares : NULL; pp && *pp; pp = &(*pp)->next) {
        if (share_owner(*pp, h, o->oh, o->ohlen)) {
            struct share *s = *pp;
            *pp = s->next;
            h->nshares--;
            h->peer->nshares--;
            t->nshares--;
            free(s);
            break;
        }
    }
    file_release(t, f);
    host_release(t, h);
    pthread_mutex_unlock(&t->mu);
    return NLM_OK;
}

/* Drop all h holds and waits for, waking others; h itself is released. */
static size_t free_host_locked(struct nlm_table *t, struct nlm_host *h)
{
    size_t n = 0;
    for (size_t i = 0; h && i < FILE_BUCKETS; i++) {
        struct nfile *f = t->files[i];
        while (f) {
            struct nfile *next = f->next;
            bool freed_lock = false;
            for (struct lk **pp = &f->locks; *pp;) {
                if ((*pp)->host == h) {
                    lk_unlink_free(t, pp);
                    freed_lock = true;
                    n++;
                } else {
                    pp = &(*pp)->next;
                }
            }
            for (struct waiter **pp = &f->waiters; *pp;) {
                if ((*pp)->host == h) {
                    waiter_unlink_free(t, pp);
                    n++;
                } else {
                    pp = &(*pp)->next;
                }
            }
            for (struct share **pp = &f->shares; *pp;) {
                if ((*pp)->host == h) {
                    struct share *s = *pp;
                    *pp = s->next;
                    h->nshares--;
                    h->peer->nshares--;
                    t->nshares--;
                    free(s);
                    n++;
                } else {
                    pp = &(*pp)->next;
                }
            }
            if (freed_lock)
                wake_waiters(t, f);
            file_release(t, f);
            f = next;
        }
    }
    host_release(t, h);
    return n;
}

size_t nlm_free_host(struct nlm_table *t, const char *host, const char *addr)
{
    pthread_mutex_lock(&t->mu);
    size_t n = free_host_locked(t, host_find(t, host, addr, false));
    pthread_mutex_unlock(&t->mu);
    return n;
}

size_t nlm_free_addr(struct nlm_table *t, const char *addr)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        struct nlm_host *h = NULL;
        for (size_t i = 0; !h && i < HOST_BUCKETS; i++)
            for (struct nlm_host *o = t->hosts[i]; o && !h; o = o->next)
                if (!strcmp(o->addr, addr))
                    h = o;
        if (!h)
            break;
        /* A granted waiter of another name from addr may make a new host
         * entry only by a lock call, never here: the loop ends. */
        n += free_host_locked(t, h);
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

void nlm_table_counts(struct nlm_table *t, struct nlm_counts *out)
{
    pthread_mutex_lock(&t->mu);
    out->files = t->nfiles;
    out->locks = t->nlocks;
    out->waiters = t->nwaiters;
    out->shares = t->nshares;
    out->hosts = t->nhosts;
    pthread_mutex_unlock(&t->mu);
}
