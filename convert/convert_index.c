/* convert_index.c: run index sidecars of tarballs: store (file or S3 object), load, verify against a fresh scan, and `tarnfs index` (backfill of a collection). */
#include "convert/convert.h"
#include "convert/convert_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

/* ---- `tarnfs index`: backfill the indexes of a collection ----------------- */

static const char *const compressed_suffixes[] = {
    ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tzst", ".tar.bz2", ".tbz2",
    ".tar.xz", ".txz",
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* 0: not a tarball, 1: plain tarball, 2: compressed tarball. */
static int tarball_kind(const char *key, size_t *suffix_len)
{
    for (size_t i = 0; i < sizeof compressed_suffixes / sizeof compressed_suffixes[0]; i++)
        if (ends_with(key, compressed_suffixes[i])) {
            *suffix_len = strlen(compressed_suffixes[i]);
            return 2;
        }
    if (ends_with(key, ".tar")) {
        *suffix_len = 4;
        return 1;
    }
    return 0;
}

struct key_list {
    char **v;
    size_t n, cap;
};

static int collect_key(void *arg, const struct fetch_objinfo *oi)
{
    struct key_list *kl = arg;
    size_t sl;
    if (oi->is_prefix || !tarball_kind(oi->key, &sl))
        return 0;
    if (kl->n == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 64;
        char **v = realloc(kl->v, cap * sizeof *v);
        if (!v)
            return ENOMEM;
        kl->v = v;
        kl->cap = cap;
    }
    if (!(kl->v[kl->n] = strdup(oi->key)))
        return ENOMEM;
    kl->n++;
    return 0;
}

static double mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void mib(uint64_t b, char *out, size_t cap)
{
    snprintf(out, cap, "%.1f MiB", (double)b / 1048576.0);
}

struct ix_progress {
    const char *key;
    uint64_t total;
    double t0, last;
    bool show;
    size_t i, n;
};

static int ix_progress_fn(void *arg, uint64_t bytes)
{
    struct ix_progress *p = arg;
    double now = mono_now();
    if (!p->show || (now - p->last < 0.25 && bytes < p->total))
        return 0;
    p->last = now;
    char a[32], t[32], r[32];
    mib(bytes, a, sizeof a);
    mib(p->total, t, sizeof t);
    mib(now > p->t0 ? (uint64_t)((double)bytes / (now - p->t0)) : 0, r, sizeof r);
    fprintf(stderr, "\r\033[K[%zu/%zu] %s  %s / %s  %s/s", p->i + 1, p->n, p->key, a, t, r);
    fflush(stderr);
    return 0;
}

static ssize_t stream_read(void *arg, void *buf, size_t cap)
{
    return fetch_read(arg, buf, cap);
}

enum ix_outcome { IX_INDEXED, IX_UP_TO_DATE, IX_SKIPPED, IX_FAILED };

/* Index one tarball (see conv_index_run). */
static enum ix_outcome index_one(fetch_backend *b, bool s3, const char *root, const char *key,
                                 const struct conv_index_opts *o, struct ix_progress *pr,
                                 char *msg, size_t msglen)
{
    size_t sl;
    if (tarball_kind(key, &sl) == 2) {
        snprintf(msg, msglen, "compressed: no random access, so no index");
        return IX_SKIPPED;
    }
    struct fetch_objinfo toi, ioi, after;
    int rc = fetch_stat(b, key, &toi);
    if (rc) {
        snprintf(msg, msglen, "cannot stat it: %s", strerror(rc));
        return IX_FAILED;
    }
    struct tix_source actual = { .size = toi.size };
    memcpy(actual.version, toi.version, sizeof actual.version);
    memcpy(actual.sha256, toi.sha256, sizeof actual.sha256);

    /* An existing sidecar that parses and names this very tarball is kept. */
    void *buf = NULL;
    size_t len = 0;
    char why[300] = "";
    bool stale = false, forced = false;
    memset(&ioi, 0, sizeof ioi);
    rc = conv_index_load(s3 ? b : NULL, root, key, &buf, &len, &ioi, why, sizeof why);
    if (rc == 0) {
        tix_index *ix = NULL;
        int prc = tix_parse(buf, len, &ix, why, sizeof why);
        bool ok = !prc && tix_matches(ix, &actual);
        if (!prc && !ok)
            snprintf(why, sizeof why, "it describes another version of the tarball");
        tix_free(ix);
        free(buf);
        if (ok && !o->force) {
            snprintf(msg, msglen, "index matches");
            return IX_UP_TO_DATE;
        }
        stale = !ok;
        forced = ok;
    } else if (rc == EFBIG) {
        snprintf(why, sizeof why, "larger than any index tarnfs accepts");
        stale = true;
    } else if (rc != ENOENT) {
        snprintf(msg, msglen, "%s", why);
        return IX_FAILED;
    }

    fetch_stream *st = NULL;
    if ((rc = fetch_get(b, key, 0, 0, &st)) != 0) {
        snprintf(msg, msglen, "cannot read it: %s", strerror(rc));
        return IX_FAILED;
    }
    pr->total = toi.size;
    pr->t0 = mono_now();
    pr->last = 0;
    void *ixbuf = NULL;
    size_t ixlen = 0;
    char serr[400] = "";
    rc = tix_scan(stream_read, st, &actual, ix_progress_fn, pr, &ixbuf, &ixlen, serr, sizeof serr);
    fetch_stream_close(st);
    double secs = mono_now() - pr->t0;
    if (pr->show) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    if (rc == ENOTSUP) {
        snprintf(msg, msglen, "%s", serr);
        return IX_SKIPPED;
    }
    if (rc) {
        snprintf(msg, msglen, "%s", serr);
        return IX_FAILED;
    }
    /* The tarball must still be the one read. */
    rc = fetch_stat(b, key, &after);
    if (rc || after.size != toi.size || strcmp(after.version, toi.version) != 0) {
        free(ixbuf);
        snprintf(msg, msglen, "it changed while it was read; run again");
        return IX_FAILED;
    }
    /* S3: only create, or only replace the stale sidecar read above, so a
     * newer index stored meanwhile is never overwritten. */
    struct fetch_put_opts po = { 0 };
    if (s3) {
        if ((stale || forced) && ioi.version[0])
            po.if_match = ioi.version;
        else if (!stale && !forced)
            po.if_none_match = true;
    }
    char perr[400] = "";
    rc = conv_index_put(s3 ? b : NULL, root, key, ixbuf, ixlen, &po, perr, sizeof perr);
    tix_index *done = NULL;
    size_t members = 0;
    if (!rc && tix_parse(ixbuf, ixlen, &done, NULL, 0) == 0)
        members = tix_count(done);
    tix_free(done);
    free(ixbuf);
    if (rc == ECANCELED) {
        snprintf(msg, msglen, "another index was stored meanwhile; left alone");
        return IX_SKIPPED;
    }
    if (rc) {
        snprintf(msg, msglen, "%s", perr);
        return IX_FAILED;
    }
    char sz[32], rate[32];
    mib(toi.size, sz, sizeof sz);
    mib(secs > 0 ? (uint64_t)((double)toi.size / secs) : 0, rate, sizeof rate);
    snprintf(msg, msglen, "%zu members, %s read in %.1f s, %s/s%s%s", members, sz, secs, rate,
             stale ? "; replaced a stale index: " : forced ? "; rebuilt (--force)" : "",
             stale ? why : "");
    return IX_INDEXED;
}

int conv_index_run(const char *source, char **names, size_t n_names,
                   const struct conv_index_opts *o)
{
    const char *prog = "tarnfs index";
    char *root = NULL, err[512] = "";
    bool s3 = strncmp(source, "s3://", 5) == 0;
    if (!s3 && !(root = realpath(source, NULL))) {
        fprintf(stderr, "%s: %s: %s\n", prog, source, strerror(errno));
        return 2;
    }
    fetch_backend *b = NULL;
    struct fetch_config cfg = { .s3_endpoint = o->s3_endpoint };
    int rc = fetch_open(s3 ? source : root, &cfg, &b, err, sizeof err);
    if (rc) {
        fprintf(stderr, "%s: %s: %s\n", prog, source, err[0] ? err : strerror(rc));
        free(root);
        return 2;
    }
    struct key_list kl = { 0 };
    rc = fetch_list(b, "", NULL, collect_key, &kl);
    int status = 0;
    if (rc) {
        fprintf(stderr, "%s: listing %s: %s\n", prog, source,
                rc == ENOENT ? "no such bucket or directory" :
                rc == EACCES ? "the credentials were refused" : strerror(rc));
        status = 2;
        goto out;
    }
    /* NAMEs: a key, or a key without its tarball suffix. */
    bool *want = calloc(kl.n ? kl.n : 1, sizeof *want);
    if (!want) {
        status = 1;
        goto out;
    }
    for (size_t j = 0; j < n_names; j++) {
        bool found = false;
        for (size_t i = 0; i < kl.n; i++) {
            size_t sl;
            tarball_kind(kl.v[i], &sl);
            size_t kn = strlen(kl.v[i]);
            if (strcmp(kl.v[i], names[j]) == 0 ||
                (strlen(names[j]) == kn - sl && strncmp(kl.v[i], names[j], kn - sl) == 0)) {
                want[i] = true;
                found = true;
            }
        }
        if (!found) {
            printf("FAILED     %s: no such tarball in %s\n", names[j], source);
            status = 1;
        }
    }
    size_t todo = 0;
    for (size_t i = 0; i < kl.n; i++) {
        if (!n_names)
            want[i] = true;
        todo += want[i];
    }
    size_t count[4] = { 0 };
    struct ix_progress pr = { .show = o->progress, .n = todo };
    for (size_t i = 0; i < kl.n; i++) {
        if (!want[i])
            continue;
        char msg[800] = "";
        pr.key = kl.v[i];
        enum ix_outcome r = index_one(b, s3, root, kl.v[i], o, &pr, msg, sizeof msg);
        pr.i++;
        count[r]++;
        static const char *const word[] = { "indexed   ", "up-to-date", "skip      ",
                                             "FAILED    " };
        if (r == IX_FAILED)
            printf("%s %s: %s\n", word[r], kl.v[i], msg);
        else if (!o->quiet || r != IX_UP_TO_DATE)
            printf("%s %s  (%s)\n", word[r], kl.v[i], msg);
        fflush(stdout);
    }
    free(want);
    printf("summary: %zu tarball%s: %zu indexed, %zu up to date, %zu skipped, %zu failed\n",
           todo, todo == 1 ? "" : "s", count[IX_INDEXED], count[IX_UP_TO_DATE],
           count[IX_SKIPPED], count[IX_FAILED]);
    if (count[IX_FAILED])
        status = 1;
out:
    for (size_t i = 0; i < kl.n; i++)
        free(kl.v[i]);
    free(kl.v);
    fetch_close(b);
    free(root);
    return status;
}
