/* control.c: the server side of the tool <-> tarnfsd channel: the server lock (held shared by every vfs_open) and a unix socket per server answering flush, resolve, evict, hold, release, stats and a test clock advance. */
#include "vfs/vfs_internal.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/safefile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the server lock ------------------------------------------------- */

/* Open (creating it if needed) the server lock of cache_dir,
 * CACHE/vfs.lock.  Read-only, and beside vfs/ rather than in it: a tool
 * run by another user (root) must not create files or directories the
 * server cannot open later, and flock needs no write access.  Errors:
 * ENOENT (no cache_dir), EACCES, EIO. */
int vfs_ctl_lock_open(const char *cache_dir, int *fd)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/vfs.lock", cache_dir) >=
        (int)sizeof path)
        return ENAMETOOLONG;
    *fd = open(path, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    return *fd < 0 ? errno : 0;
}

int vfs_server_lock(vfs *v)
{
    int err = vfs_ctl_lock_open(v->cache_dir, &v->server_lock_fd);
    if (err) {
        log_error("vfs: cannot open %s/vfs.lock: %s", v->cache_dir,
                  strerror(err));
        return err;
    }
    /* Shared: a tool holding it exclusively (an offline eviction, which
     * takes well under a second per run, or an offline `tarnfs ingest`,
     * which takes as long as its tarball) delays the start. */
    if (flock(v->server_lock_fd, LOCK_SH | LOCK_NB) == 0)
        return 0;
    log_info("vfs: waiting for a tarnfs command using the cache %s (an "
             "ingest or an eviction) to finish", v->cache_dir);
    while (flock(v->server_lock_fd, LOCK_SH) != 0) {
        if (errno == EINTR)
            continue;
        err = errno;
        log_error("vfs: cannot lock %s/vfs.lock: %s", v->cache_dir,
                  strerror(err));
        return err;
    }
    return 0;
}

/* ---- the server side ------------------------------------------------ */

/* Drop the local copy of a conflicted run: its version is safe under the
 * conflict key; the backend's version is fetched at the next access. */
static int resolve_run(vfs *v, const char *name, char *msg, size_t cap)
{
    struct vfs_ref ref;
    int err = vfs_run_acquire(v, name, VFS_ACQ_NOFETCH, &ref);
    if (err) {
        snprintf(msg, cap, "run %s is not in the cache", name);
        return err;
    }
    struct vfs_run *r = ref.run;
    kv_run *kr = ref.h->kr;
    char ck[1200];
    size_t len;
    err = kv_run_getmeta(kr, "conflict", ck, sizeof ck - 1, &len);
    if (err) {
        vfs_run_release(v, &ref);
        snprintf(msg, cap, "run %s is not in conflict", name);
        return EINVAL;
    }
    ck[len < sizeof ck - 1 ? len : sizeof ck - 1] = '\0';
    pthread_rwlock_wrlock(&r->change_lock);
    err = kv_run_delmeta(kr, "dirty");
    if (!err || err == ENOENT)
        err = kv_run_delmeta(kr, "conflict");
    if (!err)
        err = kv_run_sync(kr);
    if (!err) {
        pthread_mutex_lock(&v->lock);
        r->dirty = r->conflicted = false;
        r->dirty_since_ms = 0;
        r->version_stale = true;        /* fetch the backend's version */
        pthread_mutex_unlock(&v->lock);
        vfs_dirty_mark_remove(v, name);
        if (snprintf(msg, cap, "run %s resolved: this server's changes are "
                     "in %s; the backend's version will be served from "
                     "now on", name, ck) >= (int)cap)
            msg[cap - 1] = '\0';
        log_warn("vfs: conflict on run %s resolved by the operator (changes "
                 "kept in %s)", name, ck);
    } else {
        snprintf(msg, cap, "cannot resolve run %s: %s", name, strerror(err));
    }
    pthread_rwlock_unlock(&r->change_lock);
    vfs_run_release(v, &ref);
    return err;
}

/* Whether process pid still exists. */
static bool pid_alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* Hold run for the `tarnfs ingest` of process pid: from now on changes to
 * it answer EAGAIN (vfs_run_change_begin); the changes in flight finish
 * first; then a run with changes not yet written back is refused. */
