/* ingest_index.c: kv_ingest_index(), building a run from a parsed tarball index: every member placed as kv_ingest places it, file data absent. */
#include "kvstore/ingest_internal.h"
#include "kvstore/tarindex.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Describe index member t as an ingest_member (pointers into t).  Errors:
 * EBADMSG (unknown type). */
static int member_from_tix(const struct tix_member *t, struct ingest_member *m)
{
    memset(m, 0, sizeof *m);
    m->path = t->path;
    m->uid = t->uid;
    m->gid = t->gid;
    m->mtime.tv_sec = (time_t)t->mtime_sec;
    m->mtime.tv_nsec = (long)t->mtime_nsec;
    m->atime = m->mtime;
    m->ino = t->ino;
    uint32_t perm = t->mode & 07777;
    switch (t->type) {
    case TIX_REG:
        m->mode = S_IFREG | perm;
        m->size = (int64_t)t->size;
        m->absent = true;
        m->data_off = t->data_off;
        m->nsums = t->nsums;
        m->sums = t->sums;
        break;
    case TIX_DIR:
        m->mode = S_IFDIR | perm;
        break;
    case TIX_SYMLINK:
        m->mode = S_IFLNK | perm;
        m->symlink = t->link;
        break;
    case TIX_HARDLINK:
        m->mode = S_IFREG | perm;
        m->hardlink = t->link ? t->link : "";
        break;
    case TIX_FIFO:
        m->mode = S_IFIFO | perm;
        break;
    case TIX_CHR:
        m->mode = S_IFCHR | perm;
        m->rdev = t->rdev;
        break;
    case TIX_BLK:
        m->mode = S_IFBLK | perm;
        m->rdev = t->rdev;
        break;
    default:
        return EBADMSG;
    }
    return 0;
}

/* ---- shallow first ------------------------------------------------------ */

/* Members of a run being served while it is built go in by depth, every
 * member of depth d before any of depth d+1 (index order within a depth),
 * so the top of the tree is there first and a directory at depth d lists
 * whole once depth d+1 is placed (kv_ingest_watch.level).  That order
 * gives the very run that index order gives only when nothing in the
 * index depends on order; otherwise the index order is kept:
 *   - members both inside and outside the top directory (the strip
 *     decision, and an un-strip move, would fall differently);
 *   - a path not in plain form (".", "..", empty parts) or too deep;
 *   - a path twice (the last one wins), hard links (they name an earlier
 *     member), and a non-directory that is also a parent of another
 *     member: each is resolved by order;
 *   - a directory that is no member (made on the way to a deeper one, it
 *     would appear after its parent's level was told whole). */
#define DEPTH_MAX 1024

/* Open-addressing set of path hashes; bit 0 of a slot says "directory",
 * the other bits are the hash (never all zero: 0 is an empty slot). */
struct hset {
    uint64_t *slot;
    size_t mask;
};

static int hset_init(struct hset *s, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 16)
        cap <<= 1;
    s->slot = calloc(cap, sizeof *s->slot);
    s->mask = cap - 1;
    return s->slot ? 0 : ENOMEM;
}

/* Add path hash h (bit 0 ignored) as a directory or not; false if that
 * hash was there already. */
static bool hset_add(struct hset *s, uint64_t h, bool dir)
{
    for (size_t i = (h >> 1) & s->mask;; i = (i + 1) & s->mask) {
        if ((s->slot[i] >> 1) == (h >> 1))
            return false;
        if (!s->slot[i]) {
            s->slot[i] = (h & ~(uint64_t)1) | dir;
            return true;
        }
    }
}

/* Is h there as a directory? */
static bool hset_dir(const struct hset *s, uint64_t h)
{
    for (size_t i = (h >> 1) & s->mask;; i = (i + 1) & s->mask) {
        if ((s->slot[i] >> 1) == (h >> 1))
            return s->slot[i] & 1;
        if (!s->slot[i])
            return false;
    }
}

#define FNV_BASIS 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

/* A hash with bits above bit 0 never all zero. */
static uint64_t path_key(uint64_t h)
{
    return h >> 1 ? h : 2;
}

/* The shallow-first order of ix's n members (*order: malloc'd indices,
 * *depth: each one's depth below the run root, by index position), or
 * NULL orders when index order must be kept.  Errors: ENOMEM. */
