/* ingest_index.c: kv_ingest_index(), building a run from a parsed tarball index: every member placed as kv_ingest places it, file data absent. */
#include "kvstore/ingest_internal.h"
#include "kvstore/tarindex.h"

#include <errno.h>
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

int kv_ingest_index(kv_cache *c, const char *name, const struct tix_index *ix,
                    const char *source_version, struct kv_ingest_result *res)
{
    memset(res, 0, sizeof *res);
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
    struct ingest *in;
    int err = ingest_start(c, name, res, &in);
    if (err)
        return err;
    for (size_t i = 0; i < n && !err; i++) {
        struct ingest_member m;
        err = tix_get(ix, i, &t);
        if (!err)
            err = member_from_tix(&t, &m);
        if (err)
            err = ingest_error(in, EBADMSG, t.path, "bad index member");
        else
            err = ingest_place(in, &m);
    }
    return ingest_end(in, err, source_version);
}