static int hold_run(vfs *v, const char *name, pid_t pid, char *msg,
                    size_t cap)
{
    pthread_mutex_lock(&v->lock);
    struct vfs_run *r = vfs_run_lookup_locked(v, name, true);
    if (!r) {
        pthread_mutex_unlock(&v->lock);
        snprintf(msg, cap, "out of memory");
        return ENOMEM;
    }
    pid_t other = r->held_by;
    if (other && other != pid && pid_alive(other)) {
        pthread_mutex_unlock(&v->lock);
        snprintf(msg, cap, "run %s is being ingested by another tarnfs "
                 "(pid %ld)", name, (long)other);
        return EBUSY;
    }
    r->held_by = pid;
    pthread_mutex_unlock(&v->lock);
    /* Every change holds the lock shared from before it changes anything
     * until it has marked the run dirty.  A write-back holds it for as
     * long as its upload: this (housekeeping) thread does not wait that
     * long. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += VFS_CHANGE_WAIT_S;
    if (pthread_rwlock_clockwrlock(&r->change_lock, CLOCK_MONOTONIC, &until) != 0) {
        pthread_mutex_lock(&v->lock);
        if (r->held_by == pid)
            r->held_by = 0;
        pthread_mutex_unlock(&v->lock);
        snprintf(msg, cap, "run %s is being written back; try again when "
                 "that has finished", name);
        return EBUSY;
    }
    pthread_mutex_lock(&v->lock);
    bool dirty = r->dirty || r->conflicted;
    pthread_mutex_unlock(&v->lock);
    pthread_rwlock_unlock(&r->change_lock);
    int err = 0;
    if (dirty)
        err = EBUSY;
    else
        err = vfs_cache_may_drop(v->cache_dir, name, "replace", msg, cap);
    if (err) {
        if (dirty) {
            struct timespec since = { 0, 0 };
            char ck[1200] = "";
            vfs_dirty_info(v->cache_dir, name, &since, ck, sizeof ck);
            vfs_dirty_message("replace", name, since, ck, msg, cap);
        }
        pthread_mutex_lock(&v->lock);
        if (r->held_by == pid)
            r->held_by = 0;
        pthread_mutex_unlock(&v->lock);
        return err;
    }
    log_info("vfs: run %s held for tarnfs ingest (pid %ld): changes to it "
             "are refused (retried by clients) until it ends", name,
             (long)pid);
    snprintf(msg, cap, "run %s held", name);
    return 0;
}

/* Let go of run after the ingest of pid: its handle is retired, so the
 * next request opens what the ingest published. */
static int release_run(vfs *v, const char *name, pid_t pid, char *msg,
                       size_t cap)
{
    pthread_mutex_lock(&v->lock);
    struct vfs_run *r = vfs_run_lookup_locked(v, name, false);
    if (!r || r->held_by != pid) {
        pthread_mutex_unlock(&v->lock);
        snprintf(msg, cap, "run %s is not held by pid %ld", name, (long)pid);
        return ENOENT;
    }
    struct vfs_handle *old = NULL;
    if (!r->loading && !r->evicting)
        old = vfs_run_retire_locked(v, r);
    r->held_by = 0;
    pthread_mutex_unlock(&v->lock);
    vfs_handle_close(old);
    log_info("vfs: run %s released by tarnfs ingest (pid %ld)", name,
             (long)pid);
    snprintf(msg, cap, "run %s released", name);
    return 0;
}

/* Split "NAME PID" (the name may hold spaces): 0, or EINVAL. */
static int name_pid(char *arg, pid_t *pid)
{
    char *sp = strrchr(arg, ' ');
    if (!sp || sp == arg)
        return EINVAL;
    char *end;
    long p = strtol(sp + 1, &end, 10);
    if (*end || p <= 1 || p > INT_MAX)
        return EINVAL;
    *sp = '\0';
    if (vfs_check_run_name(arg))
        return EINVAL;
    *pid = (pid_t)p;
    return 0;
}

/* Advance the decision clock by the milliseconds in arg (tests only:
 * tarnfsd enables it under TARNFS_TEST_CLOCK=1), then wait for a
 * housekeeping pass that sees the new time, so what the test checks next
 * (an eviction past its grace, an idle write-back) has been decided. */
static int clock_advance(vfs *v, const char *arg, char *msg, size_t cap)
{
    char *end;
    errno = 0;
    long long ms = strtoll(arg, &end, 10);
    if (end == arg || *end || errno)
        ms = 0;                         /* refused below as out of range */
    int err = tclock_advance(ms);
    if (err == EPERM) {
        snprintf(msg, cap, "this tarnfsd's clock cannot be advanced (it "
                 "was not started with TARNFS_TEST_CLOCK=1: tests only)");
        return err;
    }
    if (err) {
        snprintf(msg, cap, "cannot advance the clock by '%s' ms: %s (1 to "
                 "%lld ms at a time)", arg, strerror(err),
                 (long long)TCLOCK_ADVANCE_MAX_MS);
        return err;
    }
    log_info("vfs: test clock advanced by %lld ms (now %lld ms ahead)", ms,
             (long long)tclock_offset_ms());
    err = vfs_housekeep(v);
    if (err)
        snprintf(msg, cap, "clock advanced by %lld ms, but no housekeeping "
                 "pass finished since", ms);
    else
        snprintf(msg, cap, "clock advanced by %lld ms (now %lld ms ahead)",
                 ms, (long long)tclock_offset_ms());
    return err;
}

/* Answer one request line into msg: 0 or an errno; VFS_CTL_NOT_HERE (no
 * errno, so no answer is mistaken for it) if this server does not serve
 * that kind (flush and resolve need a server that writes back). */

static int serve_line(vfs *v, char *line, char *msg, size_t cap)
{
    int err = 0;
    bool writes_back = v->backend && !v->cfg.read_only;
    msg[0] = '\0';
    if (!writes_back && (!strncmp(line, "flush ", 6) ||
                         !strncmp(line, "resolve ", 8))) {
        snprintf(msg, cap, "this tarnfsd does not write back");
        return VFS_CTL_NOT_HERE;
    }
    if (!strcmp(line, "stats")) {
        size_t len;
        err = vfs_format_stats(v, ' ', msg, cap, &len);
        if (err)
            snprintf(msg, cap, "the counters do not fit the answer");
    } else if (!strncmp(line, "clock-advance ", 14)) {
        err = clock_advance(v, line + 14, msg, cap);
    } else if (!strncmp(line, "evict ", 6)) {
        err = vfs_evict_now(v, line + 6, "tarnfs cache evict", msg, cap);
    } else if (!strcmp(line, "flush *")) {
        size_t n, failed = 0;
        char **names = vfs_dirty_runs(v, false, &n);
        for (size_t i = 0; i < n; i++)
            if (vfs_writeback_run(v, names[i], "tarnfs flush --all"))
                failed++;
        vfs_free_names(names, n);
        size_t nc = 0;
        pthread_mutex_lock(&v->lock);
        for (size_t i = 0; i < v->nbuckets; i++)
            for (struct vfs_run *r = v->buckets[i]; r; r = r->next)
                nc += r->conflicted;
        pthread_mutex_unlock(&v->lock);
        err = failed ? EIO : nc ? ECANCELED : 0;
        snprintf(msg, cap, "%zu dirty run(s) written back, %zu "
                 "failed, %zu conflicted", n - failed, failed, nc);
    } else if (!strncmp(line, "flush ", 6)) {
        const char *name = line + 6;
        err = vfs_writeback_run(v, name, "tarnfs flush");
        pthread_mutex_lock(&v->lock);
        struct vfs_run *r = vfs_run_lookup_locked(v, name, false);
        bool conflicted = r && r->conflicted;
        pthread_mutex_unlock(&v->lock);
        if (conflicted) {
            err = ECANCELED;
            char ck[1200] = "";
            struct timespec since;
            vfs_dirty_info(v->cache_dir, name, &since, ck, sizeof ck);
            if (snprintf(msg, cap, "run %s is in conflict: the "
                         "backend changed since it was fetched; this "
                         "server's version is %s; see `tarnfs cache "
                         "resolve`", name, ck) >= (int)cap)
                msg[cap - 1] = '\0';
        } else if (err == ENOENT) {
            err = 0;
            snprintf(msg, cap, "run %s is not in the cache: nothing "
                     "to write", name);
        } else if (err) {
            snprintf(msg, cap, "write-back of %s failed: %s (see the "
                     "server log)", name, strerror(err));
        } else {
            snprintf(msg, cap, "run %s is clean", name);
        }
    } else if (!strncmp(line, "resolve ", 8)) {
        err = resolve_run(v, line + 8, msg, cap);
    } else if (!strncmp(line, "hold ", 5) || !strncmp(line, "release ", 8)) {
        bool hold = line[0] == 'h';
        char *arg = line + (hold ? 5 : 8);
        pid_t pid;
        if (name_pid(arg, &pid) != 0) {
            err = EINVAL;
            snprintf(msg, cap, "bad request");
        } else {
            err = hold ? hold_run(v, arg, pid, msg, cap)
                       : release_run(v, arg, pid, msg, cap);
        }
    } else {
        err = EINVAL;
        snprintf(msg, cap, "unknown request");
    }
    return err;
}

/* ---- the control socket ---------------------------------------------- */

/* Each server listens on CACHE/vfs/ctl/PID-N.sock; the directory is 0700, so
 * only its owner (and root) reach it, and each connection's peer is checked
 * again (SO_PEERCRED).  One request line per connection, one answer line
 * "ERRNO MESSAGE" back.  Paths go through /proc/self/fd/N of the directory:
 * sun_path holds 107 bytes, a cache path may be longer. */
#define CTL_IO_TIMEOUT_S 5
/* Connections answered at once, each on its own thread, so that a flush
 * waiting for its upload, or a client that connects and says nothing,
 * holds up no other request; more are told to try again. */
#define CTL_CONNS_MAX 8

int vfs_ctl_dir_open(const char *meta_dir, bool create, int *out)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/" CTL_DIR, meta_dir) >= (int)sizeof dir)
        return ENAMETOOLONG;
    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
        return errno;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return err;
    }
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & 022)) {
        /* not ours, or writable by others: a socket in it could be anyone's */
        close(fd);
        log_warn("vfs: %s is not a private directory of this user; control "
                 "requests are not served or sent through it", dir);
        return EPERM;
    }
    *out = fd;
    return 0;
}

