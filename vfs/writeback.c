/* writeback.c: writes changed runs back to the backend as new tarballs, streamed from kvstore through libarchive and uploaded with a version precondition; conflicts and dirty marks. */
#include "vfs/vfs_internal.h"
#include "fetch/fetch_s3.h"
#include "util/crashpt.h"
#include "util/log.h"
#include "util/tarsuffix.h"
#include "util/safefile.h"

#include <archive.h>
#include <openssl/evp.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define WB_CHUNK (256u * 1024u)
/* Longest wait between idle retries of a failing write-back. */
#define VFS_WB_BACKOFF_MAX_MS (3600 * 1000)

/* ---- dirty mark files ------------------------------------------------ */

static void mark_path(const char *meta_dir, const char *run, char *buf,
                      size_t cap)
{
    if (snprintf(buf, cap, "%s/dirty/%016llx", meta_dir,
                 (unsigned long long)vfs_hash_str(run)) >= (int)cap)
        buf[0] = '\0';
}

int vfs_dirty_mark_write(vfs *v, const char *run, int64_t since_ms,
                         const char *conflict, bool is_new)
{
    char path[PATH_MAX];
    mark_path(v->meta_dir, run, path, sizeof path);
    char buf[KV_RUNNAME_MAX + 1200];
    int n = snprintf(buf, sizeof buf, "since %lld\nconflict %s\nnew %d\n"
                     "run %s\n", (long long)since_ms, conflict ? conflict : "",
                     is_new ? 1 : 0, run);
    int err = n < 0 || (size_t)n >= sizeof buf ? EIO
              : safe_write_file(path, buf, (size_t)n, 0644, true);
    if (err) {
        log_error("vfs: cannot write dirty mark %s: %s", path, strerror(err));
    }
    return err;
}

void vfs_dirty_mark_remove(vfs *v, const char *run)
{
    char path[PATH_MAX];
    mark_path(v->meta_dir, run, path, sizeof path);
    unlink(path);
}

/* Copy a NUL-terminated field into out (cap bytes); false if it does not
 * fit (a damaged file), leaving out empty. */
static bool copy_field(char *out, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap) {
        out[0] = '\0';
        return false;
    }
    memcpy(out, v, n + 1);
    return true;
}

/* Parse a mark file: run name, since, conflict key.  Errors: ENOENT, EIO. */
static int mark_read(const char *path, char *run, size_t runcap,
                     int64_t *since, char *conflict, size_t ccap,
                     bool *is_new)
{
    if (is_new)
        *is_new = false;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? ENOENT : EIO;
    char line[KV_RUNNAME_MAX + 1200];
    bool have_run = false;
    *since = 0;
    if (conflict && ccap)
        conflict[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "since ", 6))
            *since = strtoll(line + 6, NULL, 10);
        else if (!strncmp(line, "new ", 4) && is_new)
            *is_new = line[4] == '1';
        else if (!strncmp(line, "conflict ", 9) && conflict && ccap)
            copy_field(conflict, ccap, line + 9);
        else if (!strncmp(line, "run ", 4)) {
            if (copy_field(run, runcap, line + 4))
                have_run = true;
        }
    }
    fclose(f);
    return have_run ? 0 : EIO;
}

int vfs_dirty_info(const char *cache_dir, const char *run,
                   struct timespec *since, char *conflict, size_t cap)
{
    if (!cache_dir || !run || vfs_check_run_name(run))
        return EINVAL;
    char meta[PATH_MAX], path[PATH_MAX], name[KV_RUNNAME_MAX + 1];
    snprintf(meta, sizeof meta, "%s/vfs", cache_dir);
    mark_path(meta, run, path, sizeof path);
    int64_t ms;
    int err = mark_read(path, name, sizeof name, &ms, conflict, cap, NULL);
    if (err)
        return ENOENT;
    if (strcmp(name, run) != 0)
        return ENOENT;
    since->tv_sec = ms / 1000;
    since->tv_nsec = (ms % 1000) * 1000000;
    return 0;
}

void vfs_writeback_scan(vfs *v)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/dirty", v->meta_dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strchr(de->d_name, '.'))
            continue;
        char path[PATH_MAX + 300], name[KV_RUNNAME_MAX + 1], conflict[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        int64_t since;
        bool is_new;
        if (mark_read(path, name, sizeof name, &since, conflict,
                      sizeof conflict, &is_new) || vfs_check_run_name(name))
            continue;
        pthread_mutex_lock(&v->lock);
        struct vfs_run *r = vfs_run_lookup_locked(v, name, true);
        if (r) {
            /* The run's metadata is the truth; the first write-back
             * attempt opens it and drops a mark the metadata denies. */
            r->dirty = true;
            r->dirty_since_ms = since;
            r->conflicted = conflict[0] != '\0';
            r->is_new = is_new;
            r->last_change_ms = 0;
        }
        pthread_mutex_unlock(&v->lock);
        log_info("vfs: run %s has changes not yet written back%s", name,
                 conflict[0] ? " (conflicted)" : "");
    }
    closedir(d);
}

