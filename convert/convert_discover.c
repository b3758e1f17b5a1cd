/* convert_discover.c: walks a source tree (never following symlinks) and finds the sequencing-run directories in it, with the reason for each choice. */
#include "convert/convert_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool has_file(int dfd, const char *name)
{
    struct stat st;
    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static int add_run(struct conv_found *f, const char *path, const char *rel,
                   const char *reason)
{
    if (f->n_runs == f->cap_runs) {
        size_t ncap = f->cap_runs ? f->cap_runs * 2 : 16;
        struct conv_run *nv = realloc(f->runs, ncap * sizeof *nv);
        if (!nv)
            return ENOMEM;
        f->runs = nv;
        f->cap_runs = ncap;
    }
    struct conv_run *r = &f->runs[f->n_runs];
    const char *slash = strrchr(rel, '/');
    r->path = strdup(path);
    r->rel = strdup(rel);
    r->name = strdup(slash ? slash + 1 : rel);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    if (!r->path || !r->rel || !r->name) {
        free(r->path); free(r->rel); free(r->name);
        return ENOMEM;
    }
    f->n_runs++;
    return 0;
}

static int add_skip(struct conv_found *f, const char *path, const char *reason)
{
    if (f->n_skips == f->cap_skips) {
        size_t ncap = f->cap_skips ? f->cap_skips * 2 : 16;
        struct conv_skip *nv = realloc(f->skips, ncap * sizeof *nv);
        if (!nv)
            return ENOMEM;
        f->skips = nv;
        f->cap_skips = ncap;
    }
    struct conv_skip *s = &f->skips[f->n_skips];
    if (!(s->path = strdup(path)))
        return ENOMEM;
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    f->n_skips++;
    return 0;
}

void conv_found_free(struct conv_found *f)
{
    for (size_t i = 0; i < f->n_runs; i++) {
        free(f->runs[i].path);
        free(f->runs[i].rel);
        free(f->runs[i].name);
    }
    for (size_t i = 0; i < f->n_skips; i++)
        free(f->skips[i].path);
    free(f->runs);
    free(f->skips);
    memset(f, 0, sizeof *f);
}

/* The run test: the --marker files if given (all of them), otherwise
 * RunInfo.xml plus a completion marker.  Returns 1 (a run, reason set),
 * 0 (not a run), or -1 (looks like a run but is incomplete, reason set). */
static int run_test(int dfd, const struct conv_discover_opts *o, char *reason, size_t rlen)
{
    if (o->n_markers) {
        size_t len = 0;
        reason[0] = '\0';
        for (size_t i = 0; i < o->n_markers; i++) {
            if (!has_file(dfd, o->markers[i]))
                return 0;
            len += (size_t)snprintf(reason + len, len < rlen ? rlen - len : 0, "%s%s",
                                    i ? " + " : "has ", o->markers[i]);
            if (len >= rlen)
                len = rlen - 1;
        }
        return 1;
    }
    if (!has_file(dfd, "RunInfo.xml"))
        return 0;
    if (has_file(dfd, "CopyComplete.txt")) {
        snprintf(reason, rlen, "RunInfo.xml + CopyComplete.txt");
        return 1;
    }
    if (has_file(dfd, "RTAComplete.txt")) {
        snprintf(reason, rlen, "RunInfo.xml + RTAComplete.txt (no CopyComplete.txt)");
        return 1;
    }
    if (has_file(dfd, "RTAComplete.xml")) {
        snprintf(reason, rlen, "RunInfo.xml + RTAComplete.xml (no CopyComplete.txt)");
        return 1;
    }
    snprintf(reason, rlen, "RunInfo.xml but no CopyComplete.txt or RTAComplete.txt/.xml yet");
    return -1;
}

static void newer(struct timespec *best, const struct timespec *t)
{
    if (t->tv_sec > best->tv_sec || (t->tv_sec == best->tv_sec && t->tv_nsec > best->tv_nsec))
        *best = *t;
}

/* The latest mtime or ctime of anything in the tree at dfd (ctime catches a
 * copy that kept old mtimes).  Takes ownership of dfd. */
static int newest_change(int dfd, struct timespec *best)
{
    struct stat st;
    if (fstat(dfd, &st) == 0) {
        newer(best, &st.st_mtim);
        newer(best, &st.st_ctim);
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        return e;
    }
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        newer(best, &st.st_mtim);
        newer(best, &st.st_ctim);
        if (S_ISDIR(st.st_mode)) {
            int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd >= 0)
                rc = newest_change(cfd, best);
        }
    }
    closedir(d);
    return rc;
}

