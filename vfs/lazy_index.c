/* lazy_index.c: the indexes of index-first runs: load a run from its tarball's index sidecar (checked against the tarball, served while built), and make an index as a by-product of a full fetch (a scan thread fed through a bounded buffer) and store it as the sidecar. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "kvstore/tarindex.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An index bigger than this is not fetched (a hostile or broken sidecar
 * must not make the server allocate without bound).  1M members with
 * their paths take well under 64 MiB. */
#define VFS_INDEX_MAX ((size_t)256 << 20)

/* ---- index-first load ------------------------------------------------ */

/* GET key's sidecar into a malloc'd buffer.  Errors: ENOENT (no sidecar),
 * EFBIG (over VFS_INDEX_MAX), EIO, ENOMEM. */
static int get_sidecar(vfs *v, const char *key, void **out, size_t *outlen)
{
    char ikey[1100];
    if (snprintf(ikey, sizeof ikey, "%s%s", key, TIX_SUFFIX) >=
        (int)sizeof ikey)
        return ENOENT;
    fetch_stream *s;
    int err = fetch_get(v->backend, ikey, 0, 0, &s);
    if (err)
        return err;
    size_t cap = 256 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        err = ENOMEM;
    while (!err) {
        if (len == cap) {
            if (cap >= VFS_INDEX_MAX) {
                err = EFBIG;
                break;
            }
            size_t ncap = cap * 2 > VFS_INDEX_MAX ? VFS_INDEX_MAX : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                err = ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = fetch_read(s, buf + len, cap - len);
        if (n < 0)
            err = (int)-n;
        else if (n == 0)
            break;
        else
            len += (size_t)n;
    }
    fetch_stream_close(s);
    pthread_mutex_lock(&v->lock);
    v->stats.bytes_fetched += len;
    v->stats.index_fetches++;
    if (err)
        v->stats.index_fetch_failures++;
    pthread_mutex_unlock(&v->lock);
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

int vfs_lazy_load_index(vfs *v, struct vfs_run *r, const char *key,
                        const struct fetch_objinfo *oi, bool *served)
{
    *served = false;
    const char *name = r->name;
    int64_t t0 = tclock_mono_ms();
    void *buf = NULL;
    size_t len = 0;
    int err = get_sidecar(v, key, &buf, &len);
    if (err == ENOENT)
        return ENOENT;
    if (err) {
        log_warn("vfs: index of %s could not be read (%s): fetching the "
                 "whole tarball", key, strerror(err));
        return err;
    }
    tix_index *ix = NULL;
    char why[256] = "";
    err = tix_parse(buf, len, &ix, why, sizeof why);
    free(buf);
    if (err) {
        log_warn("vfs: index of %s is corrupt: %s; ignored, fetching the "
                 "whole tarball", key, why[0] ? why : strerror(err));
        return EBADMSG;
    }
    struct tix_source actual;
    memset(&actual, 0, sizeof actual);
    actual.size = oi->size;
    snprintf(actual.version, sizeof actual.version, "%s", oi->version);
    snprintf(actual.sha256, sizeof actual.sha256, "%s", oi->sha256);
    if (!tix_matches(ix, &actual)) {
        log_warn("vfs: index of %s does not match its tarball: ignored, "
                 "fetching the whole tarball", key);
        tix_free(ix);
        return ESTALE;
    }
    /* Served while it is built: a name is there once placed, so the
     * first file of a run of a million waits for its own member, not for
     * the million (a listing waits for the whole tree). */
    struct kv_ingest_result res;
    struct vfs_stream *st = vfs_stream_new(v, r, key, oi->version);
    kv_run *kr = NULL;
    if (st) {
        vfs_stream_index(st);
        struct kv_ingest_watch w;
        vfs_stream_watch(st, &w);
        err = kv_ingest_index_stream(v->cache, name, ix, oi->version,
                                     vfs_ingest_headroom(v, name), &w,
                                     &kr, &res);
    } else {
        err = kv_ingest_index_limited(v->cache, name, ix, oi->version,
                                      vfs_ingest_headroom(v, name), &res);
    }
    tix_free(ix);
    if (err)
        log_warn("vfs: run %s cannot be built from its index: %s%s%s; "
                 "fetching the whole tarball", name, strerror(err),
                 res.error[0] ? ": " : "", res.error);
    else
        log_info("vfs: run %s loaded from the index of %s (%s): %zu bytes "
                 "of index, %llu files in %lld ms%s; file data is fetched "
                 "on read", name, key, oi->version, len,
                 (unsigned long long)res.files,
                 (long long)(tclock_mono_ms() - t0),
                 st ? ", served while built" : "");
    if (st)
        vfs_stream_end(v, st, kr, err ? ERESTART : 0, served);
    return err;
}

/* ---- an index as a by-product of a full fetch ------------------------- */

/* The bytes of a full fetch are handed to tix_scan, running on its own
 * thread, through a bounded buffer: the fetch never waits on more than
 * VFS_TEE_BUF bytes of it, and once the scan has stopped (done, or
 * refused: a compressed tarball) bytes are simply not copied any more. */
#define VFS_TEE_BUF ((size_t)4 << 20)

struct vfs_tee {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf;
    size_t head, len;           /* ring: len bytes from head */
    bool eof, detached;
    int perr;                   /* the fetch failed: the scan reads -EIO */
    pthread_t th;
    struct tix_source src;
    int rc;
    void *ix;
    size_t ixlen;
    char why[256];
};

static ssize_t tee_read(void *arg, void *out, size_t cap)
{
    struct vfs_tee *t = arg;
    pthread_mutex_lock(&t->mu);
    while (t->len == 0 && !t->eof)
        pthread_cond_wait(&t->cv, &t->mu);
    ssize_t n;
    if (t->len == 0) {
        n = t->perr ? -EIO : 0;
    } else {
        size_t k = t->len < cap ? t->len : cap;
        size_t first = VFS_TEE_BUF - t->head < k ? VFS_TEE_BUF - t->head : k;
        memcpy(out, t->buf + t->head, first);
        memcpy((char *)out + first, t->buf, k - first);
        t->head = (t->head + k) % VFS_TEE_BUF;
        t->len -= k;
        n = (ssize_t)k;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

static void *tee_main(void *arg)
{
    struct vfs_tee *t = arg;
    t->rc = tix_scan(tee_read, t, &t->src, NULL, NULL, &t->ix, &t->ixlen,
                     t->why, sizeof t->why);
    pthread_mutex_lock(&t->mu);
    t->detached = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

struct vfs_tee *vfs_tee_start(const struct fetch_objinfo *oi)
{
    struct vfs_tee *t = calloc(1, sizeof *t);
    if (!t || !(t->buf = malloc(VFS_TEE_BUF))) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->src.size = oi->size;
    snprintf(t->src.version, sizeof t->src.version, "%s", oi->version);
    snprintf(t->src.sha256, sizeof t->src.sha256, "%s", oi->sha256);
    if (pthread_create(&t->th, NULL, tee_main, t) != 0) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        free(t->buf);
        free(t);
        return NULL;
    }
    return t;
}

void vfs_tee_push(struct vfs_tee *t, const void *data, size_t n)
{
    const char *p = data;
    pthread_mutex_lock(&t->mu);
    while (n > 0 && !t->detached) {
        while (t->len == VFS_TEE_BUF && !t->detached)
            pthread_cond_wait(&t->cv, &t->mu);
        if (t->detached)
            break;
        size_t tail = (t->head + t->len) % VFS_TEE_BUF;
        size_t room = VFS_TEE_BUF - t->len;
        size_t k = n < room ? n : room;
        size_t first = VFS_TEE_BUF - tail < k ? VFS_TEE_BUF - tail : k;
        memcpy(t->buf + tail, p, first);
        memcpy(t->buf, p + first, k - first);
        t->len += k;
        p += k;
        n -= k;
        pthread_cond_broadcast(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
}

struct pull_mem {
    const char *p;
    size_t n, pos;
};

static ssize_t pull_mem(void *arg, void *buf, size_t cap)
{
    struct pull_mem *m = arg;
    size_t k = m->n - m->pos < cap ? m->n - m->pos : cap;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return (ssize_t)k;
}

void vfs_tee_finish(vfs *v, struct vfs_tee *t, int fetch_err, const char *key,
                    bool upload)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->eof = true;
    t->perr = fetch_err;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->th, NULL);
    if (fetch_err || !upload) {
        /* nothing to store */
    } else if (t->rc == ENOTSUP) {
        log_debug("vfs: %s is compressed: no index (no random access)", key);
    } else if (t->rc) {
        log_warn("vfs: no index made for %s: %s", key,
                 t->why[0] ? t->why : strerror(t->rc));
    } else {
        /* Never over a newer index: create it, or replace exactly the
         * stale or corrupt one found at load. */
        char ikey[1100];
        struct fetch_objinfo old;
        struct fetch_put_opts o = { .if_none_match = true };
        snprintf(ikey, sizeof ikey, "%s%s", key, TIX_SUFFIX);
        if (fetch_stat(v->backend, ikey, &old) == 0) {
            o.if_none_match = false;
            o.if_match = old.version;
        }
        struct pull_mem m = { t->ix, t->ixlen, 0 };
        int err = fetch_put(v->backend, ikey, pull_mem, &m, &o, NULL);
        if (err)
            log_warn("vfs: storing the index %s failed: %s", ikey,
                     err == ECANCELED ? "it changed meanwhile" : strerror(err));
        else
            log_info("vfs: stored the index %s (%zu bytes), made while "
                     "fetching its tarball", ikey, t->ixlen);
    }
    free(t->ix);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->buf);
    free(t);
}
