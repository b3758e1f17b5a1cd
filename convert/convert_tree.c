/* convert_tree.c: scans one run directory into a sorted list of entries (pre-order, siblings bytewise), finds hard links, and deletes a verified tree. */
#include "convert/convert_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tree_push(struct conv_tree *t, char *rel, const struct stat *st,
                     char *link_target)
{
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        struct conv_entry *nv = realloc(t->v, ncap * sizeof *nv);
        if (!nv)
            return ENOMEM;
        t->v = nv;
        t->cap = ncap;
    }
    struct conv_entry *e = &t->v[t->n++];
    e->rel = rel;
    e->st = *st;
    e->link_target = link_target;
    e->hardlink_of = -1;
    if (S_ISREG(st->st_mode))
        t->data_bytes += (uint64_t)st->st_size;
    if (!S_ISDIR(st->st_mode))
        t->files++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int conv_list_names(DIR *d, bool dirs_only, char ***names_out, size_t *n_out)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct stat st;
        if (dirs_only && (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
                          !S_ISDIR(st.st_mode))) {
            errno = 0;
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) { rc = ENOMEM; break; }
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name))) { rc = ENOMEM; break; }
        n++;
        errno = 0;
    }
    if (!rc && errno)
        rc = errno;
    if (rc) {
        conv_names_free(names, n);
        return rc;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    *names_out = names;
    *n_out = n;
    return 0;
}

void conv_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static char *join_rel(const char *parent, const char *name)
{
    size_t pl = strlen(parent), nl = strlen(name);
    char *s = malloc(pl + nl + 2);
    if (!s)
        return NULL;
    if (pl) {
        memcpy(s, parent, pl);
        s[pl] = '/';
        memcpy(s + pl + 1, name, nl + 1);
    } else {
        memcpy(s, name, nl + 1);
    }
    return s;
}

/* Reads a symlink's target whatever its length. */
static int read_link(int dfd, const char *name, size_t hint, char **out)
{
    size_t cap = hint + 1 > 64 ? hint + 1 : 64;
    for (;;) {
        char *buf = malloc(cap);
        if (!buf)
            return ENOMEM;
        ssize_t n = readlinkat(dfd, name, buf, cap);
        if (n < 0) {
            int e = errno;
            free(buf);
            return e;
        }
        if ((size_t)n < cap) {
            buf[n] = '\0';
            *out = buf;
            return 0;
        }
        free(buf);
        cap *= 2;
    }
}

/* Lists directory dfd (whose own entry is already pushed as rel) and
 * recurses into subdirectories.  Takes ownership of dfd. */
static int scan_dir(int dfd, const char *rel, const char *run_path,
                    struct conv_tree *t, char *err, size_t errlen)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        snprintf(err, errlen, "cannot list %s/%s: %s", run_path, rel, strerror(e));
        return e;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = conv_list_names(d, false, &names, &n);
    if (rc && rc != ENOMEM)
        snprintf(err, errlen, "cannot list %s/%s: %s", run_path, rel, strerror(rc));
    for (size_t i = 0; i < n && !rc; i++) {
        struct stat st;
        char *crel = join_rel(rel, names[i]);
        if (!crel) { rc = ENOMEM; break; }
        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) != 0) {
            rc = errno;
            snprintf(err, errlen, "cannot stat %s/%s: %s", run_path, crel, strerror(rc));
            free(crel);
            break;
        }
        if (S_ISSOCK(st.st_mode)) {
            rc = EINVAL;
            snprintf(err, errlen, "%s/%s is a socket, which a tarball cannot hold",
                     run_path, crel);
            free(crel);
            break;
        }
        char *target = NULL;
        if (S_ISLNK(st.st_mode)) {
            rc = read_link(dirfd(d), names[i], (size_t)st.st_size, &target);
            if (rc) {
                snprintf(err, errlen, "cannot read symlink %s/%s: %s", run_path,
                         crel, strerror(rc));
                free(crel);
                break;
            }
        }
        if ((rc = tree_push(t, crel, &st, target)) != 0) {
            free(crel);
            free(target);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            int cfd = openat(dirfd(d), names[i],
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                rc = errno;
                snprintf(err, errlen, "cannot open directory %s/%s: %s",
                         run_path, crel, strerror(rc));
                break;
            }
            rc = scan_dir(cfd, crel, run_path, t, err, errlen);
        }
    }
    conv_names_free(names, n);
    closedir(d);
    if (rc == ENOMEM && !err[0])
        snprintf(err, errlen, "out of memory scanning %s", run_path);
    return rc;
}