/* ---- uploads left by a crash (S3 multipart, NAS temp files) ----------- */

struct orphan_scan {
    vfs *v;
    char **names;
    size_t n;
    unsigned aborted;
};

/* Is key the object (or a conflict copy) of one of the dirty runs? */
static bool key_of_dirty_run(const struct orphan_scan *os, const char *key)
{
    for (size_t i = 0; i < os->n; i++) {
        size_t nl = strlen(os->names[i]);
        if (strncmp(key, os->names[i], nl) != 0)
            continue;
        const char *rest = key + nl;
        if (!strncmp(rest, ".conflict-", 10))
            return true;
        size_t stem;
        if (tar_suffix_match(key, strlen(key), true, &stem) >= 0 &&
            stem == nl)
            return true;
    }
    return false;
}

static int abort_orphan_upload(void *arg, const char *key, const char *id)
{
    struct orphan_scan *os = arg;
    if (!key_of_dirty_run(os, key))
        return 0;
    int err = fetch_s3_abort_upload(os->v->backend, key, id);
    if (err && err != ENOENT)
        log_warn("vfs: cannot abort the unfinished upload of %s: %s", key,
                 strerror(err));
    else {
        os->aborted++;
        log_warn("vfs: aborted an unfinished multipart upload of %s left by "
                 "an interrupted write-back", key);
    }
    return 0;
}

void vfs_writeback_abort_orphans(vfs *v)
{
    if (!v->backend || v->cfg.read_only)
        return;
    struct orphan_scan os = { .v = v };
    size_t cap = 0;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next) {
            if (!r->dirty)
                continue;
            if (os.n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                char **nn = realloc(os.names, nc * sizeof *nn);
                if (!nn)
                    goto listed;
                os.names = nn;
                cap = nc;
            }
            if ((os.names[os.n] = strdup(r->name)))
                os.n++;
        }
listed:
    pthread_mutex_unlock(&v->lock);
    /* Only uploads to dirty runs' keys: those are ours (a crash during
     * their write-back), or another server's write-back of the same run,
     * which would end in a conflict anyway and is retried by it. */
    if (os.n) {
        int err = fetch_s3_list_uploads(v->backend, abort_orphan_upload, &os);
        if (err && err != EINVAL)
            log_warn("vfs: cannot list unfinished uploads: %s", strerror(err));
    }
    /* NAS: temp files of write-backs this host was doing when it died. */
    for (size_t i = 0; i < os.n; i++) {
        char key[KV_RUNNAME_MAX + 8];
        unsigned removed;
        snprintf(key, sizeof key, "%s.tar", os.names[i]);
        int err = fetch_sweep_temps(v->backend, key, &removed);
        if (err)
            log_warn("vfs: cannot sweep temp files next to %s: %s", key,
                     strerror(err));
        else if (removed)
            log_warn("vfs: removed %u temp file(s) next to %s left by an "
                     "interrupted write-back", removed, key);
    }
    for (size_t i = 0; i < os.n; i++)
        free(os.names[i]);
    free(os.names);
}

/* ---- the tar stream -------------------------------------------------- */

struct hl_entry { kv_ino ino; char *path; };

