/* ingest.c: kv_ingest(), streaming a tar archive from a read callback through libarchive into a new, atomically published run; and the member placement core it shares with kv_ingest_index. */
/*
 * Parts, in order:
 *   1. filter registration (built-in decompressors only, never programs)
 *   2. the ingest context and its error reporting
 *   3. member path normalisation and the hostile-path checks
 *   4. the top-directory decision ("strip") and the un-strip move
 *   5. parent resolution with a per-ingest cache of the last parent chain
 *   6. one handler per member kind (ingest_place: the shared core), then
 *      the tar loop
 */
#include "kvstore/ingest_internal.h"
#include "kvstore/kv_internal.h"
#include "kvstore/tarindex.h"
#include "util/crashpt.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* libarchive gets this much input per callback; big reads keep the
 * per-call overhead of decompressors and of read_fn low. */
#define INGEST_READ_BUF (1024 * 1024)
/* What one node costs against the byte budget: what kvstore counts for an
 * inode in bytes_used (KV_INODE_COST). */
#define INGEST_NODE_COST 256

/* ---- 1. filters ------------------------------------------------------- */

/* libarchive silently falls back to fork/exec of an external program when
 * a decompressor was not compiled in (it reports that with ARCHIVE_WARN).
 * We probe each filter once and register only the built-in ones, so an
 * unusual libarchive build fails with "unrecognised format" instead of
 * spawning processes. */
typedef int (*filter_register_fn)(struct archive *);

static const filter_register_fn ingest_filters[] = {
    archive_read_support_filter_gzip,
    archive_read_support_filter_bzip2,
    archive_read_support_filter_xz,
    archive_read_support_filter_lzma,
    archive_read_support_filter_zstd,
};
#define N_INGEST_FILTERS (sizeof ingest_filters / sizeof ingest_filters[0])

static bool filter_builtin[N_INGEST_FILTERS];
static pthread_once_t filter_probe_once = PTHREAD_ONCE_INIT;

static void probe_builtin_filters(void)
{
    for (size_t i = 0; i < N_INGEST_FILTERS; i++) {
        struct archive *a = archive_read_new();
        if (!a)
            continue;
        filter_builtin[i] = ingest_filters[i](a) == ARCHIVE_OK;
        archive_read_free(a);
    }
}

static void register_builtin_filters(struct archive *a)
{
    pthread_once(&filter_probe_once, probe_builtin_filters);
    for (size_t i = 0; i < N_INGEST_FILTERS; i++)
        if (filter_builtin[i])
            ingest_filters[i](a);
}

/* ---- 2. context -------------------------------------------------------- */

/* A directory whose own member was seen: its times are applied at the end,
 * because creating its children would bump its mtime again. */
struct dir_times {
    kv_ino ino;
    struct timespec atime, mtime;
};

struct ingest {
    kv_cache *cache;
    const char *name;           /* run name */
    const char *top;            /* last component of name: the strip candidate */
    size_t toplen;
    kv_run *run;
    struct archive *ar;
    struct kv_ingest_result *res;

    kv_read_fn read_fn;
    void *read_arg;
    unsigned char *readbuf;
    int read_errno;             /* read_fn failed with this */
    bool input_eof;             /* read_fn returned 0 */
    uint64_t input_bytes;

    /* Strip state: true while every member so far lies under top/ (or is
     * top itself); their paths are then stored relative to top. */
    bool strip;
    uint64_t members;
    bool root_from_top;         /* the root carries top/'s own attributes */

    /* Cached chain of the last parent directory resolved: path (relative
     * to the run root) and the inode of each of its prefixes. */
    char *pc_path;
    size_t pc_len, pc_cap;
    kv_ino *pc_ino;             /* pc_ino[i] = inode after component i */
    size_t *pc_end;             /* pc_end[i] = end offset of component i */
    size_t pc_n, pc_ncap;

    struct dir_times *dt;
    size_t dt_n, dt_cap;

    uid_t default_uid;
    gid_t default_gid;

    uint64_t budget;            /* bytes the run may take; 0: no limit */

    /* Streaming (kv_ingest_stream): told about each member as it lands;
     * the run is handed to the caller at the end instead of being closed
     * or discarded here, since other threads read it meanwhile. */
    const struct kv_ingest_watch *watch;
    kv_run **keep;
    kv_ino last_ino;            /* the node the last member made or named */
    bool announced;             /* watch->staged was called */
};