struct inode_ref {
    dev_t dev;
    ino_t ino;
    size_t idx;
};

static int cmp_inode_ref(const void *a, const void *b)
{
    const struct inode_ref *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The first entry (in archive order) of each multiply-linked inode carries
 * the data; the later ones become hard-link members pointing at it. */
static int link_hardlinks(struct conv_tree *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (!S_ISDIR(t->v[i].st.st_mode) && t->v[i].st.st_nlink > 1)
            n++;
    if (n < 2)
        return 0;
    struct inode_ref *refs = malloc(n * sizeof *refs);
    if (!refs)
        return ENOMEM;
    n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (!S_ISDIR(t->v[i].st.st_mode) && t->v[i].st.st_nlink > 1)
            refs[n++] = (struct inode_ref){ t->v[i].st.st_dev, t->v[i].st.st_ino, i };
    qsort(refs, n, sizeof *refs, cmp_inode_ref);
    for (size_t i = 1; i < n; i++) {
        size_t first = i - 1;
        while (i < n && refs[i].dev == refs[first].dev && refs[i].ino == refs[first].ino) {
            struct conv_entry *e = &t->v[refs[i].idx];
            e->hardlink_of = (long)refs[first].idx;
            if (S_ISREG(e->st.st_mode))
                t->data_bytes -= (uint64_t)e->st.st_size;
            i++;
        }
    }
    free(refs);
    return 0;
}

int conv_tree_scan(const char *path, struct conv_tree *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    err[0] = '\0';
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP)
            e = ENOTDIR;
        snprintf(err, errlen, "cannot open run directory %s: %s", path, strerror(e));
        return e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(e));
        return e;
    }
    char *root = strdup("");
    int rc = root ? tree_push(t, root, &st, NULL) : ENOMEM;
    if (rc) {
        free(root);
        close(fd);
    } else {
        rc = scan_dir(fd, "", path, t, err, errlen);
    }
    if (!rc)
        rc = link_hardlinks(t);
    if (rc) {
        if (!err[0])
            snprintf(err, errlen, "cannot scan %s: %s", path, strerror(rc));
        conv_tree_free(t);
    }
    return rc;
}

void conv_tree_free(struct conv_tree *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].rel);
        free(t->v[i].link_target);
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

int conv_delete_tree(const char *run_path, const struct conv_tree *t,
                     char *err, size_t errlen)
{
    int fd = open(run_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %s to delete it: %s", run_path, strerror(e));
        return e;
    }
    int rc = 0;
    /* Reverse pre-order visits every child before its directory. */
    for (size_t i = t->n; i-- > 1;) {
        const struct conv_entry *e = &t->v[i];
        int flags = S_ISDIR(e->st.st_mode) ? AT_REMOVEDIR : 0;
        struct stat now;
        /* Same dev+ino as verified, so a path swapped to lead elsewhere is
         * never followed into someone else's files. */
        if (fstatat(fd, e->rel, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
            (now.st_dev != e->st.st_dev || now.st_ino != e->st.st_ino)) {
            rc = EBUSY;
            snprintf(err, errlen, "kept %s/%s: replaced after verify", run_path, e->rel);
            break;
        }
        if (unlinkat(fd, e->rel, flags) != 0 && errno != ENOENT) {
            rc = errno;
            if (rc == EEXIST)
                rc = ENOTEMPTY;
            snprintf(err, errlen, "kept %s/%s: %s%s", run_path, e->rel, strerror(rc),
                     rc == ENOTEMPTY ? " (new entries appeared after verify)" : "");
            break;
        }
    }
    close(fd);
    if (!rc && rmdir(run_path) != 0) {
        rc = errno;
        if (rc == EEXIST)
            rc = ENOTEMPTY;
        snprintf(err, errlen, "kept %s: %s%s", run_path, strerror(rc),
                 rc == ENOTEMPTY ? " (new entries appeared after verify)" : "");
    }
    return rc;
}
