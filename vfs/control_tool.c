/* control_tool.c: the tool side of the tool <-> tarnfsd channel: requests sent to the servers of a cache (flush, resolve, stats, clock advance), and the offline cache operations that enforce the rules (a dirty or conflicted run is never evicted). */
#include "vfs/vfs_internal.h"
#include "util/log.h"
#include "util/safefile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the tool side --------------------------------------------------- */

/* Try to become the only user of cache_dir's server lock: true (lock held
 * on fd) if no tarnfsd serves the cache. */
static bool no_server(int fd)
{
    while (flock(fd, LOCK_EX | LOCK_NB) != 0)
        if (errno != EINTR)
            return false;
    return true;
}

/* Ask the server listening on name in dirfd: its answer (msg), or
 * VFS_CTL_NOT_HERE, or ESRCH (nobody listens there), or ETIMEDOUT. */
static int ask(int dirfd, const char *name, const char *body, size_t len,
               unsigned timeout_s, char *msg, size_t cap)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode) ||
        (st.st_uid != 0 && st.st_uid != geteuid()))
        return ESRCH;       /* not a server's socket (of root or ours) */
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int err = vfs_ctl_addr(dirfd, name, &sa);
    if (!err && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        err = errno == ECONNREFUSED || errno == ENOENT ? ESRCH : errno;
    if (!err) {
        struct timeval tv = { timeout_s ? (time_t)timeout_s : 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        vfs_ctl_send_all(fd, body, len);
        char line[4200];
        err = vfs_ctl_read_line(fd, line, sizeof line);
        if (err == ETIMEDOUT) {
            snprintf(msg, cap, "the server took the request but has not "
                     "answered yet");
        } else if (err) {
            err = ESRCH;    /* it went away without answering */
        } else {
            char *end, *sp = strchr(line, ' ');
            long e = strtol(line, &end, 10);
            err = end == line || e > 4095 || (e < 0 && e != VFS_CTL_NOT_HERE) ? EIO : (int)e;
            snprintf(msg, cap, "%s", sp ? sp + 1 : "");
        }
    }
    close(fd);
    return err;
}

/* Send one request line to the tarnfsd serving cache_dir (each one's
 * socket in turn, until one that serves the kind answers) and wait up to
 * timeout_s for its answer (msg, cap bytes).  With lock_fd >= 0, no
 * server at all is noticed at once: ESRCH with the lock held
 * exclusively.  Errors: the server's answer, ETIMEDOUT, ESRCH, EACCES. */
static int request(const char *cache_dir, const char *line,
                   unsigned timeout_s, int lock_fd, char *msg, size_t cap)
{
    char meta[PATH_MAX], body[CTL_LINE_MAX + 2];
    int bn = snprintf(body, sizeof body, "%s\n", line);
    if (bn < 0 || (size_t)bn >= sizeof body)
        return ENAMETOOLONG;
    if (snprintf(meta, sizeof meta, "%s/vfs", cache_dir) >= (int)sizeof meta)
        return ENAMETOOLONG;
    /* A server starting up holds the lock before it listens: wait for its
     * socket as long as it holds the lock. */
    for (unsigned waited = 0; waited <= timeout_s * 10; waited++) {
        int dirfd, err = vfs_ctl_dir_open(meta, false, &dirfd);
        if (err && err != ENOENT) {
            snprintf(msg, cap, "cannot reach the server's control socket in "
                     "%s/" CTL_DIR ": %s", meta, strerror(err));
            return err;
        }
        bool not_here = false;
        if (!err) {
            DIR *d = fdopendir(dup(dirfd));
            struct dirent *de;
            while (d && (de = readdir(d))) {
                size_t len = strlen(de->d_name);
                if (len < 6 || strcmp(de->d_name + len - 5, ".sock") != 0)
                    continue;
                err = ask(dirfd, de->d_name, body, (size_t)bn, timeout_s, msg, cap);
                if (err == VFS_CTL_NOT_HERE) {
                    not_here = true;
                    continue;
                }
                if (err != ESRCH) {
                    closedir(d);
                    close(dirfd);
                    return err;
                }
            }
            if (d)
                closedir(d);
            close(dirfd);
        }
        /* Nobody answered: servers, but none of the kind; or none. */
        if (not_here) {
            snprintf(msg, cap, "no tarnfsd answered (is one serving %s?)",
                     cache_dir);
            return ETIMEDOUT;
        }
        if (lock_fd < 0 || no_server(lock_fd)) {
            snprintf(msg, cap, "no tarnfsd answered (is one serving %s?)",
                     cache_dir);
            return ESRCH;
        }
        /* A server listens right after it takes the lock: held this long
         * with no socket, it has no control channel. */
        if (waited >= CTL_NO_SOCKET_TICKS) {
            snprintf(msg, cap, "a tarnfsd holds %s/vfs.lock but listens on no "
                     "control socket in %s/" CTL_DIR " (its log says why); "
                     "restart it to flush, resolve or evict through it",
                     cache_dir, meta);
            return ETIMEDOUT;
        }
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    snprintf(msg, cap, "no tarnfsd answered (is one serving %s?)", cache_dir);
    return ETIMEDOUT;
}

/* Send line to a tarnfsd serving cache_dir, if one does (request());
 * errors as vfs_request. */
static int request_server(const char *cache_dir, const char *line,
                          unsigned timeout_s, char *msg, size_t cap)
{
    /* A directory no tarnfsd ever served (a mistyped --cache) gets no
     * vfs.lock of ours, just the error. */
    char rq[PATH_MAX];
    struct stat st;
    snprintf(rq, sizeof rq, "%s/vfs", cache_dir);
    if (stat(rq, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, cap, "%s is not a cache a tarnfsd has served (no "
                 "vfs/ in it)", cache_dir);
        return ENOENT;
    }
    /* The server lock tells at once that no server runs (or that it
     * stopped before taking the request): no timeout wait. */
    int fd;
    int err = vfs_ctl_lock_open(cache_dir, &fd);
    if (err) {
        snprintf(msg, cap, "cannot open %s/vfs.lock: %s", cache_dir,
                 strerror(err));
        return err;
    }
    err = request(cache_dir, line, timeout_s, fd, msg, cap);
    close(fd);
    return err;
}

int vfs_request(const char *cache_dir, const char *run, bool resolve,
                unsigned timeout_s, char *msg, size_t cap)
{
    msg[0] = '\0';
    if (!cache_dir || (run && vfs_check_run_name(run)) || (resolve && !run))
        return EINVAL;
    char line[KV_RUNNAME_MAX + 16];
    snprintf(line, sizeof line, "%s %s", resolve ? "resolve" : "flush",
             run ? run : "*");
    int err = request_server(cache_dir, line, timeout_s, msg, cap);
    if (err == ESRCH || (err == ETIMEDOUT && !strncmp(msg, "no tarnfsd", 10)))
        snprintf(msg, cap, "no tarnfsd answered (is one serving %s "
                 "read-write?)", cache_dir);
    return err;
}

int vfs_request_stats(const char *cache_dir, unsigned timeout_s, char *msg,
                      size_t cap)
{
    msg[0] = '\0';
    if (!cache_dir)
        return EINVAL;
    return request_server(cache_dir, "stats", timeout_s, msg, cap);
}

int vfs_request_clock_advance(const char *cache_dir, long long ms,
                              unsigned timeout_s, char *msg, size_t cap)
{
    msg[0] = '\0';
    if (!cache_dir)
        return EINVAL;
    char line[64];
    snprintf(line, sizeof line, "clock-advance %lld", ms);
    return request_server(cache_dir, line, timeout_s, msg, cap);
}

int vfs_cache_may_drop(const char *cache_dir, const char *run,
                       const char *what, char *msg, size_t cap)
{
    struct timespec since;
    char conflict[1200];
    if (vfs_dirty_info(cache_dir, run, &since, conflict,
                       sizeof conflict) != 0)
        return 0;
    vfs_dirty_message(what, run, since, conflict, msg, cap);
    return EBUSY;
}

void vfs_dirty_message(const char *what, const char *run,
                       struct timespec since, const char *conflict,
                       char *msg, size_t cap)
{
    char when[32];
    struct tm tm;
    time_t t = since.tv_sec;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int n;
    if (conflict && conflict[0])
        n = snprintf(msg, cap, "refusing to %s run %s: it is in conflict "
                     "(its changes were saved as %s, the backend has "
                     "another version); see `tarnfs cache resolve %s`",
                     what, run, conflict, run);
    else
        n = snprintf(msg, cap, "refusing to %s run %s: it has changes "
                     "not yet written back (since %s); run `tarnfs flush "
                     "%s` (with tarnfsd running) first", what, run, when,
                     run);
    if (n >= (int)cap && cap)
        msg[cap - 1] = '\0';
}

/* Evict run with no server running (the caller holds the lock
 * exclusively, so none can start and change it meanwhile). */
static int evict_offline(const char *cache_dir, const char *run, char *msg,
                         size_t cap)
{
    int err = vfs_cache_may_drop(cache_dir, run, "evict", msg, cap);
    if (err)
        return err;
    kv_cache *c;
    err = kv_cache_open(cache_dir, false, &c);
    if (err) {
        snprintf(msg, cap, "cannot open the cache %s: %s", cache_dir,
                 strerror(err));
        return err;
    }
    err = kv_cache_evict(c, run);
    kv_cache_close(c);
    if (err == ENOENT) {
        snprintf(msg, cap, "no run '%s' in the cache", run);
        return err;
    }
    if (err) {
        snprintf(msg, cap, "%s: %s", run, strerror(err));
        return err;
    }
    char meta[PATH_MAX], marker[PATH_MAX];
    snprintf(meta, sizeof meta, "%s/vfs", cache_dir);
    vfs_marker_path(meta, run, marker, sizeof marker);
    unlink(marker);
    snprintf(msg, cap, "evicted /%s", run);
    return 0;
}

int vfs_cache_evict(const char *cache_dir, const char *run,
                    unsigned timeout_s, char *msg, size_t cap)
{
    msg[0] = '\0';
    if (!cache_dir || !run || vfs_check_run_name(run)) {
        snprintf(msg, cap, "'%s' is not a valid run name", run ? run : "");
        return EINVAL;
    }
    kv_cache *c;        /* is it a cache at all (before creating vfs/)? */
    int err = kv_cache_open_readonly(cache_dir, &c);
    if (err) {
        snprintf(msg, cap, "%s: %s", cache_dir, err == EINVAL ?
                 "not a tarnfs cache directory" : strerror(err));
        return err == EINVAL ? ENOENT : err;
    }
    kv_cache_close(c);
    int fd;
    err = vfs_ctl_lock_open(cache_dir, &fd);
    if (err) {
        snprintf(msg, cap, "cannot open %s/vfs.lock: %s", cache_dir,
                 strerror(err));
        return err;
    }
    if (no_server(fd)) {
        err = evict_offline(cache_dir, run, msg, cap);
    } else {
        /* The server owns the run's state: it refuses a dirty run and
         * closes its handle before the files go. */
        char line[KV_RUNNAME_MAX + 16];
        snprintf(line, sizeof line, "evict %s", run);
        err = request(cache_dir, line, timeout_s, fd, msg, cap);
        if (err == ESRCH)       /* the server stopped: we hold the lock */
            err = evict_offline(cache_dir, run, msg, cap);
    }
    close(fd);
    return err;
}

int vfs_cache_probe(const char *cache_dir)
{
    kv_cache *c;
    int err = kv_cache_open_readonly(cache_dir, &c);
    if (!err)
        kv_cache_close(c);
    return err;
}

void vfs_cache_open_message(const char *cache_dir, bool create, int err,
                            char *msg, size_t cap)
{
    switch (err) {
    case ENOENT:
        snprintf(msg, cap, "cache directory '%s' does not exist%s", cache_dir,
                 create ? " and cannot be created (missing parent?)" : "");
        break;
    case ENOTDIR:
        snprintf(msg, cap, "cache '%s' is not a directory", cache_dir);
        break;
    case EINVAL:
        snprintf(msg, cap, "'%s' is not a tarnfs cache directory", cache_dir);
        break;
    default:
        snprintf(msg, cap, "cannot open cache '%s': %s", cache_dir,
                 strerror(err));
        break;
    }
}

int vfs_cache_ingest(const char *cache_dir, const char *run,
                     vfs_read_fn read_fn, void *arg,
                     const char *source_version, unsigned timeout_s,
                     struct vfs_ingest_result *res, char *msg, size_t cap)
{
    msg[0] = '\0';
    memset(res, 0, sizeof *res);
    if (!cache_dir || !run || vfs_check_run_name(run)) {
        snprintf(msg, cap, "'%s' is not a valid run name", run ? run : "");
        return EINVAL;
    }
    kv_cache *c;
    int err = kv_cache_open(cache_dir, true, &c);
    if (err) {
        vfs_cache_open_message(cache_dir, true, err, msg, cap);
        return err;
    }
    int fd;
    err = vfs_ctl_lock_open(cache_dir, &fd);
    if (err) {
        snprintf(msg, cap, "cannot open %s/vfs.lock: %s", cache_dir,
                 strerror(err));
        kv_cache_close(c);
        return err;
    }
    char line[KV_RUNNAME_MAX + 40];
    bool held = false;
    if (no_server(fd)) {
        /* No server: it cannot start, and so nothing can change the run,
         * until the lock goes with fd. */
        err = vfs_cache_may_drop(cache_dir, run, "replace", msg, cap);
    } else {
        snprintf(line, sizeof line, "hold %s %ld", run, (long)getpid());
        err = request(cache_dir, line, timeout_s, fd, msg, cap);
        if (err == ESRCH)       /* the server stopped: we hold the lock */
            err = vfs_cache_may_drop(cache_dir, run, "replace", msg, cap);
        else
            held = err == 0;
    }
    if (!err) {
        struct kv_ingest_result kr;
        err = kv_ingest(c, run, read_fn, arg, source_version, &kr);
        res->files = kr.files;
        res->dirs = kr.dirs;
        res->symlinks = kr.symlinks;
        res->hardlinks = kr.hardlinks;
        res->others = kr.others;
        res->bytes = kr.bytes;
        res->stripped_top = kr.stripped_top;
        if (err)
            snprintf(msg, cap, "%s", kr.error[0] ? kr.error : strerror(err));
    }
    if (held) {
        /* Best effort: a server that misses it lets go when it sees this
         * process gone. */
        char m2[256];
        snprintf(line, sizeof line, "release %s %ld", run, (long)getpid());
        int rerr = request(cache_dir, line, timeout_s, -1, m2, sizeof m2);
        if (rerr)
            log_warn("tarnfs ingest: the server did not let go of run %s: "
                     "%s (it will when this process has ended)", run, m2);
    }
    close(fd);
    kv_cache_close(c);
    return err;
}