/* Record the first error only: later ones are consequences of it. */
static int ingest_vfail(struct ingest *in, int err, const char *member,
                        const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static int ingest_vfail(struct ingest *in, int err, const char *member,
                        const char *fmt, va_list ap)
{
    if (in->res->error[0] != '\0')
        return err;
    char what[384];
    vsnprintf(what, sizeof what, fmt, ap);
    if (member)
        snprintf(in->res->error, sizeof in->res->error, "member '%.100s': %s",
                 member, what);
    else
        snprintf(in->res->error, sizeof in->res->error, "%s", what);
    return err;
}

int ingest_error(struct ingest *in, int err, const char *member,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err = ingest_vfail(in, err, member, fmt, ap);
    va_end(ap);
    return err;
}

#define ingest_fail ingest_error

/* ENOSPC, with a clear message, if storing more bytes of data (plus the
 * nodes made so far) would take the run past its budget: checked as the
 * archive is read, so a decompression bomb stops at the budget instead of
 * filling the disk (issue 12, finding 12). */
static int ingest_charge(struct ingest *in, uint64_t more, const char *member)
{
    if (!in->budget)
        return 0;
    const struct kv_ingest_result *r = in->res;
    uint64_t nodes = r->files + r->dirs + r->symlinks + r->others;
    uint64_t used = r->bytes + nodes * INGEST_NODE_COST;
    if (used <= in->budget && more <= in->budget - used)
        return 0;
    return ingest_fail(in, ENOSPC, member,
                       "the run needs more than the %llu bytes the cache may "
                       "still take (cache limit); stopped after %llu bytes "
                       "of data in %llu files",
                       (unsigned long long)in->budget,
                       (unsigned long long)r->bytes,
                       (unsigned long long)r->files);
}

static la_ssize_t ingest_read_cb(struct archive *a, void *arg,
                                 const void **buf)
{
    struct ingest *in = arg;
    ssize_t n = in->read_fn(in->read_arg, in->readbuf, INGEST_READ_BUF);
    if (n < 0) {
        in->read_errno = (int)-n;
        archive_set_error(a, (int)-n, "reading the archive failed: %s",
                          strerror((int)-n));
        return -1;
    }
    if (n == 0)
        in->input_eof = true;
    in->input_bytes += (uint64_t)n;
    *buf = in->readbuf;
    return n;
}

/* Turn a libarchive failure into an errno and a message naming member:
 * our read callback's error wins, input that ended early is truncation
 * (EIO), anything else is a corrupt archive (EBADMSG). */
static int archive_failure(struct ingest *in, const char *member,
                           const char *doing)
{
    const char *why = archive_error_string(in->ar);
    if (!why)
        why = "unknown libarchive error";
    if (in->read_errno)
        return ingest_fail(in, EIO, member, "%s: %s", doing, why);
    if (in->input_eof)
        return ingest_fail(in, EIO, member, "%s: archive is truncated (%s)",
                           doing, why);
    return ingest_fail(in, EBADMSG, member, "%s: corrupt archive (%s)",
                       doing, why);
}

/* ---- 3. paths ---------------------------------------------------------- */

/* Normalise a member path in place: drop "./" and empty components and
 * trailing slashes.  Absolute paths and ".." components are refused
 * (EBADMSG) rather than rewritten, so a hostile archive never lands
 * anywhere its author did not plainly say.  "" means the archive root. */
static int normalise_member_path(char *p)
{
    if (p[0] == '/')
        return EBADMSG;
    char *out = p;
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 1 && s[0] == '.') {
            s += len;
            continue;
        }
        if (len == 2 && s[0] == '.' && s[1] == '.')
            return EBADMSG;
        if (out != p)
            *out++ = '/';
        memmove(out, s, len);
        out += len;
        s += len;
    }
    *out = '\0';
    return 0;
}

/* Where a normalised archive path goes, relative to the run root, given
 * the current strip state: "top/x" -> "x", "top" -> "". */
static const char *run_relative(const struct ingest *in, const char *p)
{
    if (!in->strip)
        return p;
    if (strcmp(p, in->top) == 0)
        return p + in->toplen;
    return p + in->toplen + 1;
}

static bool under_top(const struct ingest *in, const char *p)
{
    return strncmp(p, in->top, in->toplen) == 0 &&
           (p[in->toplen] == '\0' || p[in->toplen] == '/');
}

/* ---- 4. strip / un-strip ---------------------------------------------- */

static void path_cache_reset(struct ingest *in)
{
    in->pc_len = 0;
    in->pc_n = 0;
    if (in->pc_path)
        in->pc_path[0] = '\0';
}

struct name_list {
    char **names;
    size_t n, cap;
    int err;
};

static int collect_name(void *arg, const struct kv_dirent *de)
{
    struct name_list *nl = arg;
    if (nl->n == nl->cap) {
        size_t cap = nl->cap ? nl->cap * 2 : 64;
        char **nn = realloc(nl->names, cap * sizeof *nn);
        if (!nn) {
            nl->err = ENOMEM;
            return 1;
        }
        nl->names = nn;
        nl->cap = cap;
    }
    nl->names[nl->n] = strndup(de->name, de->namelen);
    if (!nl->names[nl->n]) {
        nl->err = ENOMEM;
        return 1;
    }
    nl->n++;
    return 0;
}

static void name_list_free(struct name_list *nl)
{
    for (size_t i = 0; i < nl->n; i++)
        free(nl->names[i]);
    free(nl->names);
}

/* A member outside top/ arrived after members we placed as if top/ were
 * the root: move everything made so far into a real top directory.  A
 * temporary name avoids clashing with an entry that is itself called top
 * (from "top/top/..."). */