static bool excluded(const struct conv_discover_opts *o, const char *path,
                     const char *rel, const char *base, const char **which)
{
    for (size_t i = 0; i < o->n_excludes; i++) {
        const char *g = o->excludes[i];
        if (fnmatch(g, rel, 0) == 0 || fnmatch(g, path, 0) == 0 || fnmatch(g, base, 0) == 0) {
            *which = g;
            return true;
        }
    }
    return false;
}

/* Visits directory dfd (path/rel); takes ownership of dfd. */
static int visit(int dfd, const char *path, const char *rel,
                 const struct conv_discover_opts *o, struct conv_found *f,
                 char *err, size_t errlen)
{
    char reason[160];
    const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    const char *glob;
    if (rel[0] && excluded(o, path, rel, base, &glob)) {
        snprintf(reason, sizeof reason, "excluded by --exclude '%s'", glob);
        close(dfd);
        return add_skip(f, path, reason);
    }
    int kind = run_test(dfd, o, reason, sizeof reason);
    if (kind < 0) {
        close(dfd);
        return add_skip(f, path, reason);
    }
    if (kind > 0) {
        if (o->min_age_sec > 0) {
            struct timespec best = { 0, 0 }, now;
            int cfd = dup(dfd);
            if (cfd >= 0)
                newest_change(cfd, &best);
            clock_gettime(CLOCK_REALTIME, &now);
            long long age = (long long)(now.tv_sec - best.tv_sec);
            if (age < o->min_age_sec) {
                char why[160];
                snprintf(why, sizeof why, "changed %llds ago, younger than --min-age %llds",
                         age < 0 ? 0 : age, (long long)o->min_age_sec);
                close(dfd);
                return add_skip(f, path, why);
            }
        }
        close(dfd);
        return add_run(f, path, rel, reason);
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        int e = errno;
        close(dfd);
        snprintf(err, errlen, "cannot list %s: %s", path, strerror(e));
        return e;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = conv_list_names(d, true, &names, &n);
    if (rc && rc != ENOMEM)
        snprintf(err, errlen, "cannot list %s: %s", path, strerror(rc));
    for (size_t i = 0; i < n && !rc; i++) {
        char *cpath = NULL, *crel = NULL;
        if (asprintf(&cpath, "%s/%s", path, names[i]) < 0 ||
            asprintf(&crel, rel[0] ? "%s/%s" : "%s%s", rel, names[i]) < 0) {
            free(cpath);
            rc = ENOMEM;
            break;
        }
        int cfd = openat(dirfd(d), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            char why[200];
            snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
            rc = add_skip(f, cpath, why);
        } else {
            rc = visit(cfd, cpath, crel, o, f, err, errlen);
        }
        free(cpath);
        free(crel);
    }
    conv_names_free(names, n);
    closedir(d);
    if (rc == ENOMEM && !err[0])
        snprintf(err, errlen, "out of memory walking %s", path);
    return rc;
}

int conv_discover(const char *src, const struct conv_discover_opts *o,
                  struct conv_found *f, char *err, size_t errlen)
{
    err[0] = '\0';
    struct stat st;
    if (stat(src, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", src, strerror(e));
        return e;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", src);
        return ENOTDIR;
    }
    int fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", src, strerror(e));
        return e;
    }
    /* Paths keep the spelling the operator used, minus trailing slashes. */
    char *path = strdup(src);
    if (!path) {
        close(fd);
        return ENOMEM;
    }
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/')
        path[--pl] = '\0';
    /* A source that is itself a run is named after its real last component. */
    char reason[160];
    int kind = run_test(fd, o, reason, sizeof reason);
    int rc;
    if (kind > 0) {
        char real[PATH_MAX];
        if (!realpath(src, real)) {
            rc = errno;
            snprintf(err, errlen, "%s: %s", src, strerror(rc));
            close(fd);
        } else {
            const char *base = strrchr(real, '/');
            base = base && base[1] ? base + 1 : real;
            rc = visit(fd, path, base, o, f, err, errlen);
        }
    } else {
        rc = visit(fd, path, "", o, f, err, errlen);
    }
    free(path);
    return rc;
}
