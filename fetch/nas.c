/* nas.c: the NAS backend: a directory of tarballs (sub-directories are key
 * prefixes), read with pread and replaced atomically by temp file + rename. */
#include "fetch/fetch_impl.h"
#include "util/crashpt.h"
#include "util/log.h"

#include <openssl/crypto.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TMP_PREFIX ".tarnfs-tmp."
#define SIDECAR_SUFFIX ".sha256"
#define MAX_WALK_DEPTH 64

struct nas_backend {
    fetch_backend base;
    int dirfd;
    char dir[PATH_MAX];
};

struct nas_stream {
    fetch_stream base;
    int fd;
    uint64_t pos, end;
};

static struct nas_backend *nas_of(fetch_backend *b)
{
    return (struct nas_backend *)b;
}

/* Keys are relative paths below the directory: no absolute paths, no "."
 * or ".." components, no empty components, nothing hidden (our temp files
 * start with a dot), so a key can never name a file outside the tree. */
static int check_key(const char *key)
{
    const char *p = key;
    if (!key || !*key || strlen(key) >= PATH_MAX / 2)
        return EINVAL;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len > NAME_MAX || p[0] == '.')
            return EINVAL;
        if (!slash)
            break;
        p = slash + 1;
        if (!*p)
            return EINVAL;      /* trailing slash: a prefix, not a key */
    }
    return 0;
}

/* Open path (relative, already checked by check_key) below dirfd, never
 * leaving it: a symlink may point elsewhere inside, but one that leads out
 * (absolute, or through "..") fails, as does any magic link (issue 12,
 * finding 15).  openat2(RESOLVE_BENEATH) where the kernel has it (5.6+);
 * otherwise each component is opened with O_NOFOLLOW, so no symlink is
 * followed at all.  Returns the descriptor, or -errno (escapes: -EXDEV or
 * -ELOOP). */
static int beneath_open(int dirfd, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0)
        return (int)fd;
    if (errno != ENOSYS)
        return -errno;
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    int cur = dirfd;
    char *save = NULL;
    char *comp = strtok_r(buf, "/", &save);
    if (!comp)
        return -EINVAL;
    for (;;) {
        char *next = strtok_r(NULL, "/", &save);
        int nfd = openat(cur, comp, next ? O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
                                         : flags | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (cur != dirfd)
            close(cur);
        if (nfd < 0)
            return -e;
        if (!next)
            return nfd;
        cur = nfd;
        comp = next;
    }
}

/* stat of path below dirfd as beneath_open resolves it.  Errors: ENOENT
 * (absent, not a directory on the way, or a symlink leading out). */