static int unstrip(struct ingest *in, const char *member)
{
    kv_ino root = kv_run_root(in->run);
    struct name_list nl = { 0 };
    int err = kv_readdir(in->run, root, 0, collect_name, &nl);
    if (!err)
        err = nl.err;
    if (err) {
        name_list_free(&nl);
        return ingest_fail(in, err, member, "listing the run root: %s",
                           strerror(err));
    }

    char tmpname[64];
    kv_ino topdir = 0;
    struct kv_attr rootattr;
    err = kv_getattr(in->run, root, &rootattr);
    for (unsigned i = 0; !err; i++) {
        snprintf(tmpname, sizeof tmpname, ".tarnfs-unstrip-%u", i);
        struct kv_newnode nn = {
            .mode = in->root_from_top ? rootattr.mode
                                      : (uint32_t)(S_IFDIR | 0755),
            .uid = in->root_from_top ? rootattr.uid : in->default_uid,
            .gid = in->root_from_top ? rootattr.gid : in->default_gid,
            .ino_hint = kv_ino_for(in->name, in->top),
        };
        struct kv_attr a;
        err = kv_mknode(in->run, root, tmpname, &nn, &a);
        if (err == EEXIST) {
            err = 0;
            continue;
        }
        if (!err)
            topdir = a.ino;
        break;
    }
    for (size_t i = 0; !err && i < nl.n; i++)
        err = kv_rename(in->run, root, nl.names[i], topdir, nl.names[i]);
    if (!err)
        err = kv_rename(in->run, root, tmpname, root, in->top);
    name_list_free(&nl);
    if (!err && in->root_from_top) {
        /* top/'s attributes move with it; the root returns to defaults. */
        struct kv_sattr s = {
            .mask = KV_SET_MODE | KV_SET_UID | KV_SET_GID,
            .mode = 0755, .uid = in->default_uid, .gid = in->default_gid,
        };
        err = kv_setattr(in->run, root, &s, NULL);
        for (size_t i = 0; i < in->dt_n; i++)
            if (in->dt[i].ino == root)
                in->dt[i].ino = topdir;
        in->root_from_top = false;
    }
    if (err)
        return ingest_fail(in, err, member,
                           "moving earlier members under '%s': %s", in->top,
                           strerror(err));
    in->strip = false;
    path_cache_reset(in);
    if (in->watch && in->watch->placed)
        in->watch->placed(in->watch->arg, in->top, topdir);
    return 0;
}

/* Update the strip decision for a new member (path already normalised). */
static int decide_strip(struct ingest *in, const char *path, bool is_dir,
                        const char *member)
{
    in->members++;
    if (!in->strip)
        return 0;
    bool stays = under_top(in, path) && (path[in->toplen] == '/' || is_dir);
    if (stays)
        return 0;
    if (in->members == 1) {
        in->strip = false;      /* nothing placed yet: nothing to move */
        return 0;
    }
    return unstrip(in, member);
}

/* ---- 5. parent resolution --------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 16;
    while (cap2 < need)
        cap2 *= 2;
    void *np = realloc(*p, cap2 * elem);
    if (!np)
        return ENOMEM;
    *p = np;
    *cap = cap2;
    return 0;
}

/* The inode number member e (at relpath) asks for: the one its tarball
 * kept (a node created or renamed over NFS, written back), if valid, else
 * the one its path gives.  Either way only a hint: kv_mknode takes the
 * next free number if it is taken. */
static kv_ino member_ino(const struct ingest *in, const struct ingest_member *e,
                         const char *relpath)
{
    if (e->ino >= KV_MIN_INO && e->ino <= KV_MAX_INO)
        return e->ino;
    return kv_ino_for(in->name, relpath);
}

/* Make a directory that a member needs but whose own member has not come
 * (yet): tar -xf gives such directories default attributes too. */
static int make_implicit_dir(struct ingest *in, kv_ino parent,
                             const char *name, const char *relpath,
                             kv_ino *out)
{
    struct kv_newnode nn = {
        .mode = S_IFDIR | 0755,
        .uid = in->default_uid,
        .gid = in->default_gid,
        .ino_hint = kv_ino_for(in->name, relpath),
    };
    struct kv_attr a;
    int err = kv_mknode(in->run, parent, name, &nn, &a);
    if (!err) {
        *out = a.ino;
        in->res->dirs++;
    }
    return err;
}

/* Resolve the directory dirpath (relative to the run root, "" = root),
 * creating missing components.  Reuses the longest prefix shared with the
 * previous call: tar members usually come grouped by directory. */
