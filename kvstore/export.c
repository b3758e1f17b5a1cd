/* export.c: kv_export(), the pair of kv_ingest: a run written out as one pax tarball (holes as sparse entries, kept inode numbers as xattrs). */
#include "kvstore/kv_internal.h"
#include "kvstore/tarindex.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EXPORT_CHUNK (256u * 1024u)

struct hl_entry { kv_ino ino; char *path; };

struct tar_job {
    kv_run *kr;
    const char *top;            /* member prefix: the run's last component */
    kv_write_fn write_fn;
    void *arg;
    int err;
    char *msg;                  /* res->error */
    size_t msgcap;
    struct hl_entry *hl;
    size_t nhl, caphl;
    unsigned char *buf;
    char *link;                 /* a symlink target, KV_SYMLINK_MAX + 1 */
    uint64_t files;
};

static la_ssize_t job_write(struct archive *a, void *arg, const void *buf,
                            size_t len)
{
    struct tar_job *j = arg;
    int err = j->write_fn(j->arg, buf, len);
    if (err) {
        archive_set_error(a, err, "the tarball's reader stopped: %s",
                          strerror(err));
        return -1;
    }
    return (la_ssize_t)len;
}

struct child { char *name; kv_ino ino; };

struct child_list { struct child *v; size_t n, cap; int err; };

static int collect_child(void *arg, const struct kv_dirent *de)
{
    struct child_list *cl = arg;
    if (cl->n == cl->cap) {
        size_t nc = cl->cap ? cl->cap * 2 : 32;
        struct child *nv = realloc(cl->v, nc * sizeof *nv);
        if (!nv) {
            cl->err = ENOMEM;
            return 1;
        }
        cl->v = nv;
        cl->cap = nc;
    }
    char *name = strndup(de->name, de->namelen);
    if (!name) {
        cl->err = ENOMEM;
        return 1;
    }
    cl->v[cl->n++] = (struct child){ name, de->ino };
    return 0;
}

static int by_name(const void *pa, const void *pb)
{
    return strcmp(((const struct child *)pa)->name,
                  ((const struct child *)pb)->name);
}

static int fail(struct tar_job *j, int err, const char *what, const char *path)
{
    if (!j->err) {
        j->err = err;
        snprintf(j->msg, j->msgcap, "%s %s: %s", what, path, strerror(err));
    }
    return j->err;
}

/* The stretches of stored data of one regular file (kv_extents). */
struct extent_list {
    uint64_t (*v)[2];           /* offset, length */
    size_t n, cap;
};

static int extent_add(void *arg, uint64_t off, uint64_t len)
{
    struct extent_list *el = arg;
    if (el->n == el->cap) {
        size_t nc = el->cap ? el->cap * 2 : 16;
        uint64_t (*nv)[2] = realloc(el->v, nc * sizeof *nv);
        if (!nv)
            return ENOMEM;
        el->v = nv;
        el->cap = nc;
    }
    el->v[el->n][0] = off;
    el->v[el->n][1] = len;
    el->n++;
    return 0;
}

static const unsigned char export_zeros[EXPORT_CHUNK];

/* Write a regular file's data: holes as holes (issue 12, finding 9).  A
 * file that is not one stretch of data from 0 to its size gets one pax
 * sparse entry per stretch (declared before the header is written); the
 * data is then streamed from kvstore and the holes are passed as zeros,
 * which libarchive's pax writer skips, so a 1 TiB file holding a few bytes
 * makes a tarball of a few KB.  *el must be filled by sparse_declare. */
