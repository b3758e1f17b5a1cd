/* node.c: inodes and directory entries (attributes, lookup, create, link, remove, rename, readdir). */
#include "kvstore/kv_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

/* Every change runs under kv_wbegin/kv_wend: one transaction. */

/* ---- inode records ---------------------------------------------------- */

int kv_inode_load(kv_run *r, kv_ino ino, struct kv_inode *in)
{
    unsigned char k[9];
    size_t vsiz;
    memset(in, 0, sizeof *in);
    char *v = kcdbget(r->db, (char *)k, kv_key_ino(k, 'I', ino), &vsiz);
    if (!v) {
        int err = kv_kcerr(r->db);
        return err ? err : ENOENT;
    }
    int err = kv_inode_decode(v, vsiz, in);
    kcfree(v);
    return err;
}

int kv_inode_store(kv_run *r, kv_ino ino, const struct kv_inode *in)
{
    unsigned char k[9];
    size_t len;
    char *v = kv_inode_encode(in, &len);
    if (!v)
        return ENOMEM;
    int ok = kcdbset(r->db, (char *)k, kv_key_ino(k, 'I', ino), v, len);
    free(v);
    return ok ? 0 : kv_kcerr(r->db);
}

static int load_dir(kv_run *r, kv_ino dir, struct kv_inode *in)
{
    int err = kv_inode_load(r, dir, in);
    if (!err && !S_ISDIR(in->mode)) {
        kv_inode_free(in);
        err = ENOTDIR;
    }
    return err;
}

/* A fresh random inode number for a node created without a hint: 63 bits
 * from getrandom, at least KV_MIN_INO.  Numbers from a counter would be
 * given again after the run is re-ingested (the counter restarts), so an
 * old handle could name someone else's new file (issue 12, finding 10);
 * random numbers are never reused within 2^63.  Errors: EIO. */
static int random_ino(kv_ino *out)
{
    uint64_t x;
    for (;;) {
        ssize_t n = getrandom(&x, sizeof x, 0);
        if (n == (ssize_t)sizeof x)
            break;
        if (n < 0 && errno != EINTR)
            return EIO;
    }
    x &= KV_MAX_INO;
    *out = x < KV_MIN_INO ? x + KV_MIN_INO : x;
    return 0;
}

/* A free inode number: hint if free, else the next free one above it
 * (wrapping to KV_MIN_INO); without a hint a free random one. */
static int alloc_ino(kv_run *r, kv_ino hint, kv_ino *out)
{
    kv_ino cand = hint;
    unsigned char k[9];
    for (uint64_t tries = 0; tries < 1000000; tries++, cand++) {
        if (!hint) {
            int err = random_ino(&cand);
            if (err)
                return err;
        }
        if (cand < KV_MIN_INO || cand > KV_MAX_INO)
            cand = KV_MIN_INO;
        if (kcdbcheck(r->db, (char *)k, kv_key_ino(k, 'I', cand)) < 0) {
            if (kcdbecode(r->db) != KCENOREC)
                return EIO;
            *out = cand;
            return 0;
        }
    }
    return ENOSPC;
}

/* ---- directory entries ------------------------------------------------ */

/* Find name in dir: *seq and *ino.  ENOENT if absent. */
static int entry_get(kv_run *r, kv_ino dir, const char *name, size_t len,
                     uint64_t *seq, kv_ino *ino)
{
    unsigned char k[KV_KEY_MAX], v[16];
    size_t klen = kv_key_name(k, dir, name, len);
    int32_t n = kcdbgetbuf(r->db, (char *)k, klen, (char *)v, sizeof v);
    if (n < 0) {
        int err = kv_kcerr(r->db);
        return err ? err : ENOENT;
    }
    if (n != 16)
        return EIO;
    if (seq)
        *seq = kv_get64(v);
    if (ino)
        *ino = kv_get64(v + 8);
    return 0;
}

/* Add name -> ino to dir (whose record *d the caller stores afterwards). */
static int entry_add(kv_run *r, kv_ino dir, struct kv_inode *d,
                     const char *name, size_t len, kv_ino ino)
{
    unsigned char k[KV_KEY_MAX], v[8 + KV_NAME_MAX];
    uint64_t seq = d->next_seq++;
    kv_put64(v, ino);
    memcpy(v + 8, name, len);
    if (!kcdbset(r->db, (char *)k, kv_key_ino2(k, 'E', dir, seq), (char *)v, 8 + len))
        return kv_kcerr(r->db);
    unsigned char nv[16];
    kv_put64(nv, seq);
    kv_put64(nv + 8, ino);
    if (!kcdbset(r->db, (char *)k, kv_key_name(k, dir, name, len), (char *)nv, 16))
        return kv_kcerr(r->db);
    return 0;
}

