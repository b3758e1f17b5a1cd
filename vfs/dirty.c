/* dirty.c: the dirty marks of changed runs (mark files, the scan at start, the list of runs to write back) and the sweep of uploads a crash left unfinished. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/safefile.h"
#include "util/tarsuffix.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- dirty mark files ------------------------------------------------ */

static void mark_path(const char *meta_dir, const char *run, char *buf,
                      size_t cap)
{
    if (snprintf(buf, cap, "%s/dirty/%016llx", meta_dir,
                 (unsigned long long)vfs_hash_str(run)) >= (int)cap)
        buf[0] = '\0';
}

int vfs_dirty_mark_write(vfs *v, const char *run, int64_t since_ms,
                         const char *conflict, bool is_new)
{
    char path[PATH_MAX];
    mark_path(v->meta_dir, run, path, sizeof path);
    char buf[KV_RUNNAME_MAX + 1200];
    int n = snprintf(buf, sizeof buf, "since %lld\nconflict %s\nnew %d\n"
                     "run %s\n", (long long)since_ms, conflict ? conflict : "",
                     is_new ? 1 : 0, run);
    int err = n < 0 || (size_t)n >= sizeof buf ? EIO
              : safe_write_file(path, buf, (size_t)n, 0644, true);
    if (err) {
        log_error("vfs: cannot write dirty mark %s: %s", path, strerror(err));
    }
    return err;
}

void vfs_dirty_mark_remove(vfs *v, const char *run)
{
    char path[PATH_MAX];
    mark_path(v->meta_dir, run, path, sizeof path);
    unlink(path);
}

/* Copy a NUL-terminated field into out (cap bytes); false if it does not
 * fit (a damaged file), leaving out empty. */
static bool copy_field(char *out, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap) {
        out[0] = '\0';
        return false;
    }
    memcpy(out, v, n + 1);
    return true;
}

/* Parse a mark file: run name, since, conflict key.  Errors: ENOENT, EIO. */
static int mark_read(const char *path, char *run, size_t runcap,
                     int64_t *since, char *conflict, size_t ccap,
                     bool *is_new)
{
    if (is_new)
        *is_new = false;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? ENOENT : EIO;
    char line[KV_RUNNAME_MAX + 1200];
    bool have_run = false;
    *since = 0;
    if (conflict && ccap)
        conflict[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "since ", 6))
            *since = strtoll(line + 6, NULL, 10);
        else if (!strncmp(line, "new ", 4) && is_new)
            *is_new = line[4] == '1';
        else if (!strncmp(line, "conflict ", 9) && conflict && ccap)
            copy_field(conflict, ccap, line + 9);
        else if (!strncmp(line, "run ", 4)) {
            if (copy_field(run, runcap, line + 4))
                have_run = true;
        }
    }
    fclose(f);
    return have_run ? 0 : EIO;
}

int vfs_dirty_info(const char *cache_dir, const char *run,
                   struct timespec *since, char *conflict, size_t cap)
{
    if (!cache_dir || !run || vfs_check_run_name(run))
        return EINVAL;
    char meta[PATH_MAX], path[PATH_MAX], name[KV_RUNNAME_MAX + 1];
    snprintf(meta, sizeof meta, "%s/vfs", cache_dir);
    mark_path(meta, run, path, sizeof path);
    int64_t ms;
    int err = mark_read(path, name, sizeof name, &ms, conflict, cap, NULL);
    if (err)
        return ENOENT;
    if (strcmp(name, run) != 0)
        return ENOENT;
    since->tv_sec = ms / 1000;
    since->tv_nsec = (ms % 1000) * 1000000;
    return 0;
}

void vfs_writeback_scan(vfs *v)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/dirty", v->meta_dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strchr(de->d_name, '.'))
            continue;
        char path[PATH_MAX + 300], name[KV_RUNNAME_MAX + 1], conflict[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        int64_t since;
        bool is_new;
        if (mark_read(path, name, sizeof name, &since, conflict,
                      sizeof conflict, &is_new) || vfs_check_run_name(name))
            continue;
        pthread_mutex_lock(&v->lock);
        struct vfs_run *r = vfs_run_lookup_locked(v, name, true);
        if (r) {
            /* The run's metadata is the truth; the first write-back
             * attempt opens it and drops a mark the metadata denies. */
            r->dirty = true;
            r->dirty_since_ms = since;
            r->conflicted = conflict[0] != '\0';
            r->is_new = is_new;
            r->last_change_ms = 0;
        }
        pthread_mutex_unlock(&v->lock);
        log_info("vfs: run %s has changes not yet written back%s", name,
                 conflict[0] ? " (conflicted)" : "");
    }
    closedir(d);
}