static int beneath_stat(int dirfd, const char *path, struct stat *st)
{
    int fd = beneath_open(dirfd, path, O_PATH);
    if (fd < 0)
        return (fd == -EXDEV || fd == -ELOOP || fd == -ENOTDIR) ? ENOENT : -fd;
    int rc = fstat(fd, st) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

/* mtime and size say when the file changed in place; the inode number
 * says it was replaced by rename (as every tarnfs writer does), even within
 * one tick of a coarse NAS clock and with the same size. */
static void version_of(const struct stat *st, char *out, size_t outlen)
{
    long long ns = (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
    snprintf(out, outlen, "%lld:%llu:%llu", ns, (unsigned long long)st->st_size,
             (unsigned long long)st->st_ino);
}

static void fill_info(struct fetch_objinfo *oi, const char *key, const struct stat *st)
{
    memset(oi, 0, sizeof *oi);
    snprintf(oi->key, sizeof oi->key, "%s", key);
    oi->size = (uint64_t)st->st_size;
    oi->mtime = st->st_mtim;
    version_of(st, oi->version, sizeof oi->version);
}

/* Read KEY.sha256 (sha256sum format) into out, or leave out empty. */
static void read_sidecar(struct nas_backend *nb, const char *key, char out[65])
{
    char path[PATH_MAX], buf[65];
    out[0] = '\0';
    if (snprintf(path, sizeof path, "%s%s", key, SIDECAR_SUFFIX) >= (int)sizeof path)
        return;
    int fd = beneath_open(nb->dirfd, path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = pread(fd, buf, 64, 0);
    close(fd);
    if (n != 64)
        return;
    buf[64] = '\0';
    if (fetch_is_sha256_hex(buf))
        for (int i = 0; i < 65; i++)
            out[i] = (char)(buf[i] >= 'A' && buf[i] <= 'F' ? buf[i] + 32 : buf[i]);
}

/* ---- list ------------------------------------------------------------- */

struct key_list {
    struct fetch_objinfo *items;
    size_t n, cap;
};

static int key_list_add(struct key_list *kl, const struct fetch_objinfo *oi)
{
    if (kl->n == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 64;
        void *p = realloc(kl->items, cap * sizeof *kl->items);
        if (!p)
            return ENOMEM;
        kl->items = p;
        kl->cap = cap;
    }
    kl->items[kl->n++] = *oi;
    return 0;
}

static int compare_keys(const void *a, const void *b)
{
    /* S3 lists in byte order of the UTF-8 key; so do we. */
    return strcmp(((const struct fetch_objinfo *)a)->key, ((const struct fetch_objinfo *)b)->key);
}

/* dst = key + "/"; the caller checked key leaves room in a key buffer. */
static void append_slash(char *dst, const char *key)
{
    size_t len = strlen(key);
    memcpy(dst, key, len);
    dst[len] = '/';
    dst[len + 1] = '\0';
}

/* Collect entries of directory dfd (whose key prefix is dirkey, "" or
 * ending in '/') whose names start with name_prefix.  With recurse, walk
 * sub-directories; otherwise report them as common prefixes. */
static int collect(int rootfd, int dfd, const char *dirkey, const char *name_prefix,
                   bool recurse, int depth, struct key_list *kl)
{
    DIR *d = fdopendir(dfd);
    int rc = 0;
    if (!d) {
        rc = errno;
        close(dfd);
        return rc;
    }
    size_t plen = strlen(name_prefix);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.' || strncmp(name, name_prefix, plen) != 0)
            continue;
        size_t nlen = strlen(name);
        if (nlen > sizeof(((struct fetch_objinfo *)0)->key) - 2 - strlen(dirkey))
            continue;
        struct stat st;
        struct fetch_objinfo oi;
        char key[sizeof oi.key];
        snprintf(key, sizeof key, "%s%s", dirkey, name);
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;           /* vanished */
        if (S_ISLNK(st.st_mode) && beneath_stat(rootfd, key, &st) != 0) {
            log_info("fetch: ignoring %s/%s: a dangling symlink or one leading "
                     "out of the NAS directory", dirkey[0] ? dirkey : ".", name);
            continue;
        }
        if (S_ISREG(st.st_mode)) {
            fill_info(&oi, key, &st);
            rc = key_list_add(kl, &oi);
        } else if (S_ISDIR(st.st_mode)) {
            if (!recurse) {
                memset(&oi, 0, sizeof oi);
                append_slash(oi.key, key);
                oi.is_prefix = true;
                rc = key_list_add(kl, &oi);
            } else if (depth < MAX_WALK_DEPTH) {
                struct stat lst;
                /* A symlinked directory could loop: walk real ones only. */
                if (fstatat(dirfd(d), name, &lst, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(lst.st_mode))
                    continue;
                int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (sub < 0)
                    continue;
                char subkey[sizeof oi.key];
                append_slash(subkey, key);
                rc = collect(rootfd, sub, subkey, "", true, depth + 1, kl);
            }
        }
        if (rc)
            break;
    }
    closedir(d);
    return rc;
}

static int nas_list(fetch_backend *b, const char *prefix, const char *delimiter,
                    fetch_list_cb cb, void *arg)
{
    struct nas_backend *nb = nas_of(b);
    bool recurse = !delimiter || !*delimiter;
    struct key_list kl = { 0 };
    char dirkey[PATH_MAX];
    const char *slash = strrchr(prefix, '/');
    const char *name_prefix = slash ? slash + 1 : prefix;
    size_t dlen = slash ? (size_t)(slash - prefix + 1) : 0;
    int rc;

    if (!recurse && strcmp(delimiter, "/") != 0)
        return EINVAL;          /* a directory tree only folds at '/' */
    if (dlen >= sizeof dirkey)
        return EINVAL;
    memcpy(dirkey, prefix, dlen);
    dirkey[dlen] = '\0';
    if (dlen) {
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%.*s", (int)dlen - 1, prefix);
        if (check_key(sub) != 0)
            return 0;           /* no key can live there */
    }
    int dfd = dlen ? beneath_open(nb->dirfd, dirkey, O_RDONLY | O_DIRECTORY)
                   : openat(nb->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!dlen && dfd < 0)
        dfd = -errno;
    if (dfd < 0)
        return (dfd == -ENOENT || dfd == -ENOTDIR || dfd == -EXDEV ||
                dfd == -ELOOP) ? 0 : -dfd;
    rc = collect(nb->dirfd, dfd, dirkey, name_prefix, recurse, 0, &kl);
    if (!rc) {
        if (kl.n)               /* qsort(NULL, 0) is undefined */
            qsort(kl.items, kl.n, sizeof *kl.items, compare_keys);
        for (size_t i = 0; i < kl.n; i++)
            if (cb(arg, &kl.items[i]) != 0)
                break;
    } else {
        log_error("fetch: listing %s/%s failed: %s", nb->dir, dirkey, strerror(rc));
    }
    free(kl.items);
    return rc;
}

/* ---- stat / open / read ----------------------------------------------- */

static int nas_stat(fetch_backend *b, const char *key, struct fetch_objinfo *oi)
{
    struct nas_backend *nb = nas_of(b);
    struct stat st;
    if (check_key(key))
        return ENOENT;
    int rc = beneath_stat(nb->dirfd, key, &st);
    if (rc)
        return rc;
    if (!S_ISREG(st.st_mode))
        return ENOENT;
    fill_info(oi, key, &st);
    read_sidecar(nb, key, oi->sha256);
    return 0;
}

static ssize_t nas_read(fetch_stream *s, void *buf, size_t cap)
{
    struct nas_stream *ns = (struct nas_stream *)s;
    if (ns->pos >= ns->end || cap == 0)
        return 0;
    if (cap > ns->end - ns->pos)
        cap = (size_t)(ns->end - ns->pos);
    for (;;) {
        ssize_t n = pread(ns->fd, buf, cap, (off_t)ns->pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;        /* the file shrank under us: never a clean end */
        ns->pos += (uint64_t)n;
        return n;
    }
}

static void nas_stream_close(fetch_stream *s)
{
    struct nas_stream *ns = (struct nas_stream *)s;
    close(ns->fd);
    free(ns);
}

static const struct fetch_stream_methods nas_stream_methods = {
    .read = nas_read,
    .close = nas_stream_close,
};

static int nas_open(fetch_backend *b, const char *key, uint64_t off, uint64_t len,
                    fetch_stream **out)
{
    struct nas_backend *nb = nas_of(b);
    struct stat st;
    if (check_key(key))
        return ENOENT;
    int fd = beneath_open(nb->dirfd, key, O_RDONLY);
    if (fd < 0)
        return (fd == -ENOTDIR || fd == -ELOOP || fd == -EXDEV) ? ENOENT : -fd;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ENOENT;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (off > size) {
        close(fd);
        return EINVAL;
    }
    struct nas_stream *ns = calloc(1, sizeof *ns);
    if (!ns) {
        close(fd);
        return ENOMEM;
    }
    ns->base.m = &nas_stream_methods;
    snprintf(ns->base.key, sizeof ns->base.key, "%s", key);
    ns->fd = fd;
    ns->pos = off;
    ns->end = (len == 0 || len > size - off) ? size : off + len;
    posix_fadvise(fd, (off_t)off, (off_t)(ns->end - off), POSIX_FADV_SEQUENTIAL);
    *out = &ns->base;
    return 0;
}

/* ---- put / delete ----------------------------------------------------- */

/* Open the parent directory of key below dirfd (creating the missing ones
 * if create), each resolved with beneath_open: a symlinked directory
 * leading out of the NAS directory is refused (ENOENT), never written
 * through. */
static int open_parent(struct nas_backend *nb, const char *key, bool create, int *pfd)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", key);
    char *last = strrchr(path, '/');
    if (!last) {
        *pfd = openat(nb->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return *pfd < 0 ? errno : 0;
    }
    *last = '\0';
    for (char *p = strchr(path, '/'); create; p = strchr(p + 1, '/')) {
        /* Make the next component inside its (checked) parent. */
        char *cut = p ? p : path + strlen(path);
        char saved = *cut;
        *cut = '\0';
        char *name = strrchr(path, '/');
        int dfd;
        if (name) {
            *name = '\0';
            dfd = beneath_open(nb->dirfd, path, O_RDONLY | O_DIRECTORY);
            *name++ = '/';
        } else {
            name = path;
            dfd = openat(nb->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd < 0)
                dfd = -errno;
        }
        if (dfd < 0)
            return (dfd == -EXDEV || dfd == -ELOOP) ? ENOENT : -dfd;
        int rc = mkdirat(dfd, name, 0755) != 0 && errno != EEXIST ? errno : 0;
        close(dfd);
        *cut = saved;
        if (rc)
            return rc;
        if (!p)
            break;
    }
    *pfd = beneath_open(nb->dirfd, path, O_RDONLY | O_DIRECTORY);
    if (*pfd < 0) {
        int rc = -*pfd;
        *pfd = -1;
        return (rc == EXDEV || rc == ELOOP || rc == ENOTDIR) ? ENOENT : rc;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* This host's name as temp file names carry it (at most 40 bytes). */
static void temp_host(char *out, size_t cap)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    snprintf(out, cap, "%.40s", host);
}

/* Make a temp file in pfd named after base; returns fd, name in tmp.  The
 * name ends in ".PID@HOST", so a sweep can tell a temp file whose writer
 * died (fetch_sweep_temps) from one still being written. */
static int make_temp(int pfd, const char *base, char *tmp, size_t tmplen)
{
    char host[48];
    temp_host(host, sizeof host);
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned long r = ((unsigned long)random() << 16) ^ (unsigned long)getpid() ^ (unsigned long)attempt;
        snprintf(tmp, tmplen, TMP_PREFIX "%.150s.%lx.%ld@%s", base, r,
                 (long)getpid(), host);
        int fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST)
            return fd < 0 ? -errno : fd;
    }
    return -EEXIST;
}

/* Whether temp file name was made by a process of this host (host) that no
 * longer runs. */
static bool temp_orphaned(const char *name, const char *host)
{
    const char *at = strrchr(name, '@');
    if (!at || strcmp(at + 1, host) != 0)
        return false;
    const char *p = at;
    while (p > name && p[-1] >= '0' && p[-1] <= '9')
        p--;
    if (p == at || p == name || p[-1] != '.')
        return false;
    long pid = strtol(p, NULL, 10);
    return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int nas_sweep(fetch_backend *b, const char *key, unsigned *removed)
{
    struct nas_backend *nb = nas_of(b);
    *removed = 0;
    int rc = check_key(key);
    if (rc)
        return rc;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", key);
    char *last = strrchr(dir, '/');
    if (last)
        *last = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int dfd = openat(nb->dirfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : errno;
    DIR *d = fdopendir(dfd);
    if (!d) {
        rc = errno;
        close(dfd);
        return rc;
    }
    char host[48];
    temp_host(host, sizeof host);
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) &&
            temp_orphaned(de->d_name, host) &&
            unlinkat(dirfd(d), de->d_name, 0) == 0)
            (*removed)++;
    closedir(d);
    return 0;
}

/* Write the sidecar for base in pfd atomically ("HEX  base\n", the format
 * sha256sum -c reads). */
static int write_sidecar(int pfd, const char *base, const char *hex)
{
    char tmp[NAME_MAX + 1], name[NAME_MAX + 1], line[80 + NAME_MAX];
    if (snprintf(name, sizeof name, "%s" SIDECAR_SUFFIX, base) >= (int)sizeof name)
        return ENAMETOOLONG;
    int fd = make_temp(pfd, name, tmp, sizeof tmp);
    if (fd < 0)
        return -fd;
    int len = snprintf(line, sizeof line, "%s  %s\n", hex, base);
    int rc = write_all(fd, line, (size_t)len);
    if (!rc && fsync(fd) != 0)
        rc = errno;
    close(fd);
    if (!rc && renameat(pfd, tmp, pfd, name) != 0)
        rc = errno;
    if (rc)
        unlinkat(pfd, tmp, 0);
    return rc;
}

/* Publish tmp as base in pfd, honouring the preconditions.  The caller
 * holds the directory lock. */
static int publish(int pfd, const char *tmp, const char *base, const struct fetch_put_opts *o)
{
    char sidecar[NAME_MAX + 8];
    struct stat st;
    bool exists = beneath_stat(pfd, base, &st) == 0;

    if (o->if_match) {
        char cur[128];
        if (!exists)
            return ECANCELED;
        version_of(&st, cur, sizeof cur);
        if (strcmp(cur, o->if_match) != 0)
            return ECANCELED;
    }
    if (o->if_none_match && exists)
        return ECANCELED;
    /* No stale checksum may ever describe the new file: drop it first. */
    snprintf(sidecar, sizeof sidecar, "%s" SIDECAR_SUFFIX, base);
    if (unlinkat(pfd, sidecar, 0) != 0 && errno != ENOENT)
        return errno;
    if (o->if_none_match) {
        if (renameat2(pfd, tmp, pfd, base, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno == EEXIST)
            return ECANCELED;
        if (errno != EINVAL && errno != ENOSYS)
            return errno;
        /* Filesystem without RENAME_NOREPLACE: link(2) never replaces. */
        if (linkat(pfd, tmp, pfd, base, 0) != 0)
            return errno == EEXIST ? ECANCELED : errno;
        unlinkat(pfd, tmp, 0);
        return 0;
    }
    return renameat(pfd, tmp, pfd, base) == 0 ? 0 : errno;
}

/* An upload: a temp file beside the target, renamed over it at commit. */
struct nas_upload {
    fetch_upload base;
    struct nas_backend *nb;
    const struct fetch_put_opts *o;
    char *key;
    const char *name;               /* last component of key */
    char tmp[NAME_MAX + 1];
    int pfd, fd;                    /* parent directory, temp file */
    int err;                        /* first error: sticky */
};

static struct nas_upload *nas_upload_of(fetch_upload *u)
{
    return (struct nas_upload *)u;
}

static void nas_upload_free(struct nas_upload *u)
{
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp[0])
        unlinkat(u->pfd, u->tmp, 0);
    if (u->pfd >= 0)
        close(u->pfd);
    free(u->key);
    free(u);
}

static int nas_upload_begin(fetch_backend *b, const char *key, const struct fetch_put_opts *o,
                            fetch_upload **out)
{
    struct nas_backend *nb = nas_of(b);
    int rc;
    if ((rc = check_key(key)))
        return rc;
    const char *base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
    if (strlen(base) + strlen(SIDECAR_SUFFIX) > NAME_MAX)
        return ENAMETOOLONG;
    struct nas_upload *u = calloc(1, sizeof *u);
    if (!u)
        return ENOMEM;
    u->nb = nb;
    u->o = o;
    u->pfd = u->fd = -1;
    if (!(u->key = strdup(key))) {
        rc = ENOMEM;
        goto fail;
    }
    u->name = u->key + (base - key);
    if ((rc = open_parent(nb, key, true, &u->pfd)))
        goto fail;
    int fd = make_temp(u->pfd, u->name, u->tmp, sizeof u->tmp);
    if (fd < 0) {
        rc = -fd;
        u->tmp[0] = '\0';
        goto fail;
    }
    u->fd = fd;
    *out = &u->base;
    return 0;
fail:
    log_error("fetch: storing %s/%s failed: %s", nb->dir, key, strerror(rc));
    nas_upload_free(u);
    return rc;
}

static int nas_upload_write(fetch_upload *fu, const void *buf, size_t len)
{
    struct nas_upload *u = nas_upload_of(fu);
    if (u->err)
        return u->err;
    if ((u->err = write_all(u->fd, buf, len)))
        log_error("fetch: storing %s/%s failed: %s", u->nb->dir, u->key, strerror(u->err));
    return u->err;
}

static void nas_upload_abort(fetch_upload *fu)
{
    nas_upload_free(nas_upload_of(fu));
}

static int nas_upload_commit(fetch_upload *fu, const char *hex, struct fetch_objinfo *oi)
{
    struct nas_upload *u = nas_upload_of(fu);
    const struct fetch_put_opts *o = u->o;
    int rc = u->err;
    if (rc)
        goto out;
    crash_point("put-written");
    if (fsync(u->fd) != 0) {
        rc = errno;
        goto out;
    }
    close(u->fd);
    u->fd = -1;
    crash_point("put-fsynced");
    /* The lock makes check-then-rename atomic against other tarnfs writers
     * of this directory (flock on a directory works on local filesystems). */
    flock(u->pfd, LOCK_EX);
    rc = publish(u->pfd, u->tmp, u->name, o);
    if (!rc) {
        u->tmp[0] = '\0';
        crash_point("put-renamed");
        rc = write_sidecar(u->pfd, u->name, hex);
        crash_point("put-sidecar");
        if (!rc && fsync(u->pfd) != 0)
            rc = errno;
    }
    flock(u->pfd, LOCK_UN);
    if (!rc && oi) {
        struct stat st;
        if (fstatat(u->pfd, u->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            fill_info(oi, u->key, &st);
            snprintf(oi->sha256, sizeof oi->sha256, "%s", hex);
        }
    }
out:
    if (rc && rc != ECANCELED && rc != u->err)
        log_error("fetch: storing %s/%s failed: %s", u->nb->dir, u->key, strerror(rc));
    nas_upload_free(u);
    return rc;
}

static int nas_del(fetch_backend *b, const char *key)
{
    struct nas_backend *nb = nas_of(b);
    char sidecar[PATH_MAX];
    int rc, pfd;
    struct stat st;

    if (check_key(key))
        return ENOENT;
    if ((rc = open_parent(nb, key, false, &pfd)))
        return rc == ENOTDIR ? ENOENT : rc;
    const char *base = strrchr(key, '/') ? strrchr(key, '/') + 1 : key;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = errno == ENOTDIR ? ENOENT : errno;
    else if (S_ISDIR(st.st_mode))
        rc = ENOENT;
    if (rc) {
        close(pfd);
        return rc;
    }
    snprintf(sidecar, sizeof sidecar, "%s" SIDECAR_SUFFIX, base);
    if (unlinkat(pfd, base, 0) != 0)
        rc = errno;
    else if (unlinkat(pfd, sidecar, 0) != 0 && errno != ENOENT)
        rc = errno;
    if (!rc && fsync(pfd) != 0)
        rc = errno;
    close(pfd);
    return rc;
}

static void nas_close(fetch_backend *b)
{
    struct nas_backend *nb = nas_of(b);
    close(nb->dirfd);
    free(nb);
}

static const struct fetch_methods nas_methods = {
    .name = "nas",
    .list = nas_list,
    .stat = nas_stat,
    .open = nas_open,
    .upload_begin = nas_upload_begin,
    .upload_write = nas_upload_write,
    .upload_commit = nas_upload_commit,
    .upload_abort = nas_upload_abort,
    .del = nas_del,
    .sweep = nas_sweep,
    .close = nas_close,
};

int fetch_nas_check(const char *dir, char *err, size_t errlen)
{
    if (strlen(dir) >= PATH_MAX) {
        snprintf(err, errlen, "NAS directory path is too long");
        return EINVAL;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    if (!rc && access(dir, R_OK | X_OK) != 0)
        rc = errno;
    if (rc)
        snprintf(err, errlen, "NAS directory %s: %s", dir, strerror(rc));
    return rc;
}

int fetch_nas_open(const char *dir, fetch_backend **out, char *err, size_t errlen)
{
    /* OpenSSL's one-time set-up (its config, the error state of the thread
     * doing it) happens here, on the opening thread, not inside the first
     * an upload on some worker thread that may exit with it. */
    if (!OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL)) {
        snprintf(err, errlen, "cannot initialise OpenSSL");
        return EIO;
    }
    struct nas_backend *nb = calloc(1, sizeof *nb);
    if (!nb)
        return ENOMEM;
    if (strlen(dir) >= sizeof nb->dir) {
        free(nb);
        snprintf(err, errlen, "NAS directory path is too long");
        return EINVAL;
    }
    snprintf(nb->dir, sizeof nb->dir, "%s", dir);
    nb->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (nb->dirfd < 0) {
        int rc = errno;
        snprintf(err, errlen, "NAS directory %s: %s", dir, strerror(rc));
        free(nb);
        return rc;
    }
    nb->base.m = &nas_methods;
    *out = &nb->base;
    return 0;
}
