/* convert_tar.c: writes a scanned run as a deterministic pax tarball through libarchive's writer, hashing the output with SHA-256 and building its run index as it streams. */
#include "convert/convert_internal.h"
#include "util/tarsuffix.h"
#include "util/hex.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (256u * 1024u)

/* libarchive's default output blocking: a plain tarball is padded to a
 * multiple of this, as GNU tar does. */
#define TAR_BLOCK 10240u
/* Output coalescing when libarchive's blocking is off (see setup_writer). */
#define OUT_COALESCE (64u * 1024u)

const char *conv_tar_suffix(enum conv_compress c)
{
    return tar_suffix_for(c == CONV_COMPRESS_GZIP ? TAR_FILTER_GZIP
                          : c == CONV_COMPRESS_ZSTD ? TAR_FILTER_ZSTD
                          : TAR_FILTER_NONE);
}

struct tar_out {
    conv_sink_fn sink;
    void *sink_arg;
    EVP_MD_CTX *sha;
    uint64_t pos;           /* bytes libarchive handed us: with its blocking
                               off, the exact stream position */
    uint64_t bytes;         /* bytes delivered to the sink */
    unsigned char *pend;    /* coalescing buffer (unblocked output only) */
    size_t npend;
    int sink_err;           /* first error from the sink (positive errno) */
    bool abandoned;         /* the run failed: nothing more reaches the sink */
};

static int deliver(struct tar_out *o, const void *buf, size_t len)
{
    if (!len)
        return 0;
    if (o->sha && EVP_DigestUpdate(o->sha, buf, len) != 1)
        return o->sink_err = EIO;
    int rc = o->sink(o->sink_arg, buf, len);
    if (rc)
        return o->sink_err = rc;
    o->bytes += len;
    return 0;
}

static int out_flush(struct tar_out *o)
{
    int rc = deliver(o, o->pend, o->npend);
    o->npend = 0;
    return rc;
}

static la_ssize_t out_write(struct archive *a, void *arg, const void *buf, size_t len)
{
    struct tar_out *o = arg;
    if (o->sink_err || o->abandoned)
        return -1;
    int rc = 0;
    if (!o->pend) {
        rc = deliver(o, buf, len);
    } else if (o->npend + len <= OUT_COALESCE) {
        memcpy(o->pend + o->npend, buf, len);
        o->npend += len;
    } else if (!(rc = out_flush(o))) {
        if (len >= OUT_COALESCE) {
            rc = deliver(o, buf, len);
        } else {
            memcpy(o->pend, buf, len);
            o->npend = len;
        }
    }
    if (rc) {
        archive_set_error(a, rc, "%s", strerror(rc));
        return -1;
    }
    o->pos += len;
    return (la_ssize_t)len;
}

/* End of an unblocked plain tarball: zero padding to a whole TAR_BLOCK, so
 * the bytes are exactly what libarchive's blocked output gives. */
static int out_finish(struct tar_out *o)
{
    static const unsigned char zeros[512];
    while (!o->sink_err && (o->pos % TAR_BLOCK) != 0) {
        size_t n = TAR_BLOCK - (size_t)(o->pos % TAR_BLOCK);
        if (n > sizeof zeros)
            n = sizeof zeros;
        if (o->npend + n > OUT_COALESCE && out_flush(o))
            break;
        memcpy(o->pend + o->npend, zeros, n);
        o->npend += n;
        o->pos += n;
    }
    if (!o->sink_err)
        out_flush(o);
    return o->sink_err;
}

static char *member_name(const char *top, const char *rel)
{
    size_t tl = strlen(top), rl = strlen(rel);
    char *s = malloc(tl + rl + 2);
    if (!s)
        return NULL;
    memcpy(s, top, tl);
    if (rl) {
        s[tl] = '/';
        memcpy(s + tl + 1, rel, rl + 1);
    } else {
        s[tl] = '\0';
    }
    return s;
}