static int depth_order(const struct tix_index *ix, size_t n, const char *top,
                       uint32_t **order, uint16_t **depth)
{
    *order = NULL;
    *depth = NULL;
    if (n == 0 || n > UINT32_MAX)
        return 0;
    size_t toplen = strlen(top);
    uint16_t *dep = malloc(n * sizeof *dep);
    uint64_t *parent = malloc(n * sizeof *parent);  /* 0: top level */
    uint8_t *parent_top = malloc(n);    /* the parent is the top dir */
    struct hset all = { 0 };
    int err = dep && parent && parent_top ? hset_init(&all, n) : ENOMEM;
    size_t under = 0, count[DEPTH_MAX + 2] = { 0 };
    bool keep = err != 0;
    struct tix_member t;
    for (size_t i = 0; i < n && !keep; i++) {
        if (tix_get(ix, i, &t) != 0 || t.type == TIX_HARDLINK) {
            keep = true;
            break;
        }
        /* One pass: plain form, depth, the hash of the path and of its
         * directory. */
        uint64_t h = FNV_BASIS, ph = 0;
        unsigned d = 1;
        size_t clen = 0, plen = 0, k = 0;
        const char *p = t.path;
        for (;; k++) {
            char c = p[k];
            if (c == '/' || c == '\0') {
                const char *comp = p + k - clen;
                if (clen == 0 || (clen == 1 && comp[0] == '.') ||
                    (clen == 2 && comp[0] == '.' && comp[1] == '.'))
                    keep = true;
                if (c == '\0')
                    break;
                ph = path_key(h);
                plen = k;
                clen = 0;
                if (++d > DEPTH_MAX)
                    keep = true;
            } else {
                clen++;
            }
            h = (h ^ (unsigned char)c) * FNV_PRIME;
        }
        bool in_top = strncmp(p, top, toplen) == 0 &&
                      (p[toplen] == '/' ||
                       (p[toplen] == '\0' && t.type == TIX_DIR));
        under += in_top;
        if (keep || !hset_add(&all, path_key(h), t.type == TIX_DIR)) {
            keep = true;
            break;
        }
        dep[i] = (uint16_t)d;
        parent[i] = ph;
        parent_top[i] = ph && plen == toplen && strncmp(p, top, toplen) == 0;
    }
    /* Stripped (all under the top directory) or not (none). */
    bool strip = under == n;
    keep = keep || (under != 0 && !strip);
    /* Each member's directory is a directory member (or the run root).
     * Then no non-directory has anything below it, and no directory is
     * made on the way to a deeper member (it would appear after its
     * parent's level was told whole). */
    for (size_t i = 0; i < n && !keep; i++) {
        if (parent[i] && !(strip && parent_top[i]))
            keep = !hset_dir(&all, parent[i]);
        if (strip)
            dep[i]--;           /* "top" is the root, "top/x" depth 1 */
        count[dep[i] + 1]++;
    }
    free(all.slot);
    free(parent);
    free(parent_top);
    uint32_t *ord = keep ? NULL : malloc(n * sizeof *ord);
    if (!keep && !ord)
        err = ENOMEM;
    if (err || keep) {
        free(dep);
        free(ord);
        return err == ENOMEM ? ENOMEM : 0;
    }
    /* Counting sort by depth, stable: index order within a depth. */
    for (size_t d = 1; d < DEPTH_MAX + 2; d++)
        count[d] += count[d - 1];
    for (size_t i = 0; i < n; i++)
        ord[count[dep[i]]++] = (uint32_t)i;
    *order = ord;
    *depth = dep;
    return 0;
}

static int ingest_index(kv_cache *c, const char *name,
                        const struct tix_index *ix, const char *source_version,
                        uint64_t max_bytes, const struct kv_ingest_watch *w,
                        kv_run **keep, struct kv_ingest_result *res)
{
    memset(res, 0, sizeof *res);
    if (keep)
        *keep = NULL;
    if (!ix) {
        snprintf(res->error, sizeof res->error, "no index");
        return EINVAL;
    }
    /* A sparse member's data is not one range: such a run cannot be
     * served from its index (checked before anything is staged). */
    size_t n = tix_count(ix);
    struct tix_member t;
    for (size_t i = 0; i < n; i++) {
        if (tix_get(ix, i, &t) != 0) {
            snprintf(res->error, sizeof res->error, "index member %zu "
                     "unreadable", i);
            return EBADMSG;
        }
        if (t.type == TIX_REG && (t.flags & TIX_F_SPARSE)) {
            snprintf(res->error, sizeof res->error,
                     "member '%.100s' is sparse: no range fetch", t.path);
            return ENOTSUP;
        }
    }
    /* Served while built (w): shallow first, when that is the same run. */
    uint32_t *order = NULL;
    uint16_t *depth = NULL;
    if (w && w->level) {
        const char *slash = strrchr(name, '/');
        if (depth_order(ix, n, slash ? slash + 1 : name, &order, &depth))
            order = NULL;       /* no memory for it: index order */
    }
    struct ingest *in;
    int err = ingest_start(c, name, res, &in);
    if (err) {
        free(order);
        free(depth);
        return err;
    }
    /* The index is all here: the run is shown from now on, and each
     * member as it is placed. */
    ingest_watch(in, w, keep);
    /* Every node counts against the budget as in kv_ingest: an index of
     * a million empty files is small, its run is not. */
    in->budget = max_bytes;
    for (size_t k = 0; k < n && !err; k++) {
        size_t i = order ? order[k] : k;
        struct ingest_member m;
        err = tix_get(ix, i, &t);
        if (!err)
            err = member_from_tix(&t, &m);
        if (err)
            err = ingest_error(in, EBADMSG, t.path, "bad index member");
        else
            err = ingest_charge(in, 0, t.path);
        if (!err)
            err = ingest_place(in, &m);
        /* Every member of this depth placed: its parents list whole. */
        if (!err && order && (k + 1 == n || depth[order[k + 1]] > depth[i]))
            w->level(w->arg, depth[i]);
    }
    free(order);
    free(depth);
    return ingest_end(in, err, source_version);
}

int kv_ingest_index(kv_cache *c, const char *name, const struct tix_index *ix,
                    const char *source_version, struct kv_ingest_result *res)
{
    return ingest_index(c, name, ix, source_version, 0, NULL, NULL, res);
}

int kv_ingest_index_limited(kv_cache *c, const char *name,
                            const struct tix_index *ix,
                            const char *source_version, uint64_t max_bytes,
                            struct kv_ingest_result *res)
{
    return ingest_index(c, name, ix, source_version, max_bytes, NULL, NULL,
                        res);
}

int kv_ingest_index_stream(kv_cache *c, const char *name,
                           const struct tix_index *ix,
                           const char *source_version, uint64_t max_bytes,
                           const struct kv_ingest_watch *w, kv_run **out,
                           struct kv_ingest_result *res)
{
    return ingest_index(c, name, ix, source_version, max_bytes, w, out, res);
}
