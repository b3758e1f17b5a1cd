/* tarscan.c: tix_scan(), one streaming libarchive pass over an uncompressed tarball producing its run index. */
#include "kvstore/tarindex.h"
#include "kvstore/kv_internal.h"
#include "util/hex.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SCAN_READ_BUF (1024 * 1024)

/* Decompressors are registered only so that compressed input is recognised
 * and refused (ENOTSUP) with its name; as in ingest.c, only built-in ones,
 * never an external program. */
typedef int (*filter_register_fn)(struct archive *);

static const filter_register_fn scan_filters[] = {
    archive_read_support_filter_gzip,
    archive_read_support_filter_bzip2,
    archive_read_support_filter_xz,
    archive_read_support_filter_lzma,
    archive_read_support_filter_zstd,
};
#define N_SCAN_FILTERS (sizeof scan_filters / sizeof scan_filters[0])

static bool filter_builtin[N_SCAN_FILTERS];
static pthread_once_t filter_probe_once = PTHREAD_ONCE_INIT;

static void probe_builtin_filters(void)
{
    for (size_t i = 0; i < N_SCAN_FILTERS; i++) {
        struct archive *a = archive_read_new();
        if (!a)
            continue;
        filter_builtin[i] = scan_filters[i](a) == ARCHIVE_OK;
        archive_read_free(a);
    }
}

struct scan {
    struct archive *ar;
    tix_read_fn read_fn;
    void *arg;
    tix_progress_fn progress;
    void *parg;
    unsigned char *buf;
    uint64_t bytes;       /* read from read_fn so far */
    int read_errno;       /* read_fn's error */
    bool cancelled;
    bool at_end;          /* read_fn returned 0 */
    EVP_MD_CTX *sha;
    char *err;
    size_t errlen;
};

static int scan_fail(struct scan *s, int rc, const char *member, const char *fmt, ...)
{
    if (!s->err || !s->errlen)
        return rc;
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (member)
        snprintf(s->err, s->errlen, "%s: %s", member, why);
    else
        snprintf(s->err, s->errlen, "%s", why);
    return rc;
}

static ssize_t pull(struct scan *s)
{
    ssize_t n = s->read_fn(s->arg, s->buf, SCAN_READ_BUF);
    if (n < 0) {
        s->read_errno = (int)-n;
        return -1;
    }
    if (n == 0) {
        s->at_end = true;
        return 0;
    }
    if (EVP_DigestUpdate(s->sha, s->buf, (size_t)n) != 1) {
        s->read_errno = ENOMEM;
        return -1;
    }
    s->bytes += (uint64_t)n;
    if (s->progress && s->progress(s->parg, s->bytes)) {
        s->cancelled = true;
        return -1;
    }
    return n;
}

static la_ssize_t scan_read_cb(struct archive *a, void *arg, const void **out)
{
    struct scan *s = arg;
    ssize_t n = pull(s);
    if (n < 0) {
        archive_set_error(a, EIO, "%s", s->cancelled ? "cancelled" : "reading failed");
        return -1;
    }
    *out = s->buf;
    return n;
}

/* Why libarchive stopped, as an errno: our read error, cancel, truncation
 * (EIO) or a damaged archive (EBADMSG). */
static int archive_failure(struct scan *s, const char *member, const char *doing)
{
    const char *why = archive_error_string(s->ar);
    if (s->cancelled)
        return scan_fail(s, ECANCELED, member, "cancelled");
    if (s->read_errno)
        return scan_fail(s, EIO, member, "%s: reading the tarball failed: %s", doing,
                         strerror(s->read_errno));
    if (s->at_end)
        return scan_fail(s, EIO, member, "%s: the tarball is truncated (%s)", doing,
                         why ? why : "unexpected end");
    return scan_fail(s, EBADMSG, member, "%s: %s", doing, why ? why : "damaged archive");
}

/* A copy of a member path with room for normalise's "." (an empty path
 * turns into a longer one); NULL without memory. */
static char *path_dup(const char *raw)
{
    size_t n = strlen(raw);
    char *p = malloc(n + 2);
    if (p)
        memcpy(p, raw, n + 1);
    return p;
}

/* Normalise in place as kv_ingest does (kv_member_path_normalise); the
 * archive root ("./", "") becomes "." (p from path_dup: room for it). */
static int normalise(char *p)
{
    int err = kv_member_path_normalise(p);
    if (!err && !p[0])
        strcpy(p, ".");
    return err;
}

/* Read a regular member's data: CRCs per chunk for a contiguous one, just
 * consumed for a sparse one. */
static int scan_data(struct scan *s, struct tix_sums *sums, bool sparse,
                     uint64_t size, const char *member)
{
    uint64_t expect = 0;
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(s->ar, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
            return archive_failure(s, member, "reading data");
        if (sparse)
            continue;
        if (off < 0 || (uint64_t)off != expect)
            return scan_fail(s, EBADMSG, member, "data not contiguous");
        if (tix_sums_add(sums, buf, len))
            return scan_fail(s, ENOMEM, member, "out of memory");
        expect += len;
    }
    if (!sparse && expect != size)
        return scan_fail(s, EIO, member, "data ends after %llu of %llu bytes",
                         (unsigned long long)expect, (unsigned long long)size);
    return 0;
}

