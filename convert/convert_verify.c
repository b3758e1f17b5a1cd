/* convert_verify.c: reads a written tarball back (file or S3 object) and checks it, member by member, against the source run as it is now. */
#include "convert/convert_internal.h"
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

#define VERIFY_CHUNK (256u * 1024u)

/* The raw bytes of the tarball, hashed as libarchive pulls them. */
struct raw_in {
    int fd;                 /* file target, or -1 */
    fetch_stream *s;        /* S3 target, or NULL */
    EVP_MD_CTX *sha;
    unsigned char *buf;
    int err;
};

static ssize_t raw_read_some(struct raw_in *r)
{
    for (;;) {
        ssize_t n;
        if (r->s) {
            n = fetch_read(r->s, r->buf, VERIFY_CHUNK);
            if (n < 0) {
                r->err = (int)-n;
                return -1;
            }
        } else {
            n = read(r->fd, r->buf, VERIFY_CHUNK);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                r->err = errno;
                return -1;
            }
        }
        if (n > 0 && EVP_DigestUpdate(r->sha, r->buf, (size_t)n) != 1) {
            r->err = EIO;
            return -1;
        }
        return n;
    }
}

static la_ssize_t raw_read_cb(struct archive *a, void *arg, const void **out)
{
    struct raw_in *r = arg;
    ssize_t n = raw_read_some(r);
    if (n < 0) {
        archive_set_error(a, r->err, "%s", strerror(r->err));
        return -1;
    }
    *out = r->buf;
    return n;
}

static int sha_file(int run_fd, const char *rel, unsigned char *buf,
                    unsigned char out[32], uint64_t *size)
{
    int fd = openat(run_fd, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int rc = (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1) ? 0 : ENOMEM;
    *size = 0;
    while (!rc) {
        ssize_t n = read(fd, buf, VERIFY_CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = errno;
            break;
        }
        if (n == 0)
            break;
        *size += (uint64_t)n;
        if (EVP_DigestUpdate(c, buf, (size_t)n) != 1)
            rc = EIO;
    }
    unsigned int len;
    if (!rc && EVP_DigestFinal_ex(c, out, &len) != 1)
        rc = EIO;
    EVP_MD_CTX_free(c);
    close(fd);
    return rc;
}

static int sha_member(struct archive *a, unsigned char *buf, unsigned char out[32],
                      uint64_t *size)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int rc = (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1) ? 0 : ENOMEM;
    *size = 0;
    while (!rc) {
        la_ssize_t n = archive_read_data(a, buf, VERIFY_CHUNK);
        if (n < 0) {
            rc = archive_errno(a) > 0 ? archive_errno(a) : EIO;
            break;
        }
        if (n == 0)
            break;
        *size += (uint64_t)n;
        if (EVP_DigestUpdate(c, buf, (size_t)n) != 1)
            rc = EIO;
    }
    unsigned int len;
    if (!rc && EVP_DigestFinal_ex(c, out, &len) != 1)
        rc = EIO;
    EVP_MD_CTX_free(c);
    return rc;
}

static char *expected_name(const char *top, const char *rel)
{
    char *s = NULL;
    if (asprintf(&s, rel[0] ? "%s/%s" : "%s%s", top, rel) < 0)
        return NULL;
    return s;
}

/* Member names of directories may carry a trailing '/'. */
static bool same_name(const char *member, const char *want)
{
    size_t ml = strlen(member), wl = strlen(want);
    while (ml > 1 && member[ml - 1] == '/')
        ml--;
    return ml == wl && memcmp(member, want, wl) == 0;
}

/* Checks one member against one source entry; data is read and hashed on
 * both sides for regular files. */
static int check_member(struct archive *a, struct archive_entry *ae, int run_fd,
                        const char *run_path, const char *top,
                        const struct conv_tree *t, const struct conv_entry *e,
                        unsigned char *buf, char *err, size_t errlen)
{
    char *want = expected_name(top, e->rel);
    if (!want)
        return ENOMEM;
    const char *member = archive_entry_pathname(ae);
    int rc = 0;
    if (!member || !same_name(member, want)) {
        snprintf(err, errlen, "member %s where %s was expected",
                 member ? member : "(unnamed)", want);
        rc = EBADMSG;
        goto out;
    }
    const char *hl = archive_entry_hardlink(ae);
    if (e->hardlink_of >= 0) {
        char *first = expected_name(top, t->v[e->hardlink_of].rel);
        bool ok = first && hl && !strcmp(hl, first);
        if (!ok) {
            snprintf(err, errlen, "%s should be a hard link to %s", want,
                     first ? first : "?");
            rc = EBADMSG;
        }
        free(first);
        goto out;
    }
    if (hl) {
        snprintf(err, errlen, "%s is a hard link in the tarball but not in the source", want);
        rc = EBADMSG;
        goto out;
    }
    const struct stat *st = &e->st;
    if ((archive_entry_filetype(ae) & S_IFMT) != (st->st_mode & S_IFMT) ||
        (archive_entry_perm(ae) & 07777) != (st->st_mode & 07777) ||
        archive_entry_uid(ae) != (la_int64_t)st->st_uid ||
        archive_entry_gid(ae) != (la_int64_t)st->st_gid ||
        archive_entry_mtime(ae) != st->st_mtim.tv_sec ||
        archive_entry_mtime_nsec(ae) != st->st_mtim.tv_nsec) {
        snprintf(err, errlen, "%s: type, mode, owner or mtime differs from the source", want);
        rc = EBADMSG;
        goto out;
    }
    if (S_ISLNK(st->st_mode)) {
        const char *target = archive_entry_symlink(ae);
        if (!target || strcmp(target, e->link_target)) {
            snprintf(err, errlen, "%s: symlink target differs", want);
            rc = EBADMSG;
        }
        goto out;
    }
    if (S_ISREG(st->st_mode)) {
        unsigned char hs[32], hm[32];
        uint64_t ss = 0, ms = 0;
        if (archive_entry_size(ae) != (la_int64_t)st->st_size) {
            snprintf(err, errlen, "%s: size %lld in the tarball, %lld in the source", want,
                     (long long)archive_entry_size(ae), (long long)st->st_size);
            rc = EBADMSG;
            goto out;
        }
        if ((rc = sha_member(a, buf, hm, &ms)) != 0) {
            snprintf(err, errlen, "reading %s from the tarball: %s", want,
                     archive_error_string(a) ? archive_error_string(a) : strerror(rc));
            goto out;
        }
        if ((rc = sha_file(run_fd, e->rel, buf, hs, &ss)) != 0) {
            snprintf(err, errlen, "reading %s/%s: %s", run_path, e->rel, strerror(rc));
            goto out;
        }
        if (ss != ms || memcmp(hs, hm, 32)) {
            snprintf(err, errlen, "%s: contents differ from the source", want);
            rc = EBADMSG;
        }
    }
out:
    free(want);
    return rc;
}

