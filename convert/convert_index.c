/* convert_index.c: run index sidecars of tarballs: store (file or S3 object), load, verify against a fresh scan, and `tarnfs index` (backfill of a collection). */
#include "convert/convert_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *conv_index_name(const char *name)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s", name, TIX_SUFFIX) < 0)
        return NULL;
    return s;
}

static char *path_join(const char *dir, const char *name)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s", dir, name) < 0)
        return NULL;
    return s;
}

/* Write buf to path atomically: a temporary beside it, fsync, rename,
 * fsync of the directory. */
static int write_file_atomic(const char *path, const void *buf, size_t len)
{
    char *dcopy = strdup(path), *tmp = NULL;
    if (!dcopy)
        return ENOMEM;
    const char *dir = dirname(dcopy);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (asprintf(&tmp, "%s/.%s.tmp.%ld", dir, base, (long)getpid()) < 0) {
        free(dcopy);
        return ENOMEM;
    }
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        rc = errno;
        goto out;
    }
    const unsigned char *p = buf;
    while (len > 0 && !rc) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno != EINTR)
                rc = errno;
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
    if (!rc && fsync(fd) != 0)
        rc = errno;
    if (close(fd) != 0 && !rc)
        rc = errno;
    if (!rc && rename(tmp, path) != 0)
        rc = errno;
    if (rc) {
        unlink(tmp);
    } else {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) != 0)
                rc = errno;
            close(dfd);
        }
    }
out:
    free(tmp);
    free(dcopy);
    return rc;
}

int conv_nas_info(const char *dir, const char *name, struct fetch_objinfo *oi,
                  char *err, size_t errlen)
{
    fetch_backend *nb = NULL;
    char ferr[256] = "";
    char *abs = realpath(dir, NULL);   /* the NAS backend wants an absolute path */
    int rc = abs ? fetch_open(abs, NULL, &nb, ferr, sizeof ferr) : errno;
    free(abs);
    if (!rc)
        rc = fetch_stat(nb, name, oi);
    if (rc)
        snprintf(err, errlen, "cannot stat %s/%s: %s", dir, name, ferr[0] ? ferr : strerror(rc));
    if (nb)
        fetch_close(nb);
    return rc;
}

struct mem_pull {
    const unsigned char *p;
    size_t left;
};

static ssize_t mem_pull_fn(void *arg, void *buf, size_t cap)
{
    struct mem_pull *m = arg;
    size_t n = m->left < cap ? m->left : cap;
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return (ssize_t)n;
}

int conv_index_put(fetch_backend *b, const char *dir, const char *name,
                   const void *buf, size_t len, const struct fetch_put_opts *po,
                   char *err, size_t errlen)
{
    char *iname = conv_index_name(name), *path = NULL;
    if (!iname || (!b && !(path = path_join(dir, iname)))) {
        free(iname);
        snprintf(err, errlen, "out of memory");
        return ENOMEM;
    }
    int rc;
    if (b) {
        struct mem_pull m = { buf, len };
        struct fetch_put_opts none = { 0 };
        rc = fetch_put(b, iname, mem_pull_fn, &m, po ? po : &none, NULL);
        if (rc == ECANCELED)
            snprintf(err, errlen, "%s changed meanwhile (not overwritten)", iname);
        else if (rc)
            snprintf(err, errlen, "storing %s: %s", iname, strerror(rc));
    } else {
        rc = write_file_atomic(path, buf, len);
        if (rc)
            snprintf(err, errlen, "writing %s: %s", path, strerror(rc));
    }
    free(iname);
    free(path);
    return rc;
}

int conv_index_store(fetch_backend *b, const char *dir, const char *name,
                     tix_writer *w, const struct tix_source *src,
                     const struct fetch_put_opts *po, char *err, size_t errlen)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = tix_writer_finish(w, src, &buf, &len);
    if (rc) {
        snprintf(err, errlen, "cannot finish the index of %s: %s", name, strerror(rc));
        return rc;
    }
    rc = conv_index_put(b, dir, name, buf, len, po, err, errlen);
    free(buf);
    return rc;
}

int conv_index_load(fetch_backend *b, const char *dir, const char *name,
                    void **bufp, size_t *lenp, struct fetch_objinfo *oi,
                    char *err, size_t errlen)
{
    char *iname = conv_index_name(name), *path = NULL;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0, fd = -1;
    fetch_stream *s = NULL;
    if (!iname || (!b && !(path = path_join(dir, iname)))) {
        rc = ENOMEM;
        goto out;
    }
    if (b) {
        struct fetch_objinfo tmp;
        if ((rc = fetch_stat(b, iname, oi ? oi : &tmp)) != 0)
            goto out;
        if ((oi ? oi : &tmp)->size > CONV_INDEX_MAX) {
            rc = EFBIG;
            goto out;
        }
        if ((rc = fetch_get(b, iname, 0, 0, &s)) != 0)
            goto out;
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            rc = errno;
            goto out;
        }
        if (oi) {
            memset(oi, 0, sizeof *oi);
            struct stat st;
            if (fstat(fd, &st) == 0)
                oi->size = (uint64_t)st.st_size;
        }
    }
    for (;;) {
        if (cap - len < 65536) {
            if (cap >= CONV_INDEX_MAX) {
                rc = EFBIG;
                goto out;
            }
            cap = cap ? cap * 2 : 65536;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                rc = ENOMEM;
                goto out;
            }
            buf = nb;
        }
        ssize_t n = s ? fetch_read(s, buf + len, cap - len) : read(fd, buf + len, cap - len);
        if (n < 0) {
            rc = s ? (int)-n : errno;
            if (!s && rc == EINTR)
                continue;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
out:
    if (rc && rc != ENOENT)
        snprintf(err, errlen, "cannot read %s: %s", iname ? iname : name,
                 rc == EFBIG ? "larger than any index tarnfs accepts" : strerror(rc));
    if (s)
        fetch_stream_close(s);
    if (fd >= 0)
        close(fd);
    free(iname);
    free(path);
    if (rc) {
        free(buf);
        return rc;
    }
    *bufp = buf;
    *lenp = len;
    return 0;
}