static int sparse_declare(struct tar_job *j, struct archive_entry *ae,
                          kv_ino ino, uint64_t size, struct extent_list *el,
                          const char *path)
{
    int err = kv_extents(j->kr, ino, extent_add, el);
    if (err)
        return fail(j, err, "listing the data of", path);
    /* Stretches widened to whole 512-byte blocks (the last may end at the
     * size), merged where they meet: GNU tar reads each stretch of a sparse
     * member as whole blocks (its own are block-aligned), so one ending
     * inside a block shifted all later bytes of the file in its hands and
     * it took the rest of the archive for its end (exit 0, the members
     * after it missing); libarchive packs stretches end to end.  Aligned,
     * both read the same bytes; the widening holds zeros. */
    size_t n = 0;
    for (size_t i = 0; i < el->n; i++) {
        uint64_t start = el->v[i][0] & ~(uint64_t)511;
        uint64_t end = (el->v[i][0] + el->v[i][1] + 511) & ~(uint64_t)511;
        if (end > size)
            end = size;
        if (n > 0 && start <= el->v[n - 1][0] + el->v[n - 1][1]) {
            el->v[n - 1][1] = end - el->v[n - 1][0];
        } else {
            el->v[n][0] = start;
            el->v[n][1] = end - start;
            n++;
        }
    }
    el->n = n;
    bool dense = el->n == 1 && el->v[0][0] == 0 && el->v[0][1] == size;
    if (dense || size == 0)
        return 0;
    for (size_t i = 0; i < el->n; i++)
        archive_entry_sparse_add_entry(ae, (la_int64_t)el->v[i][0],
                                       (la_int64_t)el->v[i][1]);
    if (el->n == 0)             /* all hole: an empty map still says so */
        archive_entry_sparse_add_entry(ae, (la_int64_t)size, 0);
    return 0;
}

static int write_zeros(struct tar_job *j, struct archive *a, uint64_t len,
                       const char *path)
{
    while (len > 0) {
        size_t n = len < EXPORT_CHUNK ? (size_t)len : EXPORT_CHUNK;
        if (archive_write_data(a, export_zeros, n) != (la_ssize_t)n)
            return fail(j, archive_errno(a) > 0 ? archive_errno(a) : EIO,
                        "writing the data of", path);
        len -= n;
    }
    return 0;
}

static int write_file_data(struct tar_job *j, struct archive *a, kv_ino ino,
                           uint64_t size, const struct extent_list *el,
                           const char *path)
{
    uint64_t off = 0;
    for (size_t i = 0; i <= el->n; i++) {
        uint64_t dstart = i < el->n ? el->v[i][0] : size;
        uint64_t dend = i < el->n ? dstart + el->v[i][1] : size;
        int err = write_zeros(j, a, dstart - off, path);
        if (err)
            return err;
        for (off = dstart; off < dend;) {
            size_t got, want = dend - off < EXPORT_CHUNK ? (size_t)(dend - off)
                                                       : EXPORT_CHUNK;
            bool eof;
            err = kv_read(j->kr, ino, off, j->buf, want, &got, &eof);
            if (err)
                return fail(j, err, "reading", path);
            if (got == 0)
                return fail(j, EIO, "short file", path);
            if (archive_write_data(a, j->buf, got) != (la_ssize_t)got)
                return fail(j, archive_errno(a) > 0 ? archive_errno(a) : EIO,
                            "writing the data of", path);
            off += got;
        }
    }
    return 0;
}

/* Write the member for ino at path (header, and data for a regular file);
 * *is_dir tells the caller to descend.  No recursion, and nothing big on
 * the stack: the symlink target goes into j->link. */