static int resolve_dir(struct ingest *in, const char *dirpath, kv_ino *out,
                       const char *member)
{
    size_t len = strlen(dirpath);
    size_t keep = 0;                    /* components reused from cache */
    while (keep < in->pc_n) {
        size_t end = in->pc_end[keep];
        if (end > len || memcmp(in->pc_path, dirpath, end) != 0 ||
            (dirpath[end] != '\0' && dirpath[end] != '/'))
            break;
        keep++;
    }
    int err = grow((void **)&in->pc_path, &in->pc_cap, len + 1, 1);
    if (err)
        return ingest_fail(in, err, member, "out of memory");
    memcpy(in->pc_path, dirpath, len + 1);
    in->pc_len = len;
    in->pc_n = keep;

    kv_ino cur = keep ? in->pc_ino[keep - 1] : kv_run_root(in->run);
    size_t pos = keep ? in->pc_end[keep - 1] : 0;
    char comp[KV_NAME_MAX + 1];
    while (pos < len) {
        if (in->pc_path[pos] == '/')
            pos++;
        const char *s = in->pc_path + pos;
        const char *e = strchr(s, '/');
        size_t clen = e ? (size_t)(e - s) : strlen(s);
        if (clen > KV_NAME_MAX) {
            path_cache_reset(in);
            return ingest_fail(in, ENAMETOOLONG, member,
                               "a path component is longer than %d bytes",
                               KV_NAME_MAX);
        }
        memcpy(comp, s, clen);
        comp[clen] = '\0';
        kv_ino next;
        err = kv_lookup(in->run, cur, comp, &next);
        if (err == ENOENT) {
            char saved = in->pc_path[pos + clen];
            in->pc_path[pos + clen] = '\0';
            err = make_implicit_dir(in, cur, comp, in->pc_path, &next);
            in->pc_path[pos + clen] = saved;
        }
        if (!err) {
            struct kv_attr a;
            err = kv_getattr(in->run, next, &a);
            if (!err && !S_ISDIR(a.mode))
                err = ENOTDIR;
        }
        if (err) {
            path_cache_reset(in);
            if (err == ENOTDIR)
                return ingest_fail(in, EBADMSG, member,
                                   "'%.*s' is in the way: not a directory",
                                   (int)(pos + clen), dirpath);
            return ingest_fail(in, err, member, "making parent '%.*s': %s",
                               (int)(pos + clen), dirpath, strerror(err));
        }
        err = grow((void **)&in->pc_ino, &in->pc_ncap, in->pc_n + 1,
                   sizeof *in->pc_ino);
        if (!err) {
            size_t cap = in->pc_ncap;   /* pc_end follows pc_ino's capacity */
            in->pc_end = realloc(in->pc_end, cap * sizeof *in->pc_end);
            if (!in->pc_end)
                err = ENOMEM;
        }
        if (err) {
            path_cache_reset(in);
            return ingest_fail(in, err, member, "out of memory");
        }
        in->pc_ino[in->pc_n] = next;
        in->pc_end[in->pc_n] = pos + clen;
        in->pc_n++;
        cur = next;
        pos += clen;
    }
    *out = cur;
    return 0;
}

/* Split relpath into its parent directory (resolved/created) and leaf. */
static int resolve_parent(struct ingest *in, char *relpath, kv_ino *parent,
                          const char **leaf, const char *member)
{
    char *slash = strrchr(relpath, '/');
    int err;
    if (slash) {
        *slash = '\0';
        err = resolve_dir(in, relpath, parent, member);
        *slash = '/';
        *leaf = slash + 1;
    } else {
        err = resolve_dir(in, "", parent, member);
        *leaf = relpath;
    }
    if (!err && strlen(*leaf) > KV_NAME_MAX)
        return ingest_fail(in, ENAMETOOLONG, member,
                           "name is longer than %d bytes", KV_NAME_MAX);
    return err;
}

/* Look a path (relative to the run root) up without creating anything. */
static int lookup_path(struct ingest *in, const char *relpath, kv_ino *out)
{
    kv_ino cur = kv_run_root(in->run);
    const char *s = relpath;
    char comp[KV_NAME_MAX + 1];
    while (*s) {
        const char *e = strchr(s, '/');
        size_t clen = e ? (size_t)(e - s) : strlen(s);
        if (clen > KV_NAME_MAX)
            return ENAMETOOLONG;
        memcpy(comp, s, clen);
        comp[clen] = '\0';
        int err = kv_lookup(in->run, cur, comp, &cur);
        if (err)
            return err;
        s += clen;
        if (*s == '/')
            s++;
    }
    *out = cur;
    return 0;
}

/* ---- 6. members -------------------------------------------------------- */

/* Make room for a member at parent/leaf: tar's "last one wins" means an
 * existing non-directory is replaced; an existing directory stays when the
 * new member is a directory too (its attributes are updated), and may be
 * replaced only if empty.  *existing_dir receives a directory kept. */
static int clear_target(struct ingest *in, kv_ino parent, const char *leaf,
                        bool new_is_dir, kv_ino *existing_dir,
                        const char *member)
{
    kv_ino old;
    *existing_dir = 0;
    int err = kv_lookup(in->run, parent, leaf, &old);
    if (err == ENOENT)
        return 0;
    if (err)
        return ingest_fail(in, err, member, "lookup: %s", strerror(err));
    struct kv_attr a;
    err = kv_getattr(in->run, old, &a);
    if (err)
        return ingest_fail(in, err, member, "getattr: %s", strerror(err));
    if (S_ISDIR(a.mode)) {
        if (new_is_dir) {
            *existing_dir = old;
            return 0;
        }
        err = kv_rmdir(in->run, parent, leaf);
        path_cache_reset(in);
        if (err == ENOTEMPTY)
            return ingest_fail(in, EBADMSG, member,
                               "would replace a non-empty directory");
    } else {
        /* An index member's absent data goes with its last link. */
        if (a.nlink <= 1)
            err = kv_absent_drop(in->run, old);
        if (!err)
            err = kv_unlink(in->run, parent, leaf);
    }
    if (err)
        return ingest_fail(in, err, member, "replacing an earlier member: %s",
                           strerror(err));
    return 0;
}