static int entry_remove(kv_run *r, kv_ino dir, const char *name, size_t len,
                        uint64_t seq)
{
    unsigned char k[KV_KEY_MAX];
    if (!kcdbremove(r->db, (char *)k, kv_key_ino2(k, 'E', dir, seq)))
        return EIO;
    if (!kcdbremove(r->db, (char *)k, kv_key_name(k, dir, name, len)))
        return EIO;
    return 0;
}

static int dir_is_empty(kv_run *r, kv_ino dir, bool *empty)
{
    unsigned char k[17];
    KCCUR *cur = kcdbcursor(r->db);
    if (!cur)
        return ENOMEM;
    *empty = true;
    size_t klen = kv_key_ino2(k, 'E', dir, 0);
    if (kccurjumpkey(cur, (char *)k, klen)) {
        size_t ksiz;
        char *key = kccurgetkey(cur, &ksiz, 0);
        if (key) {
            if (ksiz >= 9 && memcmp(key, k, 9) == 0)
                *empty = false;
            kcfree(key);
        }
    }
    kccurdel(cur);
    return 0;
}

/* Drop one link to ino (record *in); delete it and its data at zero. */
static int drop_link(kv_run *r, kv_ino ino, struct kv_inode *in,
                     const struct timespec *now)
{
    if (in->nlink > 0)
        in->nlink--;
    bool isdir = S_ISDIR(in->mode);
    if (in->nlink > 0 && !isdir) {
        in->ctime = *now;
        return kv_inode_store(r, ino, in);
    }
    int err = 0;
    if (S_ISREG(in->mode))
        err = kv_data_free_all(r, ino, in);
    unsigned char k[9];
    if (!err && !kcdbremove(r->db, (char *)k, kv_key_ino(k, 'I', ino)))
        err = EIO;
    if (!err && r->inodes > 0)
        r->inodes--;
    return err;
}

/* ---- public: reading -------------------------------------------------- */

int kv_getattr(kv_run *r, kv_ino ino, struct kv_attr *a)
{
    struct kv_inode in;
    kv_rbegin(r);
    int err = kv_inode_load(r, ino, &in);
    kv_rend(r);
    if (err)
        return err;
    kv_attr_from(ino, &in, a);
    kv_inode_free(&in);
    return 0;
}

int kv_parent(kv_run *r, kv_ino dir, kv_ino *out)
{
    struct kv_inode in;
    kv_rbegin(r);
    int err = load_dir(r, dir, &in);
    kv_rend(r);
    if (err)
        return err;
    *out = in.parent;
    kv_inode_free(&in);
    return 0;
}

int kv_lookup(kv_run *r, kv_ino dir, const char *name, kv_ino *out)
{
    if (name && (!strcmp(name, ".") || !strcmp(name, ".."))) {
        struct kv_inode in;
        kv_rbegin(r);
        int err = load_dir(r, dir, &in);
        kv_rend(r);
        if (err)
            return err;
        *out = name[1] ? in.parent : dir;
        kv_inode_free(&in);
        return 0;
    }
    size_t len;
    int err = kv_check_name(name, &len);
    if (err)
        return err;
    kv_rbegin(r);
    err = entry_get(r, dir, name, len, NULL, out);
    if (err == ENOENT) {
        /* Name keys exist only under directories: say why it failed. */
        struct kv_inode in;
        int derr = load_dir(r, dir, &in);
        if (derr)
            err = derr;
        else
            kv_inode_free(&in);
    }
    kv_rend(r);
    return err;
}

int kv_readlink(kv_run *r, kv_ino ino, char *buf, size_t cap, size_t *len)
{
    struct kv_inode in;
    kv_rbegin(r);
    int err = kv_inode_load(r, ino, &in);
    kv_rend(r);
    if (err)
        return err;
    if (!S_ISLNK(in.mode) || !in.target) {
        kv_inode_free(&in);
        return EINVAL;
    }
    size_t n = in.size;
    memcpy(buf, in.target, n < cap ? n : cap);
    if (n < cap)
        buf[n] = '\0';
    *len = n;
    kv_inode_free(&in);
    return 0;
}