static int tar_member(struct tar_job *j, struct archive *a,
                      struct archive_entry *ae, kv_ino ino, const char *path,
                      bool *is_dir)
{
    struct kv_attr at;
    struct extent_list el = { 0 };     /* before any goto header */
    *is_dir = false;
    int err = kv_getattr(j->kr, ino, &at);
    if (err)
        return fail(j, err, "reading attributes of", path);
    archive_entry_clear(ae);
    archive_entry_copy_pathname(ae, path);
    archive_entry_set_mode(ae, at.mode);
    archive_entry_set_uid(ae, at.uid);
    archive_entry_set_gid(ae, at.gid);
    archive_entry_set_mtime(ae, at.mtime.tv_sec, at.mtime.tv_nsec);
    archive_entry_set_size(ae, 0);
    bool data = false;
    if (!S_ISDIR(at.mode) && at.nlink > 1) {
        for (size_t i = 0; i < j->nhl; i++)
            if (j->hl[i].ino == ino) {
                archive_entry_copy_hardlink(ae, j->hl[i].path);
                goto header;
            }
        if (j->nhl == j->caphl) {
            size_t nc = j->caphl ? j->caphl * 2 : 16;
            struct hl_entry *nh = realloc(j->hl, nc * sizeof *nh);
            if (!nh)
                return fail(j, ENOMEM, "listing", path);
            j->hl = nh;
            j->caphl = nc;
        }
        j->hl[j->nhl].ino = ino;
        if (!(j->hl[j->nhl].path = strdup(path)))
            return fail(j, ENOMEM, "listing", path);
        j->nhl++;
    }
    /* A node whose number is not the one its path gives (created or
     * renamed over NFS) keeps it in the tarball, so that loaded again it
     * is the same node to every handle, and an old handle of what held
     * the path before stays stale. */
    size_t tl = strlen(j->top);
    const char *rel = strncmp(path, j->top, tl) == 0 && path[tl] == '/'
                      ? path + tl + 1 : NULL;
    if (rel && ino != kv_ino_for(kv_run_name(j->kr), rel)) {
        char num[24];
        int nl = snprintf(num, sizeof num, "%llu", (unsigned long long)ino);
        archive_entry_xattr_add_entry(ae, TIX_INO_XATTR, num, (size_t)nl);
    }
    if (S_ISREG(at.mode)) {
        archive_entry_set_size(ae, (la_int64_t)at.size);
        data = at.size > 0;
        if (data && (err = sparse_declare(j, ae, ino, at.size, &el, path))) {
            free(el.v);
            return err;
        }
    } else if (S_ISLNK(at.mode)) {
        size_t len;
        err = kv_readlink(j->kr, ino, j->link, KV_SYMLINK_MAX, &len);
        if (err)
            return fail(j, err, "reading symlink", path);
        j->link[len < KV_SYMLINK_MAX ? len : KV_SYMLINK_MAX] = '\0';
        archive_entry_copy_symlink(ae, j->link);
    } else if (S_ISCHR(at.mode) || S_ISBLK(at.mode)) {
        archive_entry_set_rdev(ae, (dev_t)at.rdev);
    }
header:
    if (archive_write_header(a, ae) < ARCHIVE_WARN) {
        free(el.v);
        return fail(j, archive_errno(a) > 0 ? archive_errno(a) : EIO,
                    "writing the header of", path);
    }
    j->files++;
    err = data ? write_file_data(j, a, ino, at.size, &el, path) : 0;
    free(el.v);
    if (err)
        return err;
    *is_dir = S_ISDIR(at.mode);
    return 0;
}

/* One directory being written: its sorted children and the next one. */
struct tar_frame {
    char *path;
    struct child_list cl;
    size_t next;
};

static void frame_free(struct tar_frame *f)
{
    for (size_t i = 0; i < f->cl.n; i++)
        free(f->cl.v[i].name);
    free(f->cl.v);
    free(f->path);
}

/* Open directory ino at path (path is taken over) as a new frame on top of
 * the stack.  Errors: ENOMEM, kv_readdir's. */
static int push_dir(struct tar_job *j, struct tar_frame **stack, size_t *n,
                    size_t *cap, kv_ino ino, char *path)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct tar_frame *ns = realloc(*stack, nc * sizeof *ns);
        if (!ns) {
            free(path);
            return fail(j, ENOMEM, "listing", "a directory");
        }
        *stack = ns;
        *cap = nc;
    }
    struct tar_frame *f = &(*stack)[(*n)++];
    memset(f, 0, sizeof *f);
    f->path = path;
    int err = kv_readdir(j->kr, ino, 0, collect_child, &f->cl);
    if (!err)
        err = f->cl.err;
    if (err)
        return fail(j, err, "listing", path);
    if (f->cl.n)        /* an empty directory has no array to sort */
        qsort(f->cl.v, f->cl.n, sizeof *f->cl.v, by_name);
    return 0;
}