uint64_t tix_entry_ino(struct archive_entry *e)
{
    const char *name;
    const void *value;
    size_t size;
    uint64_t ino = 0;
    if (archive_entry_xattr_reset(e) == 0)
        return 0;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (strcmp(name, TIX_INO_XATTR) != 0)
            continue;
        const char *p = value;
        if (size == 0 || size > 19)
            return 0;
        ino = 0;
        for (size_t i = 0; i < size; i++) {
            if (p[i] < '0' || p[i] > '9')
                return 0;
            ino = ino * 10 + (uint64_t)(p[i] - '0');
        }
        if (ino > (UINT64_C(1) << 63) - 1)
            return 0;
    }
    return ino;
}

static int scan_member(struct scan *s, struct archive_entry *e, tix_writer *w,
                       struct tix_sums *sums, uint64_t data_off)
{
    const char *raw = archive_entry_pathname(e);
    if (!raw)
        return scan_fail(s, EBADMSG, NULL, "a member has no path name");
    char *path = path_dup(raw), *link = NULL;
    if (!path)
        return scan_fail(s, ENOMEM, raw, "out of memory");
    int rc = 0;
    if (normalise(path)) {
        rc = scan_fail(s, EBADMSG, raw, "absolute path or '..' component (refused)");
        goto out;
    }
    if (!kv_member_id_ok(archive_entry_uid(e)) || !kv_member_id_ok(archive_entry_gid(e))) {
        rc = scan_fail(s, EBADMSG, raw, "owner uid %lld or gid %lld out of range",
                       (long long)archive_entry_uid(e), (long long)archive_entry_gid(e));
        goto out;
    }
    struct tix_member m = {
        .path = path,
        .mode = archive_entry_mode(e) & 07777,
        .uid = (uint32_t)archive_entry_uid(e),
        .gid = (uint32_t)archive_entry_gid(e),
        .data_off = data_off,
    };
    if (archive_entry_mtime_is_set(e)) {
        m.mtime_sec = archive_entry_mtime(e);
        long ns = archive_entry_mtime_nsec(e);
        m.mtime_nsec = ns >= 0 && ns < 1000000000 ? (uint32_t)ns : 0;
    }
    const char *hl = archive_entry_hardlink(e);
    if (hl) {
        link = path_dup(hl);
        if (!link) {
            rc = scan_fail(s, ENOMEM, raw, "out of memory");
            goto out;
        }
        if (normalise(link) || strcmp(link, ".") == 0) {
            rc = scan_fail(s, EBADMSG, raw, "hard-link target '%s' refused", hl);
            goto out;
        }
        m.type = TIX_HARDLINK;
        m.link = link;
    } else {
        switch (archive_entry_filetype(e)) {
        case AE_IFREG:
            m.type = TIX_REG;
            break;
        case AE_IFDIR:
            m.type = TIX_DIR;
            break;
        case AE_IFLNK:
            m.type = TIX_SYMLINK;
            m.link = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
            break;
        case AE_IFIFO:
            m.type = TIX_FIFO;
            break;
        case AE_IFCHR:
            m.type = TIX_CHR;
            m.rdev = archive_entry_rdev(e);
            break;
        case AE_IFBLK:
            m.type = TIX_BLK;
            m.rdev = archive_entry_rdev(e);
            break;
        default:
            rc = scan_fail(s, EBADMSG, raw, "unsupported member type");
            goto out;
        }
    }
    if (m.type != TIX_DIR && strcmp(path, ".") == 0) {
        rc = scan_fail(s, EBADMSG, raw, "a non-directory member names the archive root");
        goto out;
    }
    if (m.type == TIX_REG) {
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
        if (size < 0) {
            rc = scan_fail(s, EBADMSG, raw, "negative size");
            goto out;
        }
        m.size = (uint64_t)size;
        bool sparse = archive_entry_sparse_count(e) > 0;
        if (sparse)
            m.flags |= TIX_F_SPARSE;
        tix_sums_reset(sums);
        rc = scan_data(s, sums, sparse, m.size, raw);
        if (rc)
            goto out;
        if (!sparse) {
            m.sums = tix_sums_finish(sums, &m.nsums);
            if (m.nsums && !m.sums) {
                rc = scan_fail(s, ENOMEM, raw, "out of memory");
                goto out;
            }
        }
    }
    if (m.type != TIX_HARDLINK)
        m.ino = tix_entry_ino(e);
    rc = tix_writer_add(w, &m);
    if (rc == EINVAL)
        rc = scan_fail(s, EBADMSG, raw, "member cannot be indexed (path or target too long?)");
    else if (rc)
        rc = scan_fail(s, rc, raw, "%s", strerror(rc));
out:
    free(path);
    free(link);
    return rc;
}