static int remember_dir_times(struct ingest *in, kv_ino ino,
                              const struct ingest_member *e)
{
    int err = grow((void **)&in->dt, &in->dt_cap, in->dt_n + 1, sizeof *in->dt);
    if (err)
        return err;
    in->dt[in->dt_n].ino = ino;
    in->dt[in->dt_n].atime = e->atime;
    in->dt[in->dt_n].mtime = e->mtime;
    in->dt_n++;
    return 0;
}

static int ingest_dir(struct ingest *in, const struct ingest_member *e,
                      char *relpath, const char *member)
{
    struct kv_sattr s = {
        .mask = KV_SET_MODE | KV_SET_UID | KV_SET_GID,
        .mode = e->mode & 07777,
        .uid = e->uid,
        .gid = e->gid,
    };
    kv_ino ino;
    int err;
    if (relpath[0] == '\0') {
        /* The run root itself: "top/" when stripping, or "./". */
        ino = kv_run_root(in->run);
        in->root_from_top = in->strip;
    } else {
        kv_ino parent, existing;
        const char *leaf;
        err = resolve_parent(in, relpath, &parent, &leaf, member);
        if (err)
            return err;
        struct kv_newnode nn = {
            .mode = S_IFDIR | s.mode,
            .uid = s.uid,
            .gid = s.gid,
            .ino_hint = member_ino(in, e, relpath),
            .has_times = true,      /* seen at once while it streams */
            .atime = e->atime,
            .mtime = e->mtime,
        };
        struct kv_attr a;
        /* Create first and look only on a clash: duplicates are rare, so
         * this saves a lookup per member. */
        err = kv_mknode(in->run, parent, leaf, &nn, &a);
        existing = 0;
        if (err == EEXIST) {
            err = clear_target(in, parent, leaf, true, &existing, member);
            if (err)
                return err;
            if (!existing)
                err = kv_mknode(in->run, parent, leaf, &nn, &a);
        }
        if (existing) {
            ino = existing;
        } else {
            if (err)
                return ingest_fail(in, err, member, "mkdir: %s",
                                   strerror(err));
            in->res->dirs++;
            in->last_ino = a.ino;
            if (remember_dir_times(in, a.ino, e))
                return ingest_fail(in, ENOMEM, member, "out of memory");
            return 0;
        }
    }
    /* The root, or a directory made earlier for a member under it: its
     * own attributes now, times included (applied again at the end). */
    s.mask |= KV_SET_ATIME | KV_SET_MTIME;
    s.atime = e->atime;
    s.mtime = e->mtime;
    err = kv_setattr(in->run, ino, &s, NULL);
    if (err)
        return ingest_fail(in, err, member, "setting attributes: %s",
                           strerror(err));
    in->last_ino = ino;
    err = remember_dir_times(in, ino, e);
    if (err)
        return ingest_fail(in, err, member, "out of memory");
    return 0;
}

/* Restore the member's ctime when the archive carries one (pax): kv_mknode
 * takes atime and mtime but not ctime.  The appender keeps the times given
 * at creation (kvstore/data.c; the ingest tests check file mtimes after
 * data), so data need no second setattr. */
static int restore_times(struct ingest *in, kv_ino ino,
                         const struct ingest_member *e, const char *member)
{
    struct kv_sattr s = { 0 };
    if (e->has_ctime) {
        s.mask |= KV_SET_CTIME;
        s.ctime = e->ctime;
    }
    if (!s.mask)
        return 0;
    int err = kv_setattr(in->run, ino, &s, NULL);
    if (err)
        return ingest_fail(in, err, member, "setting times: %s",
                           strerror(err));
    return 0;
}

/* Copy the member's data (with holes for sparse members) into ino. */
static int ingest_data(struct ingest *in, const struct ingest_member *e,
                       kv_ino ino, const char *member)
{
    int64_t size = e->size;
    if (size < 0)
        return ingest_fail(in, EBADMSG, member, "negative size");
    kv_appender *ap;
    int err = kv_append_begin(in->run, ino, &ap);
    if (err)
        return ingest_fail(in, err, member, "starting data: %s",
                           strerror(err));
    uint64_t pos = 0;
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(in->ar, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            kv_append_end(ap);
            return archive_failure(in, member, "reading data");
        }
        if (off < 0 || (uint64_t)off < pos) {
            kv_append_end(ap);
            return ingest_fail(in, EBADMSG, member,
                               "data blocks out of order (corrupt archive)");
        }
        if ((uint64_t)off > pos) {
            err = kv_append_hole(ap, (uint64_t)off - pos);
            pos = (uint64_t)off;
        }
        if (!err && len > 0) {
            err = ingest_charge(in, len, member);
            if (err) {
                kv_append_end(ap);
                return err;
            }
            err = kv_append(ap, buf, len);
        }
        if (err) {
            kv_append_end(ap);
            return ingest_fail(in, err, member, "storing data: %s",
                               strerror(err));
        }
        pos += len;
        in->res->bytes += len;
    }
    /* A sparse member may end in a hole. */
    if ((uint64_t)size > pos)
        err = kv_append_hole(ap, (uint64_t)size - pos);
    int err2 = kv_append_end(ap);
    if (!err)
        err = err2;
    if (err)
        return ingest_fail(in, err, member, "finishing data: %s",
                           strerror(err));
    return 0;
}

