/* ingest_place.c: the member placement core kv_ingest and kv_ingest_index share: staging and finishing the run, error reporting, and one handler per member kind. */
#include "kvstore/ingest_internal.h"
#include "kvstore/kv_internal.h"
#include "kvstore/tarindex.h"
#include "util/crashpt.h"
#include "util/phash.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ----------------------------------------------------------- */

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

/* ---- members ----------------------------------------------------------- */

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
        ingest_path_cache_reset(in);
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

void ingest_dt_index_drop(struct ingest *in)
{
    free(in->dt_slot);
    in->dt_slot = NULL;
    in->dt_slots = 0;
}

/* The slot of ino in dt's index: its entry, or the free slot for it. */
static size_t *dt_slot_of(const struct ingest *in, kv_ino ino)
{
    size_t mask = in->dt_slots - 1;
    for (size_t i = (size_t)phash(&ino, sizeof ino) & mask;; i = (i + 1) & mask) {
        size_t *sl = &in->dt_slot[i];
        if (!*sl || in->dt[*sl - 1].ino == ino)
            return sl;
    }
}

/* Make dt's index hold at least want entries at most half full. */
static int dt_index_fit(struct ingest *in, size_t want)
{
    if (in->dt_slot && want * 2 <= in->dt_slots)
        return 0;
    size_t slots = 64;
    while (slots < want * 2)
        slots *= 2;
    size_t *ns = calloc(slots, sizeof *ns);
    if (!ns)
        return ENOMEM;
    free(in->dt_slot);
    in->dt_slot = ns;
    in->dt_slots = slots;
    for (size_t i = 0; i < in->dt_n; i++)
        *dt_slot_of(in, in->dt[i].ino) = i + 1;
    return 0;
}

/* Remember a directory's times, applied again at the end (its members'
 * arrival changes them).  One entry per directory: a header repeated
 * (tar --append, or a hostile tarball of millions of "d/") updates it. */
static int remember_dir_times(struct ingest *in, kv_ino ino,
                              const struct ingest_member *e)
{
    int err = dt_index_fit(in, in->dt_n + 1);
    if (err)
        return err;
    size_t *sl = dt_slot_of(in, ino);
    if (!*sl) {
        err = ingest_grow((void **)&in->dt, &in->dt_cap, in->dt_n + 1, sizeof *in->dt);
        if (err)
            return err;
        in->dt[in->dt_n].ino = ino;
        *sl = ++in->dt_n;
    }
    in->dt[*sl - 1].atime = e->atime;
    in->dt[*sl - 1].mtime = e->mtime;
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
        err = ingest_resolve_parent(in, relpath, &parent, &leaf, member);
        if (err)
            return err;
        struct kv_newnode nn = {
            .mode = S_IFDIR | s.mode,
            .uid = s.uid,
            .gid = s.gid,
            .ino_hint = ingest_member_ino(in, e, relpath),
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
    /* The root, or a directory made earlier for a member under it (or by
     * an earlier header of its own): its own attributes now, times
     * included (applied again at the end).  Charged as a node: the work a
     * tarball of repeated headers makes is bounded by the run's budget. */
    in->meta_bytes += INGEST_NODE_COST;
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

static int ingest_hardlink(struct ingest *in, const struct ingest_member *e,
                           char *relpath, const char *member)
{
    const char *target_raw = e->hardlink;
    char *target = strdup(target_raw);
    if (!target)
        return ingest_fail(in, ENOMEM, member, "out of memory");
    int err = kv_member_path_normalise(target);
    if (err) {
        free(target);
        return ingest_fail(in, EBADMSG, member,
                           "hard link target '%.100s' is absolute or has a "
                           "'..' component", target_raw);
    }
    if (strlen(target) > TIX_PATH_MAX) {
        free(target);
        return ingest_fail(in, ENAMETOOLONG, member,
                           "hard link target is longer than %d bytes",
                           TIX_PATH_MAX);
    }
    const char *trel = NULL;
    if (!in->strip)
        trel = target;
    else if (ingest_under_top(in, target) && target[in->toplen] == '/')
        trel = ingest_run_relative(in, target);
    kv_ino tino = 0;
    err = trel && trel[0] ? ingest_lookup_path(in, trel, &tino) : ENOENT;
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
    err = ingest_resolve_parent(in, relpath, &parent, &leaf, member);
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
    int err = ingest_resolve_parent(in, relpath, &parent, &leaf, member);
    if (err)
        return err;

    struct kv_newnode nn = {
        .mode = mode,
        .uid = e->uid,
        .gid = e->gid,
        .ino_hint = ingest_member_ino(in, e, relpath),
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
        /* Stored with the node: data as far as the budget goes (20,000
         * targets of 4 KB would be 80 MB against 5 MB of nodes). */
        int cerr = ingest_charge(in, tl, member);
        if (cerr)
            return cerr;
        in->meta_bytes += tl;
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
    /* (libarchive passes on a negative size, e.g. a GNU sparse member's
     * real size in base-256: the file would be stored empty.) */
    if (S_ISREG(mode) && e->size < 0)
        return ingest_fail(in, EBADMSG, member, "negative size");
    struct kv_absent_spec absent;
    if (S_ISREG(mode) && e->absent) {
        if (e->size > 0) {
            absent = (struct kv_absent_spec){
                .size = (uint64_t)e->size, .member = member,
                .data_off = e->data_off, .nchunks = e->nsums, .crcs = e->sums,
            };
            if (!kv_absent_spec_ok(&absent))
                return ingest_fail(in, EBADMSG, member,
                                   "recording absent data: %s", strerror(EINVAL));
            /* The record keeps the member's path and a CRC per chunk: an
             * index may claim huge files, or long paths, cheaply. */
            uint64_t rec = strlen(member) + 4 * (uint64_t)e->nsums;
            int cerr = ingest_charge(in, rec, member);
            if (cerr)
                return cerr;
            in->meta_bytes += rec;
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
    int err = kv_member_path_normalise(path);
    if (err) {
        ingest_fail(in, EBADMSG, raw,
                    "absolute path or '..' component (refused)");
        free(path);
        return EBADMSG;
    }
    /* The index's bound (TIX_PATH_MAX, PATH_MAX's 4096): a run is the same
     * whether built from its tarball or its index, and placing a path
     * costs time in its depth for every level (a 200 KB pax path 100,000
     * levels deep took minutes). */
    if (strlen(path) > TIX_PATH_MAX) {
        free(path);
        return ingest_fail(in, ENAMETOOLONG, raw, "path is longer than %d bytes",
                           TIX_PATH_MAX);
    }
    bool is_dir = !e->hardlink && (e->mode & S_IFMT) == S_IFDIR;
    if (path[0] == '\0' && !is_dir) {
        free(path);
        return ingest_fail(in, EBADMSG, raw,
                           "a non-directory member names the archive root");
    }
    crash_point("ingest-member");
    err = ingest_decide_strip(in, path, is_dir, raw);
    if (!err) {
        char *rel = (char *)ingest_run_relative(in, path);
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
    ingest_dt_index_drop(in);
    if (in->keep)
        *in->keep = in->run;    /* the caller's: published, or to discard */
    else if (err)
        kv_run_abort(in->run);
    else
        kv_run_close(in->run);
    free(in);
    return err;
}