/* Write the tree under ino (at path) depth first, siblings sorted bytewise
 * (the order `tarnfs convert` uses).  Iterative, with the pending
 * directories on a heap stack, so a deep tree needs no thread stack. */
static int tar_tree(struct tar_job *j, struct archive *a,
                    struct archive_entry *ae, kv_ino ino, const char *top)
{
    struct tar_frame *stack = NULL;
    size_t n = 0, cap = 0;
    bool is_dir;
    int err = tar_member(j, a, ae, ino, top, &is_dir);
    if (!err && is_dir) {
        char *path = strdup(top);
        err = path ? push_dir(j, &stack, &n, &cap, ino, path)
                   : fail(j, ENOMEM, "listing", top);
    }
    while (!err && n) {
        struct tar_frame *f = &stack[n - 1];
        if (f->next == f->cl.n) {
            frame_free(f);
            n--;
            continue;
        }
        struct child *c = &f->cl.v[f->next++];
        size_t pl = strlen(f->path), nl = strlen(c->name);
        char *sub = malloc(pl + nl + 2);
        if (!sub) {
            err = fail(j, ENOMEM, "listing", f->path);
            break;
        }
        memcpy(sub, f->path, pl);
        sub[pl] = '/';
        memcpy(sub + pl + 1, c->name, nl + 1);
        err = tar_member(j, a, ae, c->ino, sub, &is_dir);
        if (!err && is_dir)
            err = push_dir(j, &stack, &n, &cap, c->ino, sub);  /* takes sub */
        else
            free(sub);
    }
    while (n)
        frame_free(&stack[--n]);
    free(stack);
    return err;
}

int kv_export(kv_run *r, const char *top, enum tar_filter filter,
              kv_write_fn write_fn, void *arg, struct kv_export_result *res)
{
    memset(res, 0, sizeof *res);
    struct tar_job job = {
        .kr = r, .top = top, .write_fn = write_fn, .arg = arg,
        .msg = res->error, .msgcap = sizeof res->error,
    };
    struct tar_job *j = &job;
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    j->buf = malloc(EXPORT_CHUNK);
    j->link = malloc(KV_SYMLINK_MAX + 1);
    bool compressed = false;
    if (!a || !ae || !j->buf || !j->link) {
        fail(j, ENOMEM, "starting", "the tarball");
        goto out;
    }
    archive_write_set_format_pax(a);
    /* Extended attributes as SCHILY.xattr only: GNU tar reads those
     * silently (it warns about LIBARCHIVE.xattr). */
    archive_write_set_format_option(a, "pax", "xattrheader", "SCHILY");
    if (filter == TAR_FILTER_GZIP) {
        archive_write_add_filter_gzip(a);
        /* No timestamp: the same tree gives the same bytes. */
        archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
        compressed = true;
    } else if (filter == TAR_FILTER_ZSTD) {
        archive_write_add_filter_zstd(a);
        compressed = true;
    }
    if (compressed)
        archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open2(a, j, NULL, job_write, NULL, NULL) != ARCHIVE_OK) {
        fail(j, EIO, "starting", "the tarball");
        goto out;
    }
    tar_tree(j, a, ae, kv_run_root(j->kr), j->top);
    if (archive_write_close(a) != ARCHIVE_OK)
        fail(j, archive_errno(a) > 0 ? archive_errno(a) : EIO, "finishing",
             "the tarball");
out:
    if (a)
        archive_write_free(a);
    if (ae)
        archive_entry_free(ae);
    free(j->buf);
    free(j->link);
    for (size_t i = 0; i < j->nhl; i++)
        free(j->hl[i].path);
    free(j->hl);
    res->files = j->files;
    return j->err;
}