static int ingest_hardlink(struct ingest *in, const struct ingest_member *e,
                           char *relpath, const char *member)
{
    const char *target_raw = e->hardlink;
    char *target = strdup(target_raw);
    if (!target)
        return ingest_fail(in, ENOMEM, member, "out of memory");
    int err = normalise_member_path(target);
    if (err) {
        free(target);
        return ingest_fail(in, EBADMSG, member,
                           "hard link target '%.100s' is absolute or has a "
                           "'..' component", target_raw);
    }
    const char *trel = NULL;
    if (!in->strip)
        trel = target;
    else if (under_top(in, target) && target[in->toplen] == '/')
        trel = run_relative(in, target);
    kv_ino tino = 0;
    err = trel && trel[0] ? lookup_path(in, trel, &tino) : ENOENT;
    if (err) {
        ingest_fail(in, EBADMSG, member,
                    "hard link to '%.100s', which is not an earlier member",
                    target_raw);
        free(target);
        return EBADMSG;
    }
    free(target);
    struct kv_attr ta;
    err = kv_getattr(in->run, tino, &ta);
    if (!err && S_ISDIR(ta.mode))
        return ingest_fail(in, EBADMSG, member,
                           "hard link to a directory ('%.100s')", target_raw);
    if (err)
        return ingest_fail(in, err, member, "getattr of link target: %s",
                           strerror(err));

    kv_ino parent, existing;
    const char *leaf;
    err = resolve_parent(in, relpath, &parent, &leaf, member);
    if (err)
        return err;
    kv_ino old;
    in->last_ino = tino;
    if (kv_lookup(in->run, parent, leaf, &old) == 0 && old == tino)
        return 0;               /* already that very file */
    err = clear_target(in, parent, leaf, false, &existing, member);
    if (err)
        return err;
    err = kv_link(in->run, tino, parent, leaf);
    if (err)
        return ingest_fail(in, err, member, "link: %s", strerror(err));
    in->last_ino = tino;
    in->res->hardlinks++;
    return 0;
}

static int ingest_node(struct ingest *in, const struct ingest_member *e,
                       char *relpath, const char *member)
{
    uint32_t mode = e->mode;
    kv_ino parent, existing;
    const char *leaf;
    if (relpath[0] == '\0')
        return ingest_fail(in, EBADMSG, member,
                           "a non-directory member names the archive root");
    int err = resolve_parent(in, relpath, &parent, &leaf, member);
    if (err)
        return err;

    struct kv_newnode nn = {
        .mode = mode,
        .uid = e->uid,
        .gid = e->gid,
        .ino_hint = member_ino(in, e, relpath),
        .has_times = true,
        .atime = e->atime,
        .mtime = e->mtime,
    };
    switch (mode & S_IFMT) {
    case S_IFLNK: {
        const char *t = e->symlink;
        size_t tl = t ? strlen(t) : 0;
        if (tl == 0 || tl > KV_SYMLINK_MAX)
            return ingest_fail(in, EBADMSG, member,
                               "symlink target is empty or longer than %d",
                               KV_SYMLINK_MAX);
        nn.symlink_target = t;
        break;
    }
    case S_IFCHR:
    case S_IFBLK:
        nn.rdev = e->rdev;
        break;
    case S_IFREG:
    case S_IFIFO:
    case S_IFSOCK:
        break;
    default:
        return ingest_fail(in, EBADMSG, member, "unknown file type 0%o",
                           mode & S_IFMT);
    }
    /* A member of an index is made with its size and absent data in one
     * step (five Kyoto Cabinet calls fewer than setting them after). */
    struct kv_absent_spec absent;
    if (S_ISREG(mode) && e->absent) {
        if (e->size < 0)
            return ingest_fail(in, EBADMSG, member, "negative size");
        if (e->size > 0) {
            absent = (struct kv_absent_spec){
                .size = (uint64_t)e->size, .member = member,
                .data_off = e->data_off, .nchunks = e->nsums, .crcs = e->sums,
            };
            if (!kv_absent_spec_ok(&absent))
                return ingest_fail(in, EBADMSG, member,
                                   "recording absent data: %s", strerror(EINVAL));
            nn.absent = &absent;
        }
    }
    struct kv_attr a;
    /* A streaming reader must not take a file whose data is still coming
     * for a complete one: it is told the number before the name exists. */
    bool data_follows = S_ISREG(mode) && !e->absent && e->size > 0 &&
                        in->ar && in->watch && in->watch->data_begin;
    if (data_follows)
        in->watch->data_begin(in->watch->arg, nn.ino_hint,
                              (uint64_t)e->size);
    err = kv_mknode(in->run, parent, leaf, &nn, &a);
    if (err == EEXIST) {        /* a duplicate: the last one wins */
        err = clear_target(in, parent, leaf, false, &existing, member);
        if (err)
            return err;
        err = kv_mknode(in->run, parent, leaf, &nn, &a);
    }
    if (err)
        return ingest_fail(in, err, member, "create: %s", strerror(err));
    if (data_follows && a.ino != nn.ino_hint)
        in->watch->data_begin(in->watch->arg, a.ino, (uint64_t)e->size);
    in->last_ino = a.ino;

    if (S_ISREG(mode)) {
        in->res->files++;
        if (e->absent)
            err = 0;            /* made with its size and absent data */
        else if (e->size > 0 && in->ar)
            err = ingest_data(in, e, a.ino, member);
        else if (e->size > 0)
            err = ingest_fail(in, EBADMSG, member, "file data missing");
        if (err)
            return err;
    } else if (S_ISLNK(mode)) {
        in->res->symlinks++;
    } else {
        in->res->others++;
    }
    return restore_times(in, a.ino, e, member);
}