int vfs_ctl_addr(int dirfd, const char *name, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", dirfd,
                 name) >= (int)sizeof sa->sun_path)
        return ENAMETOOLONG;
    return 0;
}

int vfs_ctl_read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == EAGAIN ? ETIMEDOUT : errno;
        if (r == 0)
            return EPROTO;
        n += (size_t)r;
        buf[n] = '\0';
        char *nl = memchr(buf, '\n', n);
        if (nl) {
            *nl = '\0';
            return 0;
        }
        if (n == cap - 1)
            return EPROTO;
    }
}

void vfs_ctl_send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        len -= (size_t)w;
    }
}

static void serve_conn(vfs *v, int cfd)
{
    struct timeval tv = { CTL_IO_TIMEOUT_S, 0 };
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char line[CTL_LINE_MAX], msg[4096], out[4200];
    int err;
    struct ucred cred;
    socklen_t cl = sizeof cred;
    if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        err = EACCES;
        snprintf(msg, sizeof msg, "only root or the server's user may send "
                 "requests");
    } else if ((err = vfs_ctl_read_line(cfd, line, sizeof line)) != 0) {
        snprintf(msg, sizeof msg, "bad request");
        err = EINVAL;
    } else {
        err = serve_line(v, line, msg, sizeof msg);
    }
    int n = snprintf(out, sizeof out, "%d %s\n", err, msg);
    if (n < 0 || (size_t)n >= sizeof out) {
        n = (int)sizeof out - 1;
        out[n - 1] = '\n';
    }
    vfs_ctl_send_all(cfd, out, (size_t)n);
}