int kv_dirent_decode(const char *key, size_t ksiz, const char *vbuf, size_t vsiz,
                     const unsigned char prefix[9], char name[KV_NAME_MAX + 1],
                     struct kv_dirent *de)
{
    if (ksiz != 17 || memcmp(key, prefix, 9) != 0)
        return ENOENT;
    if (vsiz < 9 || vsiz > 8 + KV_NAME_MAX)
        return EIO;
    memcpy(name, vbuf + 8, vsiz - 8);
    name[vsiz - 8] = '\0';
    *de = (struct kv_dirent){
        .name = name,
        .namelen = vsiz - 8,
        .ino = kv_get64((const unsigned char *)vbuf),
        .cookie = kv_get64((const unsigned char *)key + 9),
    };
    return 0;
}

int kv_readdir(kv_run *r, kv_ino dir, uint64_t cookie,
               int (*cb)(void *arg, const struct kv_dirent *de), void *arg)
{
    struct kv_inode d;
    kv_rbegin(r);
    int err = load_dir(r, dir, &d);
    if (err) {
        kv_rend(r);
        return err;
    }
    kv_inode_free(&d);
    if (cookie == UINT64_MAX) {
        kv_rend(r);
        return 0;
    }
    KCCUR *cur = kcdbcursor(r->db);
    if (!cur) {
        kv_rend(r);
        return ENOMEM;
    }
    unsigned char k[17];
    kv_key_ino2(k, 'E', dir, cookie + 1);
    int ret = 0;
    if (kccurjumpkey(cur, (char *)k, 17)) {
        for (;;) {
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
            ret = cb(arg, &de);
            if (ret)
                break;
        }
    }
    kccurdel(cur);
    kv_rend(r);
    return ret;
}

/* ---- public: changing ------------------------------------------------- */

static bool valid_type(uint32_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFIFO:
    case S_IFCHR: case S_IFBLK: case S_IFSOCK:
        return true;
    default:
        return false;
    }
}

int kv_mknode(kv_run *r, kv_ino dir, const char *name,
              const struct kv_newnode *n, struct kv_attr *out)
{
    size_t len, tlen = 0;
    int err = kv_check_name(name, &len);
    if (err)
        return err;
    if (!n || !valid_type(n->mode))
        return EINVAL;
    if (S_ISLNK(n->mode)) {
        if (!n->symlink_target)
            return EINVAL;
        tlen = strnlen(n->symlink_target, KV_SYMLINK_MAX + 1);
        if (tlen == 0)
            return EINVAL;
        if (tlen > KV_SYMLINK_MAX)
            return ENAMETOOLONG;
    }
    if (n->absent && (!S_ISREG(n->mode) || !kv_absent_spec_ok(n->absent)))
        return EINVAL;
    if ((err = kv_wbegin(r)))
        return err;
    struct kv_inode d, in = {0};
    err = load_dir(r, dir, &d);
    if (err)
        return kv_wend(r, err);
    err = entry_get(r, dir, name, len, NULL, NULL);
    if (err == 0)
        err = EEXIST;
    else if (err == ENOENT)
        err = 0;
    kv_ino ino = 0;
    if (!err)
        err = alloc_ino(r, n->ino_hint, &ino);
    if (!err) {
        struct timespec now;
        kv_now(&now);
        in.mode = n->mode;
        in.uid = n->uid;
        in.gid = n->gid;
        in.nlink = 1;
        in.ctime = now;
        in.atime = n->has_times ? n->atime : now;
        in.mtime = n->has_times ? n->mtime : now;
        if (S_ISDIR(n->mode)) {
            in.nlink = 2;
            in.size = 4096;
            in.parent = dir;
            in.next_seq = KV_FIRST_SEQ;
            d.nlink++;
        } else if (S_ISLNK(n->mode)) {
            in.size = tlen;
            in.target = (char *)n->symlink_target;
        } else if (S_ISCHR(n->mode) || S_ISBLK(n->mode)) {
            in.rdev = n->rdev;
        } else if (n->absent) {
            in.size = n->absent->size;
        }
        err = kv_inode_store(r, ino, &in);
        in.target = NULL;
        if (!err && n->absent)
            err = kv_absent_record(r, ino, n->absent);
        if (!err)
            err = entry_add(r, dir, &d, name, len, ino);
        /* An ingest (a staged run) keeps every directory's archived
         * mtime: a run served while it streams in shows it at once, not
         * the time its members happened to arrive.  The ctime still
         * moves, so an NFS client that listed the directory early (its
         * change attribute is the ctime) lists it again. */
        d.ctime = now;
        if (!r->staged)
            d.mtime = now;
        if (!err)
            err = kv_inode_store(r, dir, &d);
        if (!err)
            r->inodes++;
    }
    kv_inode_free(&d);
    err = kv_wend(r, err);
    if (!err && out) {
        kv_attr_from(ino, &in, out);
    }
    return err;
}