/* One member: normalise, decide placement, dispatch by kind. */
int ingest_place(struct ingest *in, const struct ingest_member *e)
{
    const char *raw = e->path;
    if (!raw)
        return ingest_fail(in, EBADMSG, NULL, "a member has no path name");
    char *path = strdup(raw);
    if (!path)
        return ingest_fail(in, ENOMEM, raw, "out of memory");
    int err = normalise_member_path(path);
    if (err) {
        ingest_fail(in, EBADMSG, raw,
                    "absolute path or '..' component (refused)");
        free(path);
        return EBADMSG;
    }
    bool is_dir = !e->hardlink && (e->mode & S_IFMT) == S_IFDIR;
    if (path[0] == '\0' && !is_dir) {
        free(path);
        return ingest_fail(in, EBADMSG, raw,
                           "a non-directory member names the archive root");
    }
    crash_point("ingest-member");
    err = decide_strip(in, path, is_dir, raw);
    if (!err) {
        char *rel = (char *)run_relative(in, path);
        if (e->hardlink)
            err = ingest_hardlink(in, e, rel, raw);
        else if (is_dir)
            err = ingest_dir(in, e, rel, raw);
        else
            err = ingest_node(in, e, rel, raw);
        if (!err && in->watch && in->watch->placed)
            in->watch->placed(in->watch->arg, rel, in->last_ino);
    }
    free(path);
    return err;
}

static int apply_dir_times(struct ingest *in)
{
    for (size_t i = 0; i < in->dt_n; i++) {
        struct kv_sattr s = {
            .mask = KV_SET_ATIME | KV_SET_MTIME,
            .atime = in->dt[i].atime,
            .mtime = in->dt[i].mtime,
        };
        int err = kv_setattr(in->run, in->dt[i].ino, &s, NULL);
        if (err == ENOENT)
            continue;           /* replaced by a later member */
        if (err)
            return ingest_fail(in, err, NULL,
                               "setting directory times: %s", strerror(err));
    }
    return 0;
}

static struct timespec entry_mtime(struct archive_entry *e)
{
    struct timespec t = { 0, 0 };
    if (archive_entry_mtime_is_set(e)) {
        t.tv_sec = archive_entry_mtime(e);
        t.tv_nsec = archive_entry_mtime_nsec(e);
    }
    return t;
}

static struct timespec entry_atime(struct archive_entry *e)
{
    if (!archive_entry_atime_is_set(e))
        return entry_mtime(e);
    struct timespec t = { archive_entry_atime(e), archive_entry_atime_nsec(e) };
    return t;
}

/* Describe a tar header as an ingest_member (pointers into e). */
static void member_from_entry(struct archive_entry *e, struct ingest_member *m)
{
    memset(m, 0, sizeof *m);
    m->path = archive_entry_pathname(e);
    m->hardlink = archive_entry_hardlink(e);
    m->symlink = archive_entry_symlink(e);
    m->mode = archive_entry_mode(e);
    m->uid = (uint32_t)archive_entry_uid(e);
    m->gid = (uint32_t)archive_entry_gid(e);
    m->rdev = archive_entry_rdev(e);
    m->size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    m->atime = entry_atime(e);
    m->mtime = entry_mtime(e);
    if (archive_entry_ctime_is_set(e)) {
        m->has_ctime = true;
        m->ctime.tv_sec = archive_entry_ctime(e);
        m->ctime.tv_nsec = archive_entry_ctime_nsec(e);
    }
    if (!m->hardlink)
        m->ino = tix_entry_ino(e);
}

static int ingest_archive(struct ingest *in)
{
    struct archive_entry *e;
    for (;;) {
        int r = archive_read_next_header(in->ar, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            /* ARCHIVE_RETRY (a damaged header libarchive could skip) is a
             * failure too: skipping would silently drop members. */
            if (in->members == 0 && in->input_bytes == 0 && !in->read_errno)
                return ingest_fail(in, EBADMSG, NULL,
                                   "empty input: not a tar archive");
            if (in->members == 0 && !in->read_errno)
                return ingest_fail(in, EBADMSG, NULL,
                                   "not a tar archive (%s)",
                                   archive_error_string(in->ar)
                                       ? archive_error_string(in->ar)
                                       : "unrecognised");
            char after[160];
            snprintf(after, sizeof after, "after member %llu",
                     (unsigned long long)in->members);
            return archive_failure(in, in->members ? after : NULL,
                                   "reading the next header");
        }
        /* Shown to readers once a first member is really there, not
         * before a byte arrived (a stalled or non-tar input shows nothing). */
        if (!in->announced && in->watch && in->watch->staged) {
            in->announced = true;
            in->watch->staged(in->watch->arg, in->run);
        }
        int err = ingest_charge(in, 0, archive_entry_pathname(e));
        struct ingest_member m;
        if (!err) {
            member_from_entry(e, &m);
            err = ingest_place(in, &m);
        }
        if (err)
            return err;
        /* Read any data a handler left (hard links with a body, devices). */
        int sk = archive_read_data_skip(in->ar);
        if (sk != ARCHIVE_OK && sk != ARCHIVE_WARN)
            return archive_failure(in, archive_entry_pathname(e),
                                   "skipping data");
    }
    if (in->read_errno)
        return ingest_fail(in, EIO, NULL, "reading the archive failed: %s",
                           strerror(in->read_errno));
    return 0;
}