int conv_verify(fetch_backend *b, const char *dir, const char *name,
                const char *run_path, const char *top,
                const char *want_sha_hex, const atomic_bool *cancel,
                char *err, size_t errlen)
{
    err[0] = '\0';
    struct conv_tree t;
    int rc = conv_tree_scan(run_path, &t, err, errlen);
    if (rc)
        return rc;
    struct raw_in r = { .fd = -1 };
    struct archive *a = NULL;
    int run_fd = -1;
    unsigned char *databuf = malloc(VERIFY_CHUNK);
    r.buf = malloc(VERIFY_CHUNK);
    r.sha = EVP_MD_CTX_new();
    if (!databuf || !r.buf || !r.sha || EVP_DigestInit_ex(r.sha, EVP_sha256(), NULL) != 1) {
        rc = ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (b) {
        rc = fetch_get(b, name, 0, 0, &r.s);
        if (rc) {
            snprintf(err, errlen, "cannot read back %s: %s", name, strerror(rc));
            goto out;
        }
    } else {
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, name) < 0) {
            rc = ENOMEM;
            goto out;
        }
        r.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (r.fd < 0) {
            rc = errno;
            snprintf(err, errlen, "cannot read back %s: %s", path, strerror(rc));
            free(path);
            goto out;
        }
        (void)posix_fadvise(r.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        free(path);
    }
    run_fd = open(run_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (run_fd < 0) {
        rc = errno;
        snprintf(err, errlen, "cannot open %s: %s", run_path, strerror(rc));
        goto out;
    }
    a = archive_read_new();
    if (!a) {
        rc = ENOMEM;
        goto out;
    }
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);
    if (archive_read_open(a, &r, NULL, raw_read_cb, NULL) != ARCHIVE_OK) {
        rc = r.err ? r.err : EBADMSG;
        snprintf(err, errlen, "%s is not a readable tarball: %s", name, archive_error_string(a));
        goto out;
    }
    struct archive_entry *ae;
    for (size_t i = 0; i < t.n; i++) {
        if (cancel && atomic_load(cancel)) {
            rc = ECANCELED;
            snprintf(err, errlen, "interrupted");
            goto out;
        }
        int h = archive_read_next_header(a, &ae);
        if (h == ARCHIVE_EOF) {
            snprintf(err, errlen, "%s/%s is missing from the tarball", top, t.v[i].rel);
            rc = EBADMSG;
            goto out;
        }
        if (h < ARCHIVE_WARN) {
            rc = r.err ? r.err : EBADMSG;
            snprintf(err, errlen, "reading %s: %s", name, archive_error_string(a));
            goto out;
        }
        rc = check_member(a, ae, run_fd, run_path, top, &t, &t.v[i], databuf, err, errlen);
        if (rc)
            goto out;
    }
    int h = archive_read_next_header(a, &ae);
    if (h != ARCHIVE_EOF) {
        rc = EBADMSG;
        if (h >= ARCHIVE_WARN)
            snprintf(err, errlen, "the tarball holds %s, which the source does not",
                     archive_entry_pathname(ae));
        else
            snprintf(err, errlen, "reading the end of %s: %s", name, archive_error_string(a));
        goto out;
    }
    /* Whatever libarchive did not pull (block padding) still counts for
     * the whole-file digest. */
    ssize_t n;
    while ((n = raw_read_some(&r)) > 0)
        ;
    if (n < 0) {
        rc = r.err;
        snprintf(err, errlen, "reading %s: %s", name, strerror(rc));
        goto out;
    }
    unsigned char d[32];
    char hex[65];
    unsigned int len;
    if (EVP_DigestFinal_ex(r.sha, d, &len) != 1) {
        rc = EIO;
        goto out;
    }
    hex_encode(d, sizeof d, hex);
    if (want_sha_hex && strcmp(hex, want_sha_hex)) {
        snprintf(err, errlen, "%s has SHA-256 %s, but %s was written", name, hex, want_sha_hex);
        rc = EBADMSG;
    }
out:
    if (rc && !err[0])
        snprintf(err, errlen, "verify %s: %s", name, strerror(rc));
    if (a)
        archive_read_free(a);
    if (r.s)
        fetch_stream_close(r.s);
    if (r.fd >= 0)
        close(r.fd);
    if (run_fd >= 0)
        close(run_fd);
    EVP_MD_CTX_free(r.sha);
    free(r.buf);
    free(databuf);
    conv_tree_free(&t);
    return rc;
}