int kv_link(kv_run *r, kv_ino ino, kv_ino newdir, const char *newname)
{
    size_t len;
    int err = kv_check_name(newname, &len);
    if (err)
        return err;
    if ((err = kv_wbegin(r)))
        return err;
    struct kv_inode in, d;
    err = kv_inode_load(r, ino, &in);
    if (err)
        return kv_wend(r, err);
    if (S_ISDIR(in.mode))
        err = EPERM;
    else if (in.nlink >= KV_LINK_MAX)
        err = EMLINK;
    if (!err)
        err = load_dir(r, newdir, &d);
    if (!err) {
        int e = entry_get(r, newdir, newname, len, NULL, NULL);
        err = e == 0 ? EEXIST : e == ENOENT ? 0 : e;
        struct timespec now;
        kv_now(&now);
        if (!err)
            err = entry_add(r, newdir, &d, newname, len, ino);
        d.ctime = now;
        if (!r->staged)
            d.mtime = now;
        in.ctime = now;
        in.nlink++;
        if (!err)
            err = kv_inode_store(r, newdir, &d);
        if (!err)
            err = kv_inode_store(r, ino, &in);
        kv_inode_free(&d);
    }
    kv_inode_free(&in);
    return kv_wend(r, err);
}

/* unlink (want_dir false) and rmdir (true). */
static int remove_name(kv_run *r, kv_ino dir, const char *name, bool want_dir)
{
    size_t len;
    int err = kv_check_name(name, &len);
    if (err)
        return err;
    if ((err = kv_wbegin(r)))
        return err;
    struct kv_inode d, in;
    uint64_t seq;
    kv_ino ino;
    err = load_dir(r, dir, &d);
    if (err)
        return kv_wend(r, err);
    err = entry_get(r, dir, name, len, &seq, &ino);
    if (!err)
        err = kv_inode_load(r, ino, &in);
    if (err) {
        kv_inode_free(&d);
        return kv_wend(r, err);
    }
    bool isdir = S_ISDIR(in.mode);
    if (want_dir && !isdir)
        err = ENOTDIR;
    else if (!want_dir && isdir)
        err = EISDIR;
    else if (isdir && ino == r->root)
        err = EBUSY;
    if (!err && isdir) {
        bool empty;
        err = dir_is_empty(r, ino, &empty);
        if (!err && !empty)
            err = ENOTEMPTY;
    }
    struct timespec now;
    kv_now(&now);
    if (!err)
        err = entry_remove(r, dir, name, len, seq);
    if (!err)
        err = drop_link(r, ino, &in, &now);
    if (!err) {
        if (isdir && d.nlink > 2)
            d.nlink--;
        d.mtime = d.ctime = now;
        err = kv_inode_store(r, dir, &d);
    }
    kv_inode_free(&in);
    kv_inode_free(&d);
    return kv_wend(r, err);
}

int kv_unlink(kv_run *r, kv_ino dir, const char *name)
{
    return remove_name(r, dir, name, false);
}

int kv_rmdir(kv_run *r, kv_ino dir, const char *name)
{
    return remove_name(r, dir, name, true);
}

/* Is dir (a directory) ino itself or inside ino's subtree? */
static int inside_subtree(kv_run *r, kv_ino dir, kv_ino ino, bool *inside)
{
    *inside = false;
    for (int depth = 0; depth < 100000; depth++) {
        if (dir == ino) {
            *inside = true;
            return 0;
        }
        if (dir == r->root)
            return 0;
        struct kv_inode in;
        int err = load_dir(r, dir, &in);
        if (err)
            return err;
        kv_ino up = in.parent;
        kv_inode_free(&in);
        if (up == dir)
            return 0;
        dir = up;
    }
    return EIO;     /* a parent loop: corrupt */
}