int ingest_start(kv_cache *c, const char *name, struct kv_ingest_result *res,
                 struct ingest **out)
{
    *out = NULL;
    if (!name || !*name) {
        snprintf(res->error, sizeof res->error, "invalid run name");
        return EINVAL;
    }
    struct ingest *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(res->error, sizeof res->error, "out of memory");
        return ENOMEM;
    }
    in->cache = c;
    in->name = name;
    in->res = res;
    in->strip = true;
    in->default_uid = geteuid();
    in->default_gid = getegid();
    const char *slash = strrchr(name, '/');
    in->top = slash ? slash + 1 : name;
    in->toplen = strlen(in->top);
    int err = kv_run_stage(c, name, kv_ino_for(name, ""), &in->run);
    if (!err)
        crash_point("ingest-staged");
    if (err) {
        snprintf(res->error, sizeof res->error, "staging run '%.200s': %s",
                 name, strerror(err));
        free(in);
        return err;
    }
    *out = in;
    return 0;
}

void ingest_watch(struct ingest *in, const struct kv_ingest_watch *w,
                  kv_run **keep)
{
    in->watch = w;
    in->keep = keep;
    if (w && w->staged) {
        in->announced = true;
        w->staged(w->arg, in->run);
    }
}

int ingest_end(struct ingest *in, int err, const char *source_version)
{
    if (!err)
        err = apply_dir_times(in);
    if (!err)
        in->res->stripped_top = in->strip && in->members > 0;
    if (!err) {
        err = kv_run_publish(in->run, source_version ? source_version : "");
        if (err)
            ingest_fail(in, err, NULL, "publishing run '%.200s': %s",
                        in->name, strerror(err));
    }
    free(in->pc_path);
    free(in->pc_ino);
    free(in->pc_end);
    free(in->dt);
    if (in->keep)
        *in->keep = in->run;    /* the caller's: published, or to discard */
    else if (err)
        kv_run_abort(in->run);
    else
        kv_run_close(in->run);
    free(in);
    return err;
}

int kv_ingest(kv_cache *c, const char *name, kv_read_fn read_fn, void *arg,
              const char *source_version, struct kv_ingest_result *res)
{
    return kv_ingest_limited(c, name, read_fn, arg, source_version, 0, res);
}

static int ingest_tar(kv_cache *c, const char *name, kv_read_fn read_fn,
                      void *arg, const char *source_version,
                      uint64_t max_bytes, const struct kv_ingest_watch *w,
                      kv_run **keep, struct kv_ingest_result *res)
{
    memset(res, 0, sizeof *res);
    if (keep)
        *keep = NULL;
    if (!read_fn) {
        snprintf(res->error, sizeof res->error, "no input");
        return EINVAL;
    }
    struct ingest *in;
    int err = ingest_start(c, name, res, &in);
    if (err)
        return err;
    in->budget = max_bytes;
    in->watch = w;
    in->keep = keep;
    in->read_fn = read_fn;
    in->read_arg = arg;
    in->readbuf = malloc(INGEST_READ_BUF);
    in->ar = archive_read_new();
    if (!in->readbuf || !in->ar) {
        err = ingest_fail(in, ENOMEM, NULL, "out of memory");
        goto out;
    }
    archive_read_support_format_tar(in->ar);
    register_builtin_filters(in->ar);
    if (archive_read_open(in->ar, in, NULL, ingest_read_cb, NULL) !=
        ARCHIVE_OK) {
        if (in->input_bytes == 0 && !in->read_errno)
            err = ingest_fail(in, EBADMSG, NULL,
                              "empty input: not a tar archive");
        else if (in->read_errno)
            err = archive_failure(in, NULL, "opening the archive");
        else
            err = ingest_fail(in, EBADMSG, NULL, "not a tar archive (%s)",
                              archive_error_string(in->ar)
                                  ? archive_error_string(in->ar)
                                  : "unrecognised");
        goto out;
    }
    err = ingest_archive(in);
out:
    if (in->ar)
        archive_read_free(in->ar);
    in->ar = NULL;
    free(in->readbuf);
    in->readbuf = NULL;
    return ingest_end(in, err, source_version);
}

int kv_ingest_limited(kv_cache *c, const char *name, kv_read_fn read_fn,
                      void *arg, const char *source_version,
                      uint64_t max_bytes, struct kv_ingest_result *res)
{
    return ingest_tar(c, name, read_fn, arg, source_version, max_bytes, NULL,
                      NULL, res);
}

int kv_ingest_stream(kv_cache *c, const char *name, kv_read_fn read_fn,
                     void *arg, const char *source_version,
                     uint64_t max_bytes, const struct kv_ingest_watch *w,
                     kv_run **out, struct kv_ingest_result *res)
{
    return ingest_tar(c, name, read_fn, arg, source_version, max_bytes, w,
                      out, res);
}