struct ctl_conn {
    vfs *v;
    int fd;
};

static void *conn_main(void *arg)
{
    struct ctl_conn *cc = arg;
    vfs *v = cc->v;
    serve_conn(v, cc->fd);
    close(cc->fd);
    free(cc);
    pthread_mutex_lock(&v->ctl_lock);
    if (--v->ctl_active == 0)
        pthread_cond_broadcast(&v->ctl_idle);
    pthread_mutex_unlock(&v->ctl_lock);
    return NULL;
}

/* Answer cfd on a thread of its own (it closes cfd), or say at once that
 * too many are being answered. */
static void dispatch_conn(vfs *v, int cfd)
{
    struct ctl_conn *cc = malloc(sizeof *cc);
    pthread_mutex_lock(&v->ctl_lock);
    bool room = cc && v->ctl_active < CTL_CONNS_MAX;
    if (room)
        v->ctl_active++;
    pthread_mutex_unlock(&v->ctl_lock);
    if (room) {
        cc->v = v;
        cc->fd = cfd;
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&t, &at, conn_main, cc);
        pthread_attr_destroy(&at);
        if (!err)
            return;
        pthread_mutex_lock(&v->ctl_lock);
        if (--v->ctl_active == 0)
            pthread_cond_broadcast(&v->ctl_idle);
        pthread_mutex_unlock(&v->ctl_lock);
    }
    free(cc);
    char out[128];
    int n = snprintf(out, sizeof out, "%d too many control requests at once; "
                     "try again\n", EAGAIN);
    vfs_ctl_send_all(cfd, out, (size_t)n);
    close(cfd);
}