static bool same_version(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Copies one regular file's data into the archive, failing (EBUSY) if it
 * is not the scanned inode or changes while it is read. */
static int write_file_data(struct archive *a, int run_fd, const char *run_path,
                           const struct conv_entry *e, unsigned char *buf,
                           struct tix_sums *sums,
                           struct conv_counters *ctr, const atomic_bool *cancel,
                           char *err, size_t errlen)
{
    int fd = openat(run_fd, e->rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int rc = errno;
        snprintf(err, errlen, "cannot read %s/%s: %s", run_path, e->rel, strerror(rc));
        return rc;
    }
    struct stat before, after;
    int rc = 0;
    if (fstat(fd, &before) != 0) {
        rc = errno;
        snprintf(err, errlen, "cannot stat %s/%s: %s", run_path, e->rel, strerror(rc));
        goto out;
    }
    if (!same_version(&before, &e->st)) {
        rc = EBUSY;
        snprintf(err, errlen, "%s/%s changed while the run was being archived",
                 run_path, e->rel);
        goto out;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    uint64_t left = (uint64_t)e->st.st_size;
    while (left > 0) {
        if (cancel && atomic_load(cancel)) {
            rc = ECANCELED;
            snprintf(err, errlen, "interrupted");
            goto out;
        }
        size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
        ssize_t n = read(fd, buf, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = errno;
            snprintf(err, errlen, "cannot read %s/%s: %s", run_path, e->rel, strerror(rc));
            goto out;
        }
        if (n == 0) {
            rc = EBUSY;
            snprintf(err, errlen, "%s/%s shrank while being read", run_path, e->rel);
            goto out;
        }
        if (archive_write_data(a, buf, (size_t)n) != n) {
            rc = archive_errno(a) > 0 ? archive_errno(a) : EIO;
            snprintf(err, errlen, "writing %s/%s into the tarball: %s", run_path,
                     e->rel, archive_error_string(a) ? archive_error_string(a) : strerror(rc));
            goto out;
        }
        if (sums && tix_sums_add(sums, buf, (size_t)n)) {
            rc = ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        left -= (uint64_t)n;
        atomic_fetch_add(&ctr->bytes, (uint64_t)n);
    }
    if (fstat(fd, &after) != 0) {
        rc = errno;
        snprintf(err, errlen, "cannot stat %s/%s: %s", run_path, e->rel, strerror(rc));
        goto out;
    }
    if (!same_version(&before, &after)) {
        rc = EBUSY;
        snprintf(err, errlen, "%s/%s changed while being read", run_path, e->rel);
    }
out:
    close(fd);
    return rc;
}

/* Fills a libarchive entry from a scanned entry.  Only what the tree holds
 * goes in (no uname/gname, atime or ctime), so the bytes depend on the tree
 * alone, not on the host's user database or on when it was read. */
static int fill_entry(struct archive_entry *ae, const char *top,
                      const struct conv_tree *t, const struct conv_entry *e)
{
    char *name = member_name(top, e->rel);
    if (!name)
        return ENOMEM;
    archive_entry_copy_pathname(ae, name);
    free(name);
    archive_entry_set_mode(ae, e->st.st_mode);
    archive_entry_set_uid(ae, e->st.st_uid);
    archive_entry_set_gid(ae, e->st.st_gid);
    archive_entry_set_mtime(ae, e->st.st_mtim.tv_sec, e->st.st_mtim.tv_nsec);
    if (e->hardlink_of >= 0) {
        char *target = member_name(top, t->v[e->hardlink_of].rel);
        if (!target)
            return ENOMEM;
        archive_entry_copy_hardlink(ae, target);
        free(target);
        archive_entry_set_size(ae, 0);
        return 0;
    }
    if (S_ISREG(e->st.st_mode))
        archive_entry_set_size(ae, e->st.st_size);
    else
        archive_entry_set_size(ae, 0);
    if (S_ISLNK(e->st.st_mode))
        archive_entry_copy_symlink(ae, e->link_target);
    if (S_ISCHR(e->st.st_mode) || S_ISBLK(e->st.st_mode))
        archive_entry_set_rdev(ae, e->st.st_rdev);
    return 0;
}

/* The index record of entry e, whose data starts at data_off; sums hold
 * its chunk CRCs (regular files with data). */
static int index_add(tix_writer *w, const char *top, const struct conv_tree *t,
                     const struct conv_entry *e, uint64_t data_off, struct tix_sums *sums)
{
    char *name = member_name(top, e->rel), *target = NULL;
    if (!name)
        return ENOMEM;
    struct tix_member m = {
        .path = name,
        .mode = e->st.st_mode & 07777,
        .uid = e->st.st_uid,
        .gid = e->st.st_gid,
        .mtime_sec = e->st.st_mtim.tv_sec,
        .mtime_nsec = (uint32_t)e->st.st_mtim.tv_nsec,
        .data_off = data_off,
    };
    if (e->hardlink_of >= 0) {
        m.type = TIX_HARDLINK;
        m.link = target = member_name(top, t->v[e->hardlink_of].rel);
        if (!target) {
            free(name);
            return ENOMEM;
        }
    } else if (S_ISREG(e->st.st_mode)) {
        m.type = TIX_REG;
        m.size = (uint64_t)e->st.st_size;
        m.sums = tix_sums_finish(sums, &m.nsums);
    } else if (S_ISDIR(e->st.st_mode)) {
        m.type = TIX_DIR;
    } else if (S_ISLNK(e->st.st_mode)) {
        m.type = TIX_SYMLINK;
        m.link = e->link_target ? e->link_target : "";
    } else if (S_ISFIFO(e->st.st_mode)) {
        m.type = TIX_FIFO;
    } else if (S_ISCHR(e->st.st_mode) || S_ISBLK(e->st.st_mode)) {
        m.type = S_ISCHR(e->st.st_mode) ? TIX_CHR : TIX_BLK;
        m.rdev = e->st.st_rdev;
    } else {
        free(name);
        return EINVAL;
    }
    int rc = tix_writer_add(w, &m);
    free(name);
    free(target);
    return rc;
}

static int setup_writer(struct archive *a, enum conv_compress comp)
{
    if (archive_write_set_format_pax(a) != ARCHIVE_OK)
        return EINVAL;
    switch (comp) {
    case CONV_COMPRESS_GZIP:
        if (archive_write_add_filter_gzip(a) != ARCHIVE_OK)
            return ENOTSUP;
        /* A gzip header stamped with the current time would make the same
         * tree give different bytes. */
        if (archive_write_set_filter_option(a, "gzip", "timestamp", NULL) < ARCHIVE_WARN)
            return EINVAL;
        break;
    case CONV_COMPRESS_ZSTD:
        if (archive_write_add_filter_zstd(a) != ARCHIVE_OK)
            return ENOTSUP;
        break;
    default:
        break;
    }
    /* Zero padding after a compressed stream is trailing garbage to zstd
     * (and to libarchive's zstd reader); a plain tar keeps tar's records. */
    if (comp != CONV_COMPRESS_NONE && archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK)
        return EINVAL;
    /* A plain tarball is written unblocked: libarchive hands every byte to
     * out_write at once, so the count there is the exact position of each
     * member's data (the index needs it); out_write coalesces and
     * out_finish pads to TAR_BLOCK itself, giving the same bytes. */
    if (comp == CONV_COMPRESS_NONE && archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK)
        return EINVAL;
    return 0;
}

int conv_tar_write(const char *run_path, const char *top,
                   const struct conv_tree *t, enum conv_compress comp,
                   conv_sink_fn sink, void *sink_arg, bool hash, bool index,
                   struct conv_counters *ctr, const atomic_bool *cancel,
                   struct conv_tar_result *res, char *err, size_t errlen)
{
    err[0] = '\0';
    memset(res, 0, sizeof *res);
    struct tar_out out = { .sink = sink, .sink_arg = sink_arg };
    struct tix_sums sums = { 0 };
    tix_writer *tix = NULL;
    if (comp == CONV_COMPRESS_NONE) {
        out.pend = malloc(OUT_COALESCE);
        if (!out.pend || (index && tix_writer_new(&tix) != 0)) {
            free(out.pend);
            snprintf(err, errlen, "out of memory");
            return ENOMEM;
        }
    }
    unsigned char *buf = malloc(READ_CHUNK);
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    out.sha = hash ? EVP_MD_CTX_new() : NULL;
    int run_fd = -1, rc = 0;
    bool opened = false;

    if (!buf || !a || !ae || (hash && !out.sha)) {
        rc = ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    if (hash && EVP_DigestInit_ex(out.sha, EVP_sha256(), NULL) != 1) {
        rc = EIO;
        snprintf(err, errlen, "cannot initialise SHA-256");
        goto done;
    }
    run_fd = open(run_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (run_fd < 0) {
        rc = errno;
        snprintf(err, errlen, "cannot open %s: %s", run_path, strerror(rc));
        goto done;
    }
    if ((rc = setup_writer(a, comp)) != 0) {
        snprintf(err, errlen, "libarchive cannot write this format: %s", archive_error_string(a));
        goto done;
    }
    if (archive_write_open2(a, &out, NULL, out_write, NULL, NULL) != ARCHIVE_OK) {
        rc = out.sink_err ? out.sink_err : EIO;
        snprintf(err, errlen, "cannot start the tarball: %s", archive_error_string(a));
        goto done;
    }
    opened = true;
    for (size_t i = 0; i < t->n && !rc; i++) {
        const struct conv_entry *e = &t->v[i];
        if (cancel && atomic_load(cancel)) {
            rc = ECANCELED;
            snprintf(err, errlen, "interrupted");
            break;
        }
        archive_entry_clear(ae);
        if ((rc = fill_entry(ae, top, t, e)) != 0) {
            snprintf(err, errlen, "out of memory");
            break;
        }
        int r = archive_write_header(a, ae);
        if (r < ARCHIVE_WARN) {
            rc = out.sink_err ? out.sink_err : (archive_errno(a) > 0 ? archive_errno(a) : EIO);
            snprintf(err, errlen, "writing the header of %s/%s: %s", run_path, e->rel,
                     out.sink_err ? strerror(out.sink_err) : archive_error_string(a));
            break;
        }
        uint64_t data_off = out.pos;
        tix_sums_reset(&sums);
        if (S_ISREG(e->st.st_mode) && e->hardlink_of < 0 && e->st.st_size > 0) {
            rc = write_file_data(a, run_fd, run_path, e, buf, tix ? &sums : NULL,
                                 ctr, cancel, err, errlen);
            if (rc && out.sink_err) {
                rc = out.sink_err;
                snprintf(err, errlen, "writing the tarball: %s", strerror(rc));
            }
        }
        if (!rc && tix) {
            int ir = index_add(tix, top, t, e, data_off, &sums);
            if (ir == ENOMEM) {
                rc = ENOMEM;
                snprintf(err, errlen, "out of memory");
            } else if (ir) {
                /* Not indexable (a path beyond TIX_PATH_MAX): the tarball
                 * is fine, it just gets no index. */
                snprintf(res->index_skipped, sizeof res->index_skipped,
                         "%s/%s cannot be indexed", top, e->rel);
                tix_writer_free(tix);
                tix = NULL;
            }
        }
        if (!rc)
            atomic_fetch_add(&ctr->files, 1);
    }
    /* An entry added or removed while we wrote shows as a directory whose
     * mtime or ctime moved; the tarball would not be the run. */
    for (size_t i = 0; i < t->n && !rc; i++) {
        const struct conv_entry *e = &t->v[i];
        struct stat now;
        if (!S_ISDIR(e->st.st_mode))
            continue;
        if (fstatat(run_fd, e->rel[0] ? e->rel : ".", &now, AT_SYMLINK_NOFOLLOW) != 0 ||
            !same_version(&now, &e->st)) {
            rc = EBUSY;
            snprintf(err, errlen, "%s/%s changed while the run was being archived",
                     run_path, e->rel);
        }
    }
    if (!rc) {
        opened = false;
        if (archive_write_close(a) != ARCHIVE_OK) {
            rc = out.sink_err ? out.sink_err : EIO;
            snprintf(err, errlen, "finishing the tarball: %s",
                     out.sink_err ? strerror(out.sink_err) : archive_error_string(a));
        } else if (out.pend && (rc = out_finish(&out)) != 0) {
            snprintf(err, errlen, "finishing the tarball: %s", strerror(rc));
        }
    }
    if (!rc) {
        res->tar_bytes = out.bytes;
        res->tix = tix;
        tix = NULL;
    }
    if (!rc && hash) {
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(out.sha, res->sha256, &len) != 1 || len != 32) {
            rc = EIO;
            snprintf(err, errlen, "cannot finish SHA-256");
        } else {
            hex_encode(res->sha256, 32, res->sha256_hex);
        }
    }
done:
    if (a) {
        /* Close even a failed archive (its trailer goes nowhere): libarchive
         * 3.6 frees its output buffer only in close, not after
         * archive_write_fail. */
        if (opened) {
            out.abandoned = true;
            archive_write_close(a);
        }
        archive_write_free(a);
    }
    if (ae)
        archive_entry_free(ae);
    if (out.sha)
        EVP_MD_CTX_free(out.sha);
    if (run_fd >= 0)
        close(run_fd);
    free(buf);
    free(out.pend);
    tix_sums_free(&sums);
    tix_writer_free(tix);
    if (rc) {
        tix_writer_free(res->tix);
        res->tix = NULL;
    }
    return rc;
}