static int scan_archive(struct scan *s, tix_writer *w)
{
    struct tix_sums sums = {0};
    struct archive_entry *e;
    uint64_t members = 0;
    int rc = 0;
    for (;;) {
        int r = archive_read_next_header(s->ar, &e);
        if (members == 0 && archive_filter_count(s->ar) > 1) {
            rc = scan_fail(s, ENOTSUP, NULL,
                           "compressed tarball (%s): no random access, not indexed",
                           archive_filter_name(s->ar, 0));
            break;
        }
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            if (members == 0 && !s->read_errno && !s->cancelled) {
                rc = scan_fail(s, EBADMSG, NULL, s->bytes ? "not a tar archive (%s)"
                                                          : "empty input: not a tar archive%s",
                               s->bytes && archive_error_string(s->ar)
                                   ? archive_error_string(s->ar) : "");
                break;
            }
            char after[64];
            snprintf(after, sizeof after, "after member %llu", (unsigned long long)members);
            rc = archive_failure(s, members ? after : NULL, "reading the next header");
            break;
        }
        la_int64_t pos = archive_filter_bytes(s->ar, 0);
        if (pos < 0) {
            rc = scan_fail(s, EBADMSG, archive_entry_pathname(e), "no stream position");
            break;
        }
        rc = scan_member(s, e, w, &sums, (uint64_t)pos);
        if (rc)
            break;
        members++;
        int sk = archive_read_data_skip(s->ar);
        if (sk != ARCHIVE_OK && sk != ARCHIVE_WARN) {
            rc = archive_failure(s, archive_entry_pathname(e), "skipping data");
            break;
        }
    }
    tix_sums_free(&sums);
    return rc;
}

int tix_scan(tix_read_fn read_fn, void *arg, const struct tix_source *src,
             tix_progress_fn progress, void *parg,
             void **out, size_t *outlen, char *err, size_t errlen)
{
    struct scan s = {
        .read_fn = read_fn, .arg = arg, .progress = progress, .parg = parg,
        .err = err, .errlen = errlen,
    };
    if (err && errlen)
        err[0] = '\0';
    tix_writer *w = NULL;
    int rc = tix_writer_new(&w);
    if (rc)
        return rc;
    s.buf = malloc(SCAN_READ_BUF);
    s.sha = EVP_MD_CTX_new();
    s.ar = archive_read_new();
    if (!s.buf || !s.sha || !s.ar || EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL) != 1) {
        rc = scan_fail(&s, ENOMEM, NULL, "out of memory");
        goto done;
    }
    pthread_once(&filter_probe_once, probe_builtin_filters);
    for (size_t i = 0; i < N_SCAN_FILTERS; i++)
        if (filter_builtin[i])
            scan_filters[i](s.ar);
    archive_read_support_format_tar(s.ar);
    if (archive_read_open(s.ar, &s, NULL, scan_read_cb, NULL) != ARCHIVE_OK) {
        if (s.read_errno || s.cancelled)
            rc = archive_failure(&s, NULL, "opening the tarball");
        else
            rc = scan_fail(&s, EBADMSG, NULL, "not a tar archive (%s)",
                           archive_error_string(s.ar) ? archive_error_string(s.ar)
                                                      : "unrecognised");
        goto done;
    }
    rc = scan_archive(&s, w);
    /* The bytes after the end-of-archive blocks belong to the object too:
     * read to the end, so its size and SHA-256 are the whole object's. */
    while (!rc && !s.at_end) {
        if (pull(&s) < 0)
            rc = s.cancelled ? scan_fail(&s, ECANCELED, NULL, "cancelled")
                             : scan_fail(&s, EIO, NULL, "reading the tarball failed: %s",
                                         strerror(s.read_errno));
    }
    if (rc)
        goto done;

    struct tix_source got = *src;
    unsigned char d[32];
    unsigned int dl = 0;
    if (EVP_DigestFinal_ex(s.sha, d, &dl) != 1 || dl != 32) {
        rc = scan_fail(&s, ENOMEM, NULL, "SHA-256 failed");
        goto done;
    }
    char hex[65];
    hex_encode(d, 32, hex);
    if (got.size && got.size != s.bytes) {
        rc = scan_fail(&s, EIO, NULL, "read %llu bytes of a %llu-byte tarball",
                       (unsigned long long)s.bytes, (unsigned long long)got.size);
        goto done;
    }
    if (got.sha256[0] && strcmp(got.sha256, hex) != 0) {
        rc = scan_fail(&s, EIO, NULL, "the tarball's SHA-256 is %s, expected %s",
                       hex, got.sha256);
        goto done;
    }
    got.size = s.bytes;
    memcpy(got.sha256, hex, sizeof hex);
    rc = tix_writer_finish(w, &got, out, outlen);
    if (rc == EINVAL)
        rc = scan_fail(&s, EBADMSG, NULL, "member data beyond the tarball's end");
    else if (rc)
        rc = scan_fail(&s, rc, NULL, "%s", strerror(rc));
done:
    if (s.ar)
        archive_read_free(s.ar);
    EVP_MD_CTX_free(s.sha);
    free(s.buf);
    tix_writer_free(w);
    return rc;
}