static void *control_main(void *arg)
{
    vfs *v = arg;
    while (!atomic_load(&v->ctl_stopping)) {
        struct pollfd p = { .fd = v->ctl_fd, .events = POLLIN };
        int r = poll(&p, 1, 250);
        if (r <= 0)
            continue;
        int cfd = accept4(v->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        dispatch_conn(v, cfd);
    }
    return NULL;
}

/* Remove the sockets of servers (PID-N.sock) that are gone. */
static void sweep_stale(int dirfd)
{
    DIR *d = fdopendir(dup(dirfd));
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".sock") != 0)
            continue;
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (end == de->d_name || (*end != '-' && *end != '.') || pid <= 1 ||
            pid > INT_MAX || pid == (long)getpid())
            continue;
        if (!pid_alive((pid_t)pid))
            unlinkat(dirfd, de->d_name, 0);
    }
    closedir(d);
}

int vfs_control_listen(vfs *v)
{
    int dirfd, err = vfs_ctl_dir_open(v->meta_dir, true, &dirfd);
    if (err) {
        log_error("vfs: cannot serve control requests (%s/" CTL_DIR "): %s",
                  v->meta_dir, strerror(err));
        return err;
    }
    sweep_stale(dirfd);
    /* PID-N: one socket per vfs, even for two in one process (tests). */
    static atomic_uint opened;
    snprintf(v->ctl_name, sizeof v->ctl_name, "%ld-%u.sock", (long)getpid(),
             atomic_fetch_add(&opened, 1));
    struct sockaddr_un sa;
    /* Non-blocking: accept never waits, whatever poll said. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        err = errno;
    else if (!(err = vfs_ctl_addr(dirfd, v->ctl_name, &sa))) {
        unlinkat(dirfd, v->ctl_name, 0);    /* ours, from a previous life */
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0)
            err = errno;
    }
    if (err) {
        log_error("vfs: cannot serve control requests on %s/" CTL_DIR "/%s: %s",
                  v->meta_dir, v->ctl_name, strerror(err));
        if (fd >= 0)
            close(fd);
        unlinkat(dirfd, v->ctl_name, 0);
        close(dirfd);
        return err;
    }
    v->ctl_fd = fd;
    v->ctl_dirfd = dirfd;
    v->ctl_listening = true;
    return 0;
}

/* Remove the socket and close it (listening, not answering). */
static void ctl_unlisten(vfs *v)
{
    unlinkat(v->ctl_dirfd, v->ctl_name, 0);
    close(v->ctl_fd);
    close(v->ctl_dirfd);
    v->ctl_listening = false;
}

int vfs_control_start(vfs *v)
{
    if (!v->ctl_listening)
        return EINVAL;
    v->ctl_active = 0;
    pthread_mutex_init(&v->ctl_lock, NULL);
    pthread_cond_init(&v->ctl_idle, NULL);
    int err = pthread_create(&v->ctl_thread, NULL, control_main, v);
    if (err) {
        pthread_cond_destroy(&v->ctl_idle);
        pthread_mutex_destroy(&v->ctl_lock);
        log_error("vfs: cannot serve control requests on %s/" CTL_DIR "/%s: %s",
                  v->meta_dir, v->ctl_name, strerror(err));
        ctl_unlisten(v);
        return err;
    }
    v->ctl_started = true;
    return 0;
}

void vfs_control_stop(vfs *v)
{
    if (!v->ctl_started) {
        if (v->ctl_listening)
            ctl_unlisten(v);
        return;
    }
    atomic_store(&v->ctl_stopping, true);
    pthread_join(v->ctl_thread, NULL);
    /* The requests being answered use v: they finish first (a silent
     * client within CTL_IO_TIMEOUT_S). */
    pthread_mutex_lock(&v->ctl_lock);
    while (v->ctl_active)
        pthread_cond_wait(&v->ctl_idle, &v->ctl_lock);
    pthread_mutex_unlock(&v->ctl_lock);
    pthread_cond_destroy(&v->ctl_idle);
    pthread_mutex_destroy(&v->ctl_lock);
    ctl_unlisten(v);
    v->ctl_started = false;
}