int kv_rename(kv_run *r, kv_ino sdir, const char *sname,
              kv_ino ddir, const char *dname)
{
    size_t slen, dlen;
    int err = kv_check_name(sname, &slen);
    if (!err)
        err = kv_check_name(dname, &dlen);
    if (err)
        return err;
    if ((err = kv_wbegin(r)))
        return err;
    struct kv_inode sd = {0}, dd = {0}, src = {0}, dst = {0};
    bool have_sd = false, have_dd = false, have_src = false, have_dst = false;
    uint64_t sseq = 0, dseq = 0;
    kv_ino sino = 0, dino = 0;
    struct timespec now;
    kv_now(&now);

    if (!(err = load_dir(r, sdir, &sd)))
        have_sd = true;
    if (!err && ddir != sdir && !(err = load_dir(r, ddir, &dd)))
        have_dd = true;
    struct kv_inode *dp = ddir == sdir ? &sd : &dd;   /* target dir record */
    if (!err)
        err = entry_get(r, sdir, sname, slen, &sseq, &sino);
    if (!err && !(err = kv_inode_load(r, sino, &src)))
        have_src = true;
    if (!err) {
        int e = entry_get(r, ddir, dname, dlen, &dseq, &dino);
        if (e == 0 && !(err = kv_inode_load(r, dino, &dst)))
            have_dst = true;
        else if (e != ENOENT)
            err = e;
    }
    bool srcdir = have_src && S_ISDIR(src.mode);
    if (!err && have_dst && dino == sino)
        goto done;      /* same file (or hard links to it): nothing to do */
    if (!err && have_dst) {
        bool dstdir = S_ISDIR(dst.mode);
        if (srcdir && !dstdir)
            err = ENOTDIR;
        else if (!srcdir && dstdir)
            err = EISDIR;
        else if (dstdir) {
            bool empty;
            err = dir_is_empty(r, dino, &empty);
            if (!err && !empty)
                err = ENOTEMPTY;
        }
    }
    if (!err && srcdir && ddir != sdir) {
        bool inside;
        err = inside_subtree(r, ddir, sino, &inside);
        if (!err && inside)
            err = EINVAL;
    }
    if (err)
        goto done;

    if (have_dst) {
        err = entry_remove(r, ddir, dname, dlen, dseq);
        if (!err && S_ISDIR(dst.mode) && dp->nlink > 2)
            dp->nlink--;
        if (!err)
            err = drop_link(r, dino, &dst, &now);
    }
    if (!err)
        err = entry_remove(r, sdir, sname, slen, sseq);
    if (!err)
        err = entry_add(r, ddir, dp, dname, dlen, sino);
    if (!err && srcdir && ddir != sdir) {
        if (sd.nlink > 2)
            sd.nlink--;
        dd.nlink++;
        src.parent = ddir;
    }
    sd.mtime = sd.ctime = now;
    dp->mtime = dp->ctime = now;
    src.ctime = now;
    if (!err)
        err = kv_inode_store(r, sino, &src);
    if (!err)
        err = kv_inode_store(r, sdir, &sd);
    if (!err && have_dd)
        err = kv_inode_store(r, ddir, &dd);
done:
    if (have_sd) kv_inode_free(&sd);
    if (have_dd) kv_inode_free(&dd);
    if (have_src) kv_inode_free(&src);
    if (have_dst) kv_inode_free(&dst);
    return kv_wend(r, err);
}

int kv_setattr(kv_run *r, kv_ino ino, const struct kv_sattr *s, struct kv_attr *out)
{
    int err;
    if ((err = kv_wbegin(r)))
        return err;
    struct kv_inode in;
    err = kv_inode_load(r, ino, &in);
    if (err)
        return kv_wend(r, err);
    struct timespec now;
    kv_now(&now);
    if (s->mask & KV_SET_SIZE) {
        if (S_ISDIR(in.mode))
            err = EISDIR;
        else if (!S_ISREG(in.mode))
            err = EINVAL;
        else if (s->size > KV_MAX_FILE)
            err = EFBIG;
        else if (s->size != in.size) {
            err = kv_data_truncate(r, ino, &in, s->size);
            if (!(s->mask & KV_SET_MTIME))
                in.mtime = now;
        }
    }
    if (!err) {
        if (s->mask & KV_SET_MODE)
            in.mode = (in.mode & S_IFMT) | (s->mode & 07777);
        if (s->mask & KV_SET_UID)
            in.uid = s->uid;
        if (s->mask & KV_SET_GID)
            in.gid = s->gid;
        if (s->mask & KV_SET_ATIME)
            in.atime = s->atime;
        if (s->mask & KV_SET_MTIME)
            in.mtime = s->mtime;
        in.ctime = (s->mask & KV_SET_CTIME) ? s->ctime : now;
        err = kv_inode_store(r, ino, &in);
    }
    err = kv_wend(r, err);
    if (!err && out)
        kv_attr_from(ino, &in, out);
    kv_inode_free(&in);
    return err;
}