struct tar_job {
    kv_run *kr;
    const char *top;            /* member prefix: the run's last component */
    const char *key;            /* for the compression filter */
    int fd;                     /* write end of the socket pair */
    int err;
    char msg[512];
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
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(j->fd, (const char *)buf + done, len - done,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            archive_set_error(a, errno, "upload stopped reading");
            return -1;
        }
        done += (size_t)n;
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
        snprintf(j->msg, sizeof j->msg, "%s %s: %s", what, path,
                 strerror(err));
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

static const unsigned char wb_zeros[WB_CHUNK];

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
        size_t n = len < WB_CHUNK ? (size_t)len : WB_CHUNK;
        if (archive_write_data(a, wb_zeros, n) != (la_ssize_t)n)
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
            size_t got, want = dend - off < WB_CHUNK ? (size_t)(dend - off)
                                                       : WB_CHUNK;
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

/* The writer thread: the whole run as a pax tarball into j->fd. */
static void *tar_main(void *arg)
{
    struct tar_job *j = arg;
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    j->buf = malloc(WB_CHUNK);
    j->link = malloc(KV_SYMLINK_MAX + 1);
    bool compressed = false;
    if (!a || !ae || !j->buf || !j->link) {
        fail(j, ENOMEM, "starting", "the tarball");
        goto out;
    }
    archive_write_set_format_pax(a);
    int sx = tar_suffix_match(j->key, strlen(j->key), true, NULL);
    enum tar_filter filter = sx >= 0 ? tar_suffixes[sx].filter
                                     : TAR_FILTER_NONE;
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
        fail(j, EIO, "finishing", "the tarball");
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
    /* End of stream for the reader; a failure is told by j->err. */
    shutdown(j->fd, SHUT_WR);
    close(j->fd);
    return NULL;
}

struct pull_state {
    int fd;
    pthread_t thread;
    bool joined;
    struct tar_job *job;
    EVP_MD_CTX *md;             /* the body's SHA-256, when recording */
    uint64_t bytes;
};

/* The "wb-pending" metadata: "SHA256HEX SIZE" of the last tarball whose
 * upload to the run's own key got as far as its last byte.  Recorded (and
 * synced) before the backend makes the object visible, so after a crash
 * between that and recording the new version, the next write-back can tell
 * its own object (same SHA-256) from someone else's (a real conflict). */
#define WB_PENDING "wb-pending"

static int record_pending(struct pull_state *ps)
{
    unsigned char d[32];
    char val[96];
    if (!EVP_DigestFinal_ex(ps->md, d, NULL))
        return EIO;
    int n = 0;
    for (int i = 0; i < 32; i++)
        n += snprintf(val + n, sizeof val - (size_t)n, "%02x", d[i]);
    n += snprintf(val + n, sizeof val - (size_t)n, " %llu",
                  (unsigned long long)ps->bytes);
    int err = kv_run_setmeta(ps->job->kr, WB_PENDING, val, (size_t)n);
    if (!err)
        err = kv_run_sync(ps->job->kr);
    return err;
}

static ssize_t pull_tar(void *arg, void *buf, size_t cap)
{
    struct pull_state *ps = arg;
    for (;;) {
        ssize_t n = read(ps->fd, buf, cap);
        if (n > 0) {
            if (ps->md && !EVP_DigestUpdate(ps->md, buf, (size_t)n))
                return -EIO;
            ps->bytes += (uint64_t)n;
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        /* End of stream: complete only if the writer says so. */
        if (!ps->joined) {
            pthread_join(ps->thread, NULL);
            ps->joined = true;
        }
        if (ps->job->err)
            return -ps->job->err;
        int err = ps->md ? record_pending(ps) : 0;
        return err ? -err : 0;
    }
}

/* Upload run kr as key; with pending, record the body as WB_PENDING before
 * the backend publishes it.  Errors: fetch_put's (ECANCELED:
 * precondition), the tar writer's, ENOMEM. */
static int upload_run(vfs *v, kv_run *kr, const char *top, const char *key,
                      const struct fetch_put_opts *opts, bool pending,
                      struct fetch_objinfo *oi, uint64_t *files)
{
    int sv[2];
    EVP_MD_CTX *md = NULL;
    if (pending && (!(md = EVP_MD_CTX_new()) ||
                    !EVP_DigestInit_ex(md, EVP_sha256(), NULL))) {
        EVP_MD_CTX_free(md);
        return ENOMEM;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        EVP_MD_CTX_free(md);
        return errno;
    }
    struct tar_job job = { .kr = kr, .top = top, .key = key, .fd = sv[1] };
    struct pull_state ps = { .fd = sv[0], .job = &job, .md = md };
    int err = pthread_create(&ps.thread, NULL, tar_main, &job);
    if (err) {
        close(sv[0]);
        close(sv[1]);
        EVP_MD_CTX_free(md);
        return err;
    }
    err = fetch_put(v->backend, key, pull_tar, &ps, opts, oi);
    EVP_MD_CTX_free(md);
    /* Unblocks a writer still sending (the upload gave up early). */
    close(sv[0]);
    if (!ps.joined)
        pthread_join(ps.thread, NULL);
    /* A writer cut off because the upload gave up is not news. */
    if (job.err && !(err && job.err == EPIPE)) {
        log_error("vfs: writing run %s as a tarball failed: %s",
                  kv_run_name(kr), job.msg);
        if (!err)
            err = job.err;
    }
    *files = job.files;
    return err;
}

/* ---- write-back ------------------------------------------------------ */

static int set_meta_str(kv_run *kr, const char *k, const char *s)
{
    return kv_run_setmeta(kr, k, s, strlen(s));
}

/* SHA-256 (hex) of the whole object key, read from the backend, for an
 * object stored without one.  Errors: fetch_get's and fetch_read's, EIO. */
static int hash_object(vfs *v, const char *key, char hex[65])
{
    fetch_stream *st;
    int err = fetch_get(v->backend, key, 0, 0, &st);
    if (err)
        return err;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(WB_CHUNK);
    err = md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL) ? 0 : ENOMEM;
    ssize_t n;
    while (!err && (n = fetch_read(st, buf, WB_CHUNK)) != 0) {
        if (n < 0)
            err = (int)-n;
        else if (!EVP_DigestUpdate(md, buf, (size_t)n))
            err = EIO;
    }
    unsigned char d[32];
    if (!err && !EVP_DigestFinal_ex(md, d, NULL))
        err = EIO;
    for (int i = 0; !err && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    free(buf);
    EVP_MD_CTX_free(md);
    fetch_stream_close(st);
    return err;
}

/* After a precondition failure on key: is the object there the tarball
 * this server uploaded just before a crash (WB_PENDING: same size and
 * SHA-256)?  If so, record its version as the run's source, put it in
 * version (cap bytes) and return true: the run is that tarball plus later
 * changes, so the write-back goes on from it instead of a false conflict. */
static bool adopt_own_upload(vfs *v, kv_run *kr, const char *name,
                             const char *key, char *version, size_t cap)
{
    char val[96], want[65] = "", got[65] = "";
    size_t len = 0;
    unsigned long long size = 0;
    if (kv_run_getmeta(kr, WB_PENDING, val, sizeof val - 1, &len) != 0 ||
        len >= sizeof val)
        return false;
    val[len] = '\0';
    if (sscanf(val, "%64s %llu", want, &size) != 2 || strlen(want) != 64)
        return false;
    struct fetch_objinfo cur;
    if (fetch_stat(v->backend, key, &cur) != 0 || cur.size != size)
        return false;
    if (cur.sha256[0])
        snprintf(got, sizeof got, "%s", cur.sha256);
    else if (hash_object(v, key, got) != 0)
        return false;
    if (strcasecmp(got, want) != 0)
        return false;
    if (set_meta_str(kr, "source-version", cur.version) ||
        kv_run_set_source_version(kr, cur.version) || kv_run_sync(kr))
        return false;
    log_warn("vfs: run %s: %s (version %s) is this server's own write-back "
             "from before a crash (sha256 %s); writing back from it", name,
             key, cur.version, want);
    snprintf(version, cap, "%s", cur.version);
    return true;
}

/* How long an idle retry waits after the n-th failure in a row: the
 * write-back delay doubled n times, at most VFS_WB_BACKOFF_MAX_MS. */
static int64_t backoff_ms(const vfs *v, unsigned n)
{
    int64_t base = v->writeback_delay_ms == UINT_MAX ? VFS_WB_BACKOFF_MAX_MS
                                                     : v->writeback_delay_ms;
    int64_t wait = base;
    for (unsigned i = 0; i < n && wait < VFS_WB_BACKOFF_MAX_MS; i++)
        wait *= 2;
    return wait < VFS_WB_BACKOFF_MAX_MS ? wait : VFS_WB_BACKOFF_MAX_MS;
}

int vfs_writeback_run(vfs *v, const char *name, const char *reason)
{
    if (!v->backend || v->cfg.read_only)
        return EROFS;
    /* A write-back is no reference: LRU order and the eviction grace
     * must not see it. */
    pthread_mutex_lock(&v->lock);
    struct vfs_run *known = vfs_run_lookup_locked(v, name, false);
    int64_t last_ref = known ? known->last_ref_ms : 0;
    pthread_mutex_unlock(&v->lock);
    struct vfs_ref ref;
    int err = vfs_run_acquire(v, name, VFS_ACQ_NOFETCH, &ref);
    if (err) {
        /* A mark for a run no longer in the cache means nothing. */
        if (err == ENOENT) {
            pthread_mutex_lock(&v->lock);
            struct vfs_run *r = vfs_run_lookup_locked(v, name, false);
            bool dirty = r && r->dirty;
            if (r && !r->h)
                r->dirty = false;
            pthread_mutex_unlock(&v->lock);
            if (dirty)
                log_error("vfs: run %s was marked changed but is not in the "
                          "cache any more", name);
            vfs_dirty_mark_remove(v, name);
        }
        return err;
    }
    struct vfs_run *r = ref.run;
    pthread_mutex_lock(&v->lock);
    if (!known)
        last_ref = r->last_ref_ms;
    bool dirty = r->dirty, conflicted = r->conflicted, busy = r->writing_back;
    if (dirty && !conflicted && !busy)
        r->writing_back = true;
    pthread_mutex_unlock(&v->lock);
    if (!dirty) {
        vfs_dirty_mark_remove(v, name);
        vfs_run_release(v, &ref);
        return 0;
    }
    if (conflicted || busy) {
        vfs_run_release(v, &ref);
        return conflicted ? EBUSY : EAGAIN;
    }
    /* Changes wait while the run streams, so the tarball is exactly the
     * run at one moment; later changes go into the next write-back. */
    pthread_rwlock_wrlock(&r->change_lock);
    pthread_mutex_lock(&v->lock);
    uint64_t gen = r->change_gen;
    char key[1100], version[128];
    bool is_new = !r->key;
    if (r->key)
        snprintf(key, sizeof key, "%s", r->key);
    else
        snprintf(key, sizeof key, "%s.tar", name);
    snprintf(version, sizeof version, "%s", r->version);
    pthread_mutex_unlock(&v->lock);

    char prefix[KV_RUNNAME_MAX + 1];
    const char *top = vfs_split_name(name, prefix, sizeof prefix);
    struct fetch_put_opts opts;
    memset(&opts, 0, sizeof opts);
    if (is_new || !version[0])
        opts.if_none_match = true;
    else
        opts.if_match = version;
    struct fetch_objinfo oi;
    memset(&oi, 0, sizeof oi);
    uint64_t files = 0;
    int64_t t0 = vfs_mono_ms();
    kv_run *kr = ref.h->kr;
    err = upload_run(v, kr, top, key, &opts, true, &oi, &files);
    if (err == ECANCELED &&
        adopt_own_upload(v, kr, name, key, version, sizeof version)) {
        memset(&opts, 0, sizeof opts);
        opts.if_match = version;
        err = upload_run(v, kr, top, key, &opts, true, &oi, &files);
    }
    char conflict_key[1200] = "";
    if (err == ECANCELED) {
        /* Someone else replaced (or created) the object since we fetched
         * it: never overwrite it; keep both versions. */
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(conflict_key, sizeof conflict_key, "%s.conflict-%s-%s.tar",
                 name, v->hostname, stamp);
        struct fetch_put_opts co;
        memset(&co, 0, sizeof co);
        co.if_none_match = true;
        struct fetch_objinfo coi;
        int cerr = upload_run(v, kr, top, conflict_key, &co, false, &coi,
                              &files);
        if (cerr) {
            log_error("vfs: CONFLICT on run %s: %s changed in the backend "
                      "since it was fetched, and saving this server's "
                      "version as %s failed (%s); the run stays dirty and "
                      "is tried again", name, key, conflict_key,
                      strerror(cerr));
            err = EIO;
        } else {
            log_error("vfs: CONFLICT on run %s: %s changed in the backend "
                      "since it was fetched (expected version %s); NOT "
                      "overwritten.  This server's version was uploaded as "
                      "%s.  The run stays dirty until an operator runs "
                      "`tarnfs cache resolve %s`", name, key,
                      version[0] ? version : "(none: new run)", conflict_key,
                      name);
            if (kv_run_setmeta(kr, "conflict", conflict_key,
                               strlen(conflict_key)) == 0)
                kv_run_sync(kr);
            pthread_mutex_lock(&v->lock);
            r->conflicted = true;
            int64_t since = r->dirty_since_ms;
            bool was_new = r->is_new;
            pthread_mutex_unlock(&v->lock);
            vfs_dirty_mark_write(v, name, since, conflict_key, was_new);
        }
    } else if (err) {
        log_error("vfs: write-back of run %s to %s (%s) failed: %s; it stays "
                  "dirty and is tried again", name, key, reason,
                  strerror(err));
    } else {
        /* Record the new version first: a crash after it leaves a dirty
         * run whose next write-back matches the object it just wrote. */
        crash_point("wb-uploaded");
        int merr = set_meta_str(kr, "source-version", oi.version);
        if (!merr)
            merr = kv_run_set_source_version(kr, oi.version);
        crash_point("wb-version-recorded");
        if (!merr && is_new) {
            merr = kv_run_delmeta(kr, "new");
            if (merr == ENOENT)
                merr = 0;
        }
        pthread_mutex_lock(&v->lock);
        bool unchanged = r->change_gen == gen;
        pthread_mutex_unlock(&v->lock);
        if (!merr) {
            merr = kv_run_delmeta(kr, WB_PENDING);
            if (merr == ENOENT)
                merr = 0;
        }
        if (!merr && unchanged)
            merr = kv_run_delmeta(kr, "dirty");
        if (!merr)
            merr = kv_run_sync(kr);
        crash_point("wb-dirty-cleared");
        if (merr)
            log_error("vfs: run %s was written back but recording that "
                      "failed: %s", name, strerror(merr));
        pthread_mutex_lock(&v->lock);
        snprintf(r->version, sizeof r->version, "%s", oi.version);
        if (is_new) {
            free(r->key);
            r->key = strdup(key);
        }
        r->is_new = false;
        if (!merr && unchanged) {
            r->dirty = false;
            r->dirty_since_ms = 0;
        }
        pthread_mutex_unlock(&v->lock);
        if (!merr && unchanged)
            vfs_dirty_mark_remove(v, name);
        log_info("vfs: wrote back run %s as %s (%s): %llu members, %llu "
                 "bytes, version %s, sha256 %s, %lld ms", name, key, reason,
                 (unsigned long long)files, (unsigned long long)oi.size,
                 oi.version, oi.sha256,
                 (long long)(vfs_mono_ms() - t0));
        vfs_listings_expire(v);
    }
    pthread_rwlock_unlock(&r->change_lock);
    pthread_mutex_lock(&v->lock);
    r->writing_back = false;
    if (!err)
        v->stats.uploads++;
    else if (err == ECANCELED)
        v->stats.upload_conflicts++;
    else
        v->stats.upload_failures++;
    if (err) {
        /* Retried when idle, after a delay that doubles with every failure
         * in a row: a write-back that keeps failing is not a busy loop. */
        int64_t wait = backoff_ms(v, ++r->wb_failures);
        r->wb_retry_ms = vfs_mono_ms() + wait;
        if (err != ECANCELED)
            log_warn("vfs: write-back of run %s failed %u time(s) in a row; "
                     "next attempt in %lld s", name, r->wb_failures,
                     (long long)(wait / 1000));
    } else {
        r->wb_failures = 0;
        r->wb_retry_ms = 0;
    }
    pthread_mutex_unlock(&v->lock);
    vfs_run_release(v, &ref);
    pthread_mutex_lock(&v->lock);
    r->last_ref_ms = last_ref;
    pthread_mutex_unlock(&v->lock);
    return err;
}

int vfs_run_create_new(vfs *v, const char *name, uint32_t mode,
                       uint32_t uid, uint32_t gid)
{
    if (!v->backend || v->cfg.read_only)
        return EROFS;
    if (vfs_check_run_name(name))
        return EINVAL;
    char prefix[KV_RUNNAME_MAX + 1];
    const char *comp = vfs_split_name(name, prefix, sizeof prefix);
    struct vfs_listing *l;
    const struct vfs_entry *e;
    int err = vfs_listing_lookup(v, prefix, comp, &l, &e);
    if (err)
        return EIO;
    bool exists = e != NULL;
    vfs_listing_put(v, l);
    struct kv_runinfo ri;
    if (exists || kv_cache_runinfo(v->cache, name, &ri) == 0)
        return EEXIST;
    pthread_mutex_lock(&v->lock);
    struct vfs_run *r = vfs_run_lookup_locked(v, name, true);
    if (r && (r->is_new || r->loading || r->cached || r->h))
        err = EEXIST;
    else if (!r)
        err = ENOMEM;
    else
        r->loading = true;              /* keeps loads out meanwhile */
    pthread_mutex_unlock(&v->lock);
    if (err)
        return err;
    kv_run *kr;
    err = kv_run_stage(v->cache, name, kv_ino_for(name, ""), &kr);
    if (!err) {
        struct kv_sattr s = { .mask = KV_SET_MODE | KV_SET_UID | KV_SET_GID,
                              .mode = mode & 07777, .uid = uid, .gid = gid };
        err = kv_setattr(kr, kv_run_root(kr), &s, NULL);
        if (!err)
            err = kv_run_setmeta(kr, "new", "1", 1);
        if (!err)
            err = kv_run_publish(kr, "");
        if (err)
            kv_run_abort(kr);
        else
            kv_run_close(kr);
    }
    pthread_mutex_lock(&v->lock);
    r->loading = false;
    r->load_gen++;
    r->load_err = err ? EIO : 0;
    if (!err) {
        r->is_new = true;
        r->cached = true;
        free(r->key);
        r->key = NULL;
        r->version[0] = '\0';
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&v->lock);
    if (err) {
        log_error("vfs: cannot create run %s: %s", name, strerror(err));
        return err == ENOSPC ? ENOSPC : EIO;
    }
    log_info("vfs: created run %s; it becomes an object at its first "
             "write-back", name);
    vfs_listing_refresh_now(v, prefix);
    return 0;
}

/* ---- deleting and renaming whole runs (run_delete_rename) ------------- */

/* Drop the run of ref from the cache after its object went away (the
 * caller holds its change lock exclusively). */
static void forget_run(vfs *v, struct vfs_ref *ref)
{
    struct vfs_run *r = ref->run;
    kv_run_delmeta(ref->h->kr, "dirty");
    vfs_dirty_mark_remove(v, r->name);
    int err = kv_cache_evict(v->cache, r->name);
    if (err && err != ENOENT)
        log_error("vfs: cannot drop run %s from the cache: %s", r->name,
                  strerror(err));
    pthread_mutex_lock(&v->lock);
    r->dirty = r->conflicted = r->is_new = false;
    r->dirty_since_ms = 0;
    r->cached = false;
    r->version_stale = true;        /* the next use loads it again: gone */
    r->version[0] = '\0';
    pthread_mutex_unlock(&v->lock);
}

static int any_entry(void *arg, const struct kv_dirent *de)
{
    (void)arg;
    (void)de;
    return 1;
}

/* Pin run name (fetching it if needed), make it whole (a run streaming in
 * is waited for; with with_data, the absent data of an index-first run is
 * fetched) and lock it against changes; refuses a conflicted run.  Runs
 * in the NFS handler, which cannot park: this waits, as the upload that
 * follows does.  Errors: ENOENT, EACCES, EIO, ENOSPC. */
static int lock_whole_run(vfs *v, const char *name, const char *op,
                          bool with_data, struct vfs_ref *ref)
{
    int err = vfs_run_acquire(v, name, 0, ref);
    if (err)
        return err == EINVAL ? ENOENT : err;
    /* Until its stream ends a run's tree is partial: an RMDIR would find
     * it empty, a RENAME would upload part of it. */
    err = vfs_stream_wait_end(v, ref);
    if (!err && with_data)
        err = vfs_lazy_fill_run(v, ref);
    if (err) {
        vfs_run_release(v, ref);
        return err == EINPROGRESS || err == EAGAIN ? EIO : err;
    }
    pthread_rwlock_wrlock(&ref->run->change_lock);
    pthread_mutex_lock(&v->lock);
    bool conflicted = ref->run->conflicted;
    pthread_mutex_unlock(&v->lock);
    if (conflicted) {
        log_warn("vfs: refusing %s of run %s: it is in conflict (see "
                 "`tarnfs cache resolve`)", op, name);
        pthread_rwlock_unlock(&ref->run->change_lock);
        vfs_run_release(v, ref);
        return EACCES;
    }
    return 0;
}

static void unlock_whole_run(vfs *v, struct vfs_ref *ref)
{
    pthread_rwlock_unlock(&ref->run->change_lock);
    vfs_run_release(v, ref);
}

int vfs_run_delete(vfs *v, const char *name)
{
    if (!v->backend || v->cfg.read_only)
        return EROFS;
    struct vfs_ref ref;
    int err = lock_whole_run(v, name, "rmdir", false, &ref);
    if (err)
        return err;
    if (kv_readdir(ref.h->kr, ref.h->root, 0, any_entry, NULL) == 1) {
        unlock_whole_run(v, &ref);
        return ENOTEMPTY;
    }
    pthread_mutex_lock(&v->lock);
    char *key = ref.run->key ? strdup(ref.run->key) : NULL;
    pthread_mutex_unlock(&v->lock);
    if (key) {
        err = fetch_delete(v->backend, key);
        if (err == ENOENT)
            err = 0;
        if (err)
            log_error("vfs: RMDIR of run %s: cannot delete %s: %s", name, key,
                      strerror(err));
    }
    if (!err) {
        forget_run(v, &ref);
        log_warn("vfs: run %s deleted through NFS (RMDIR; object %s removed "
                 "because run_delete_rename is on)", name, key ? key : "-");
    }
    free(key);
    unlock_whole_run(v, &ref);
    char prefix[KV_RUNNAME_MAX + 1];
    vfs_split_name(name, prefix, sizeof prefix);
    vfs_listing_refresh_now(v, prefix);
    return err ? EIO : 0;
}

int vfs_run_rename(vfs *v, const char *from, const char *to)
{
    if (!v->backend || v->cfg.read_only)
        return EROFS;
    if (vfs_check_run_name(to))
        return EINVAL;
    if (!strcmp(from, to))
        return 0;
    char to_prefix[KV_RUNNAME_MAX + 1], from_prefix[KV_RUNNAME_MAX + 1];
    const char *to_comp = vfs_split_name(to, to_prefix, sizeof to_prefix);
    vfs_split_name(from, from_prefix, sizeof from_prefix);
    struct vfs_listing *l;
    const struct vfs_entry *e;
    if (vfs_listing_lookup(v, to_prefix, to_comp, &l, &e))
        return EIO;
    bool exists = e != NULL;
    vfs_listing_put(v, l);
    struct kv_runinfo ri;
    if (exists || kv_cache_runinfo(v->cache, to, &ri) == 0)
        return EEXIST;
    struct vfs_ref ref;
    int err = lock_whole_run(v, from, "rename", true, &ref);
    if (err)
        return err;
    pthread_mutex_lock(&v->lock);
    char *old_key = ref.run->key ? strdup(ref.run->key) : NULL;
    pthread_mutex_unlock(&v->lock);
    /* Keep the object's compression: NAME.tar.gz stays a .tar.gz. */
    const char *suffix = ".tar";
    if (old_key && strlen(old_key) > strlen(from) &&
        !strncmp(old_key, from, strlen(from)))
        suffix = old_key + strlen(from);
    char new_key[KV_RUNNAME_MAX + 32];
    snprintf(new_key, sizeof new_key, "%s%s", to, suffix);
    struct fetch_put_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.if_none_match = true;
    struct fetch_objinfo oi;
    uint64_t files = 0;
    err = upload_run(v, ref.h->kr, to_comp, new_key, &opts, false, &oi,
                     &files);
    if (err == ECANCELED) {
        err = EEXIST;
    } else if (err) {
        log_error("vfs: RENAME of run %s to %s: upload failed: %s", from, to,
                  strerror(err));
        err = EIO;
    } else {
        int derr = old_key ? fetch_delete(v->backend, old_key) : 0;
        if (derr && derr != ENOENT)
            log_error("vfs: RENAME of run %s to %s: %s was written but %s "
                      "could not be deleted (%s): both exist now", from, to,
                      new_key, old_key, strerror(derr));
        forget_run(v, &ref);
        log_warn("vfs: run %s renamed to %s through NFS (object %s written, "
                 "%s removed, because run_delete_rename is on)", from, to,
                 new_key, old_key ? old_key : "-");
    }
    free(old_key);
    unlock_whole_run(v, &ref);
    vfs_listing_refresh_now(v, from_prefix);
    if (strcmp(from_prefix, to_prefix))
        vfs_listing_refresh_now(v, to_prefix);
    return err;
}

char **vfs_dirty_runs(vfs *v, bool idle_only, size_t *n)
{
    int64_t now = vfs_mono_ms();
    size_t cap = 0;
    char **names = NULL;
    *n = 0;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next) {
            if (!r->dirty || r->conflicted || r->writing_back)
                continue;
            if (idle_only && (v->writeback_delay_ms == UINT_MAX ||
                              now - r->last_change_ms <
                                  (int64_t)v->writeback_delay_ms ||
                              now < r->wb_retry_ms))
                continue;
            if (*n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                char **nn = realloc(names, nc * sizeof *nn);
                if (!nn)
                    goto out;
                names = nn;
                cap = nc;
            }
            if ((names[*n] = strdup(r->name)))
                (*n)++;
        }
out:
    pthread_mutex_unlock(&v->lock);
    return names;
}

void vfs_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

void vfs_writeback_all(vfs *v, const char *reason)
{
    size_t n;
    char **names = vfs_dirty_runs(v, false, &n);
    for (size_t i = 0; i < n; i++)
        vfs_writeback_run(v, names[i], reason);
    vfs_free_names(names, n);
}

bool vfs_writeback_for_eviction(vfs *v)
{
    if (!v->backend || v->cfg.read_only)
        return false;
    char *name = NULL;
    pthread_mutex_lock(&v->lock);
    struct vfs_run *best = NULL;
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
            if (r->cached && r->dirty && !r->conflicted && !r->writing_back &&
                !r->pins && (!best || r->last_ref_ms < best->last_ref_ms))
                best = r;
    if (best)
        name = strdup(best->name);
    pthread_mutex_unlock(&v->lock);
    if (!name)
        return false;
    int err = vfs_writeback_run(v, name, "chosen for eviction");
    free(name);
    return err == 0;
}

void vfs_writeback_tick(vfs *v)
{
    size_t n;
    char **names = vfs_dirty_runs(v, true, &n);
    for (size_t i = 0; i < n; i++)
        vfs_writeback_run(v, names[i], "idle");
    vfs_free_names(names, n);
}