/* ---- uploads left by a crash (S3 multipart, NAS temp files) ----------- */

struct orphan_scan {
    vfs *v;
    char **names;
    size_t n;
    unsigned aborted;
};

/* Is key the object (or a conflict copy) of one of the dirty runs? */
static bool key_of_dirty_run(const struct orphan_scan *os, const char *key)
{
    for (size_t i = 0; i < os->n; i++) {
        size_t nl = strlen(os->names[i]);
        if (strncmp(key, os->names[i], nl) != 0)
            continue;
        const char *rest = key + nl;
        if (!strncmp(rest, ".conflict-", 10))
            return true;
        size_t stem;
        if (tar_suffix_match(key, strlen(key), true, &stem) >= 0 &&
            stem == nl)
            return true;
    }
    return false;
}

static bool key_is_mine(void *arg, const char *key)
{
    return key_of_dirty_run(arg, key);
}

void vfs_writeback_abort_orphans(vfs *v)
{
    if (!v->backend || v->cfg.read_only)
        return;
    struct orphan_scan os = { .v = v };
    size_t cap = 0;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next) {
            if (!r->dirty)
                continue;
            if (os.n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                char **nn = realloc(os.names, nc * sizeof *nn);
                if (!nn)
                    goto listed;
                os.names = nn;
                cap = nc;
            }
            if ((os.names[os.n] = strdup(r->name)))
                os.n++;
        }
listed:
    pthread_mutex_unlock(&v->lock);
    /* Only uploads to dirty runs' keys: those are ours (a crash during
     * their write-back), or another server's write-back of the same run,
     * which would end in a conflict anyway and is retried by it. */
    if (os.n) {
        int err = fetch_abort_uploads(v->backend, key_is_mine, &os,
                                      &os.aborted);
        if (err)
            log_warn("vfs: cannot list unfinished uploads: %s", strerror(err));
        else if (os.aborted)
            log_warn("vfs: aborted %u unfinished upload(s) left by interrupted "
                     "write-backs", os.aborted);
    }
    /* NAS: temp files of write-backs this host was doing when it died. */
    for (size_t i = 0; i < os.n; i++) {
        char key[KV_RUNNAME_MAX + 8];
        unsigned removed;
        snprintf(key, sizeof key, "%s.tar", os.names[i]);
        int err = fetch_sweep_temps(v->backend, key, &removed);
        if (err)
            log_warn("vfs: cannot sweep temp files next to %s: %s", key,
                     strerror(err));
        else if (removed)
            log_warn("vfs: removed %u temp file(s) next to %s left by an "
                     "interrupted write-back", removed, key);
    }
    for (size_t i = 0; i < os.n; i++)
        free(os.names[i]);
    free(os.names);
}

/* ---- runs to write back ---------------------------------------------- */

char **vfs_dirty_runs(vfs *v, bool idle_only, size_t *n)
{
    int64_t now = tclock_mono_ms();
    size_t cap = 0;
    char **names = NULL;
    *n = 0;
    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->nbuckets; i++)
        for (struct vfs_run *r = v->buckets[i]; r; r = r->next) {
            if (!r->dirty || r->conflicted || r->writing_back)
                continue;
            if (idle_only && (v->writeback_delay_ms == UINT_MAX ||
                              now - r->last_change_ms <
                                  (int64_t)v->writeback_delay_ms ||
                              now < r->wb_retry_ms))
                continue;
            if (*n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                char **nn = realloc(names, nc * sizeof *nn);
                if (!nn)
                    goto out;
                names = nn;
                cap = nc;
            }
            if ((names[*n] = strdup(r->name)))
                (*n)++;
        }
out:
    pthread_mutex_unlock(&v->lock);
    return names;
}

void vfs_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}