/* ---- verify: the stored index equals a fresh scan of the tarball -------- */

struct tar_in {
    int fd;
    fetch_stream *s;
    const atomic_bool *cancel;
};

static ssize_t tar_in_read(void *arg, void *buf, size_t cap)
{
    struct tar_in *t = arg;
    if (t->cancel && atomic_load(t->cancel))
        return -ECANCELED;
    if (t->s)
        return fetch_read(t->s, buf, cap);
    for (;;) {
        ssize_t n = read(t->fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : n;
    }
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The first difference between two indexes, or NULL. */
static const char *index_diff(const tix_index *a, const tix_index *b, char *buf, size_t len)
{
    if (tix_count(a) != tix_count(b)) {
        snprintf(buf, len, "%zu members indexed, the tarball has %zu", tix_count(a),
                 tix_count(b));
        return buf;
    }
    for (size_t i = 0; i < tix_count(a); i++) {
        struct tix_member x, y;
        tix_get(a, i, &x);
        tix_get(b, i, &y);
        bool same = strcmp(x.path, y.path) == 0 && same_str(x.link, y.link) &&
                    x.type == y.type && x.flags == y.flags && x.mode == y.mode &&
                    x.uid == y.uid && x.gid == y.gid && x.size == y.size &&
                    x.mtime_sec == y.mtime_sec && x.mtime_nsec == y.mtime_nsec &&
                    x.rdev == y.rdev && x.data_off == y.data_off && x.nsums == y.nsums &&
                    (x.nsums == 0 || memcmp(x.sums, y.sums, 4 * (size_t)x.nsums) == 0);
        if (!same) {
            snprintf(buf, len, "member %zu (%s) differs from the tarball (offset %llu, there %llu)",
                     i, x.path, (unsigned long long)x.data_off, (unsigned long long)y.data_off);
            return buf;
        }
    }
    return NULL;
}

int conv_index_verify(fetch_backend *b, const char *dir, const char *name,
                      const struct tix_source *actual, const atomic_bool *cancel,
                      char *err, size_t errlen)
{
    void *buf = NULL, *fresh = NULL;
    size_t len = 0, flen = 0;
    tix_index *ix = NULL, *fx = NULL;
    char why[300] = "";
    struct tar_in in = { .fd = -1, .cancel = cancel };
    int rc = conv_index_load(b, dir, name, &buf, &len, NULL, err, errlen);
    if (rc) {
        if (rc == ENOENT)
            snprintf(err, errlen, "%s%s is missing", name, TIX_SUFFIX);
        return rc;
    }
    if ((rc = tix_parse(buf, len, &ix, why, sizeof why)) != 0) {
        snprintf(err, errlen, "%s%s does not parse: %s", name, TIX_SUFFIX, why);
        rc = EBADMSG;
        goto out;
    }
    if (!tix_matches(ix, actual)) {
        snprintf(err, errlen, "%s%s describes another tarball (size %llu, sha256 %s)", name,
                 TIX_SUFFIX, (unsigned long long)tix_get_source(ix)->size,
                 tix_get_source(ix)->sha256);
        rc = EBADMSG;
        goto out;
    }
    if (b) {
        rc = fetch_get(b, name, 0, 0, &in.s);
    } else {
        char *path = path_join(dir, name);
        in.fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        rc = !path ? ENOMEM : in.fd < 0 ? errno : 0;
        free(path);
    }
    if (rc) {
        snprintf(err, errlen, "cannot read %s again: %s", name, strerror(rc));
        goto out;
    }
    rc = tix_scan(tar_in_read, &in, actual, NULL, NULL, &fresh, &flen, why, sizeof why);
    if (rc) {
        snprintf(err, errlen, "scanning %s for its index: %s", name, why);
        goto out;
    }
    if ((rc = tix_parse(fresh, flen, &fx, why, sizeof why)) != 0) {
        snprintf(err, errlen, "the scanned index of %s does not parse: %s", name, why);
        goto out;
    }
    if (index_diff(ix, fx, why, sizeof why)) {
        snprintf(err, errlen, "%s%s: %s", name, TIX_SUFFIX, why);
        rc = EBADMSG;
    }
out:
    if (in.s)
        fetch_stream_close(in.s);
    if (in.fd >= 0)
        close(in.fd);
    tix_free(ix);
    tix_free(fx);
    free(buf);
    free(fresh);
    return rc;
}
