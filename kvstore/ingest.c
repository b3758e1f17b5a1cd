/* ingest.c: kv_ingest(), streaming a tar archive from a read callback through libarchive into a new, atomically published run, each member placed by the core in ingest_place.c. */
/*
 * Parts, in order:
 *   1. filter registration (built-in decompressors only, never programs)
 *   2. reading: the input callback, libarchive failures, the byte budget
 *   3. member data and tar headers, then the tar loop
 * Member paths (normalisation, the hostile-path checks, strip, parents)
 * are ingest_path.c's; placing a member is ingest_place.c's.
 */
#include "kvstore/ingest_internal.h"
#include "kvstore/kv_internal.h"
#include "kvstore/tarindex.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libarchive gets this much input per callback; big reads keep the
 * per-call overhead of decompressors and of read_fn low. */
#define INGEST_READ_BUF (1024 * 1024)

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

/* ---- 2. reading ------------------------------------------------------- */

/* ENOSPC, with a clear message, if storing more bytes of data (plus the
 * nodes made so far) would take the run past its budget: checked as the
 * archive is read, so a decompression bomb stops at the budget instead of
 * filling the disk (issue 12, finding 12). */
int ingest_charge(struct ingest *in, uint64_t more, const char *member)
{
    if (!in->budget)
        return 0;
    const struct kv_ingest_result *r = in->res;
    uint64_t nodes = r->files + r->dirs + r->symlinks + r->others;
    uint64_t used = r->bytes + in->meta_bytes + nodes * INGEST_NODE_COST +
                    r->hardlinks * INGEST_LINK_COST;
    if (used <= in->budget && more <= in->budget - used)
        return 0;
    return ingest_fail(in, ENOSPC, member,
                       "the run needs more than the %llu bytes the cache may "
                       "still take (cache_limit, or the cache filesystem's free "
                       "space); stopped after %llu bytes "
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

/* ---- 3. data, headers, the tar loop ---------------------------------- */

/* Copy the member's data (with holes for sparse members) into ino. */
int ingest_data(struct ingest *in, const struct ingest_member *e,
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
        /* A sparse map may place data anywhere: never past the size the
         * member declares (the file would be longer than the archive says). */
        if ((uint64_t)off > (uint64_t)size || len > (uint64_t)size - (uint64_t)off) {
            kv_append_end(ap);
            return ingest_fail(in, EBADMSG, member,
                               "data past its size of %lld bytes (corrupt sparse map)",
                               (long long)size);
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
        if (!err && (!kv_member_id_ok(archive_entry_uid(e)) ||
                     !kv_member_id_ok(archive_entry_gid(e))))
            err = ingest_fail(in, EBADMSG, archive_entry_pathname(e),
                              "owner uid %lld or gid %lld out of range",
                              (long long)archive_entry_uid(e),
                              (long long)archive_entry_gid(e));
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
