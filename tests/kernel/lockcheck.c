/* lockcheck.c: the kernel VM's record-lock battery (tlocklfs style, built static by run.sh, run in the guest): fcntl locks by a parent and a forked child on files of the rw export mounted with locking, one PASS/FAIL line per sub-check. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Usage: lockcheck DIR [--other OTHERDIR] [--member NAME] [SUBCHECK...]
 * DIR is a directory of the export on a mount without nolock.  The battery
 * runs with parent and child both on DIR (the client's local lock list and
 * the server agree), then, if OTHERDIR (the same directory through a second
 * nosharecache mount) is given, with the child on OTHERDIR: its locks and
 * tests of the parent's come only from the server.  NAME is an existing
 * file of DIR's parent (a tarball member) that gets written once (the same
 * bytes back).  SUBCHECKs: only these. */

_Static_assert(sizeof(off_t) == 8, "64-bit off_t needed for the large-offset checks");

static char A[4096], B[4096];            /* the parent's files */
static char CA[4096], CB[4096];          /* the same files, as the child opens them */
static char M[4096], CM[4096];           /* a tarball member (--member), both ways */
static char DIRP[2048], DIRC[2048];      /* the test directory, both ways */
static char CX[4096];                    /* a path the child opens with OP_OPENX */
static const char *prefix = "";
static int remote;                       /* the child is on the other mount */
static int pfd = -1;                     /* the parent's fd on A */
static char why[768];
static int failures;

#define FAILIF(cond, ...) do { if (cond) { snprintf(why, sizeof why, __VA_ARGS__); goto out; } } while (0)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *tname(int t)
{
    return t == F_RDLCK ? "RD" : t == F_WRLCK ? "WR" : t == F_UNLCK ? "UN" : "??";
}

/* fcntl lock call: 0 or errno. */
static int lk(int fd, int cmd, int type, off_t start, off_t len, struct flock *out)
{
    struct flock fl = { .l_type = (short)type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
    int rc = fcntl(fd, cmd, &fl);
    if (out)
        *out = fl;
    return rc ? errno : 0;
}

static int denied(int err)
{
    return err == EAGAIN || err == EACCES;
}

/* ---- the child: a second lock owner, driven through pipes ---- */

enum { OP_SETLK, OP_SETLKW, OP_GETLK, OP_OPEN2, OP_CLOSE2, OP_EXIT, OP_SETLKW_ALARM, OP_OPENX };
struct cmd { int op, which, type; off_t start, len; };
struct rep { int err; struct flock fl; pid_t pid; };
struct child { pid_t pid; int to, from; };

static int xread(int fd, void *p, size_t n)
{
    char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static void on_alarm(int sig)
{
    (void)sig;
}

static void child_loop(int in, int out)
{
    struct sigaction sa = { .sa_handler = on_alarm };     /* no SA_RESTART: EINTR */
    sigaction(SIGALRM, &sa, NULL);
    int fd[2] = { open(CA, O_RDWR), -1 };
    struct rep r = { .err = fd[0] < 0 ? errno : 0, .pid = getpid() };
    if (write(out, &r, sizeof r) != sizeof r)
        _exit(2);
    struct cmd c;
    while (!xread(in, &c, sizeof c)) {
        memset(&r, 0, sizeof r);
        r.pid = getpid();
        int f = fd[c.which == 1 ? 1 : 0];
        switch (c.op) {
        case OP_SETLK:  r.err = lk(f, F_SETLK, c.type, c.start, c.len, &r.fl); break;
        case OP_SETLKW: r.err = lk(f, F_SETLKW, c.type, c.start, c.len, &r.fl); break;
        case OP_GETLK:  r.err = lk(f, F_GETLK, c.type, c.start, c.len, &r.fl); break;
        case OP_OPEN2:  fd[1] = open(c.which ? CB : CA, O_RDWR); r.err = fd[1] < 0 ? errno : 0; break;
        case OP_OPENX:  /* fd[0] becomes CX: the parent set CX before the fork */
            close(fd[0]); fd[0] = open(CX, O_RDWR); r.err = fd[0] < 0 ? errno : 0; break;
        case OP_CLOSE2: r.err = close(fd[1]) ? errno : 0; fd[1] = -1; break;
        case OP_EXIT:   _exit(0);
        case OP_SETLKW_ALARM:   /* F_SETLKW, interrupted after c.which seconds */
            alarm((unsigned)c.which);
            r.err = lk(fd[0], F_SETLKW, c.type, c.start, c.len, &r.fl);
            alarm(0);
            break;
        }
        if (write(out, &r, sizeof r) != sizeof r)
            _exit(2);
    }
    _exit(0);
}

static int child_start(struct child *c)
{
    int a[2], b[2];
    if (pipe(a) || pipe(b))
        return snprintf(why, sizeof why, "pipe: %s", strerror(errno)), -1;
    fflush(stdout);
    c->pid = fork();
    if (c->pid < 0)
        return snprintf(why, sizeof why, "fork: %s", strerror(errno)), -1;
    if (c->pid == 0) {
        close(a[1]);
        close(b[0]);
        close(pfd);     /* the child keeps no fd of the parent's open */
        child_loop(a[0], b[1]);
    }
    close(a[0]);
    close(b[1]);
    c->to = a[1];
    c->from = b[0];
    struct rep r;
    if (xread(c->from, &r, sizeof r))
        return snprintf(why, sizeof why, "the child died at start"), -1;
    if (r.err)
        return snprintf(why, sizeof why, "child: open %.300s: %s", CA, strerror(r.err)), -1;
    return 0;
}

static int child_send(struct child *c, int op, int which, int type, off_t start, off_t len)
{
    struct cmd m = { op, which, type, start, len };
    return write(c->to, &m, sizeof m) == sizeof m ? 0 : -1;
}

/* One child operation: its errno (0: done), -1 if the child is gone. */
static int child_do(struct child *c, int op, int which, int type, off_t start, off_t len,
                    struct flock *out)
{
    struct rep r;
    if (child_send(c, op, which, type, start, len) || xread(c->from, &r, sizeof r))
        return -1;
    if (out)
        *out = r.fl;
    return r.err;
}

static void child_stop(struct child *c)
{
    if (c->pid <= 0)
        return;
    child_send(c, OP_EXIT, 0, 0, 0, 0);
    close(c->to);
    close(c->from);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}

/* ---- expectations ---- */

/* F_GETLK's answer fl, asked for [start, +len), should show a lock of type
 * at [hs, +hl) held by pid hp (or nothing: type F_UNLCK).  0, or the reason. */
static int holder_is(const char *who, const struct flock *fl, int type, off_t hs, off_t hl,
                     pid_t hp, int via_server)
{
    if (fl->l_type != type) {
        snprintf(why, sizeof why, "%s: F_GETLK type %s [%lld +%lld pid %d], want %s", who,
                 tname(fl->l_type), (long long)fl->l_start, (long long)fl->l_len,
                 (int)fl->l_pid, tname(type));
        return -1;
    }
    if (type == F_UNLCK)
        return 0;
    if (fl->l_start != hs || fl->l_len != hl) {
        snprintf(why, sizeof why, "%s: F_GETLK holder [%lld +%lld], want [%lld +%lld]", who,
                 (long long)fl->l_start, (long long)fl->l_len, (long long)hs, (long long)hl);
        return -1;
    }
    /* A conflict found only at the server (the holder is on another mount)
     * carries NLM's svid, the holding client's lock-owner number, not a
     * process id: Linux reports it as a negative pid for a remote lock.
     * Only a holder this client knows locally has its real pid; for the
     * other the pid is not checked. */
    static int shown;
    if (via_server && !shown++)
        printf("INFO a lock held through the other mount shows as pid %d (its owner is pid %d)\n",
               (int)fl->l_pid, (int)hp);
    if (!via_server && fl->l_pid != hp) {
        snprintf(why, sizeof why, "%s: F_GETLK pid %d, want %d", who, (int)fl->l_pid, (int)hp);
        return -1;
    }
    return 0;
}

/* The child's F_GETLK of [s, +l) as type t should show h (type ht). */
#define C_SEES(t, s, l, ht, hs, hl) do { struct flock fl_; int e_ = child_do(&c, OP_GETLK, 0, t, s, l, &fl_); \
    FAILIF(e_, "child F_GETLK %s [%lld +%lld]: %s", tname(t), (long long)(s), (long long)(l), e_ < 0 ? "child gone" : strerror(e_)); \
    char w_[96]; snprintf(w_, sizeof w_, "child asks %s [%lld +%lld]", tname(t), (long long)(s), (long long)(l)); \
    if (holder_is(w_, &fl_, ht, hs, hl, getpid(), remote)) goto out; } while (0)
#define P_SEES(t, s, l, ht, hs, hl) do { struct flock fl_; int e_ = lk(pfd, F_GETLK, t, s, l, &fl_); \
    FAILIF(e_, "parent F_GETLK %s [%lld +%lld]: %s", tname(t), (long long)(s), (long long)(l), strerror(e_)); \
    char w_[96]; snprintf(w_, sizeof w_, "parent asks %s [%lld +%lld]", tname(t), (long long)(s), (long long)(l)); \
    if (holder_is(w_, &fl_, ht, hs, hl, c.pid, remote)) goto out; } while (0)
/* Lock calls that should succeed (OK) or be refused (NO). */
#define P_OK(t, s, l) do { int e_ = lk(pfd, F_SETLK, t, s, l, NULL); \
    FAILIF(e_, "parent F_SETLK %s [%lld +%lld]: %s", tname(t), (long long)(s), (long long)(l), strerror(e_)); } while (0)
#define P_NO(t, s, l) do { int e_ = lk(pfd, F_SETLK, t, s, l, NULL); \
    FAILIF(!denied(e_), "parent F_SETLK %s [%lld +%lld]: %s, want EAGAIN/EACCES", tname(t), (long long)(s), (long long)(l), e_ ? strerror(e_) : "granted"); } while (0)
#define C_OK(t, s, l) do { int e_ = child_do(&c, OP_SETLK, 0, t, s, l, NULL); \
    FAILIF(e_, "child F_SETLK %s [%lld +%lld]: %s", tname(t), (long long)(s), (long long)(l), e_ < 0 ? "child gone" : strerror(e_)); } while (0)
#define C_NO(t, s, l) do { int e_ = child_do(&c, OP_SETLK, 0, t, s, l, NULL); \
    FAILIF(!denied(e_), "child F_SETLK %s [%lld +%lld]: %s, want EAGAIN/EACCES", tname(t), (long long)(s), (long long)(l), e_ < 0 ? "child gone" : e_ ? strerror(e_) : "granted"); } while (0)
#define START() struct child c = { 0 }; if (child_start(&c)) goto out
#define FINISH() rc = 0; out: child_stop(&c); lk(pfd, F_SETLK, F_UNLCK, 0, 0, NULL); return rc

#define P2_31 ((off_t)0x7fffffff)
#define P2_32 ((off_t)1 << 32)
#define P2_62 ((off_t)1 << 62)

/* ---- the sub-checks ---- */

static int getlk_reports_whole_file_write_lock(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 0);
    C_SEES(F_WRLCK, 0, 0, F_WRLCK, 0, 0);
    C_SEES(F_RDLCK, 1000, 10, F_WRLCK, 0, 0);
    C_NO(F_WRLCK, 0, 1);
    C_NO(F_RDLCK, 5, 5);
    FINISH();
}

static int getlk_reports_range_lock(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 100, 50);
    C_SEES(F_WRLCK, 0, 100, F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 149, 1, F_WRLCK, 100, 50);
    C_SEES(F_WRLCK, 150, 10, F_UNLCK, 0, 0);
    C_SEES(F_RDLCK, 0, 0, F_WRLCK, 100, 50);
    C_SEES(F_WRLCK, 50, 60, F_WRLCK, 100, 50);
    FINISH();
}

static int getlk_reports_read_lock_only_to_writers(void)
{
    int rc = 1;
    START();
    P_OK(F_RDLCK, 10, 10);
    C_SEES(F_WRLCK, 0, 0, F_RDLCK, 10, 10);
    C_SEES(F_RDLCK, 0, 0, F_UNLCK, 0, 0);
    FINISH();
}

static int getlk_of_own_lock_reports_unlocked(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 0);
    struct flock fl;
    int e = lk(pfd, F_GETLK, F_WRLCK, 0, 0, &fl);
    FAILIF(e || fl.l_type != F_UNLCK, "parent F_GETLK over its own lock: %s type %s",
           e ? strerror(e) : "ok", tname(fl.l_type));
    FINISH();
}

static int len0_lock_covers_to_eof_and_beyond(void)
{
    int rc = 1;
    START();
    FAILIF(ftruncate(pfd, 4096), "ftruncate: %s", strerror(errno));
    P_OK(F_WRLCK, 200, 0);
    C_SEES(F_WRLCK, 0, 200, F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 4095, 1, F_WRLCK, 200, 0);
    C_SEES(F_WRLCK, (off_t)1 << 40, 1, F_WRLCK, 200, 0);
    C_NO(F_WRLCK, (off_t)1 << 30, 10);
    C_NO(F_RDLCK, 199, 2);
    C_OK(F_WRLCK, 0, 200);
    P_SEES(F_WRLCK, 0, 0, F_WRLCK, 0, 200);
    FINISH();
}

static int disjoint_write_locks_coexist(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 100);
    C_OK(F_WRLCK, 100, 100);
    P_SEES(F_WRLCK, 100, 100, F_WRLCK, 100, 100);
    P_SEES(F_WRLCK, 0, 100, F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 0, 100, F_WRLCK, 0, 100);
    P_NO(F_WRLCK, 150, 10);
    C_NO(F_WRLCK, 99, 2);
    FINISH();
}

static int overlapping_write_locks_conflict(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 100);
    C_NO(F_WRLCK, 50, 100);
    C_NO(F_WRLCK, 99, 1);
    C_NO(F_WRLCK, 0, 0);
    P_OK(F_UNLCK, 0, 100);
    C_OK(F_WRLCK, 50, 100);
    P_NO(F_WRLCK, 0, 51);
    P_OK(F_WRLCK, 0, 50);
    FINISH();
}

static int read_locks_share_write_conflicts(void)
{
    int rc = 1;
    START();
    P_OK(F_RDLCK, 0, 100);
    C_OK(F_RDLCK, 50, 100);
    C_OK(F_WRLCK, 200, 10);
    C_NO(F_WRLCK, 0, 10);
    P_NO(F_WRLCK, 60, 10);
    P_SEES(F_WRLCK, 60, 10, F_RDLCK, 50, 100);
    P_SEES(F_RDLCK, 60, 10, F_UNLCK, 0, 0);
    P_NO(F_RDLCK, 205, 1);
    C_SEES(F_WRLCK, 0, 10, F_RDLCK, 0, 100);
    FINISH();
}

static int unlock_in_middle_splits_lock(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 300);
    P_OK(F_UNLCK, 100, 100);
    C_SEES(F_WRLCK, 0, 100, F_WRLCK, 0, 100);
    C_SEES(F_WRLCK, 100, 100, F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 200, 100, F_WRLCK, 200, 100);
    C_OK(F_WRLCK, 100, 100);
    C_NO(F_WRLCK, 99, 1);
    C_NO(F_WRLCK, 200, 1);
    FINISH();
}

static int unlock_whole_file_drops_every_range(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 10);
    P_OK(F_WRLCK, 20, 10);
    P_OK(F_RDLCK, 40, 10);
    P_OK(F_WRLCK, P2_32, 1);
    P_OK(F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 0, 0, F_UNLCK, 0, 0);
    C_OK(F_WRLCK, 0, 0);
    FINISH();
}

static int adjacent_locks_merge_then_split(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 100);
    P_OK(F_WRLCK, 100, 100);
    C_SEES(F_WRLCK, 0, 0, F_WRLCK, 0, 200);
    P_OK(F_UNLCK, 50, 100);
    C_SEES(F_WRLCK, 0, 50, F_WRLCK, 0, 50);
    C_SEES(F_WRLCK, 50, 100, F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 150, 50, F_WRLCK, 150, 50);
    C_OK(F_WRLCK, 50, 100);
    FINISH();
}

static int upgrade_read_to_write(void)
{
    int rc = 1;
    START();
    P_OK(F_RDLCK, 0, 100);
    C_SEES(F_RDLCK, 0, 100, F_UNLCK, 0, 0);
    P_OK(F_WRLCK, 0, 100);
    C_SEES(F_RDLCK, 0, 100, F_WRLCK, 0, 100);
    C_NO(F_RDLCK, 10, 1);
    FINISH();
}

static int upgrade_refused_while_other_reads_keeps_read_lock(void)
{
    int rc = 1;
    START();
    P_OK(F_RDLCK, 0, 100);
    C_OK(F_RDLCK, 0, 10);
    P_NO(F_WRLCK, 0, 100);
    C_SEES(F_WRLCK, 50, 1, F_RDLCK, 0, 100);
    C_OK(F_RDLCK, 50, 1);
    FINISH();
}

static int downgrade_write_to_read(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 100);
    C_NO(F_RDLCK, 0, 100);
    P_OK(F_RDLCK, 0, 100);
    C_OK(F_RDLCK, 0, 100);
    C_SEES(F_WRLCK, 0, 100, F_RDLCK, 0, 100);
    C_NO(F_WRLCK, 0, 1);
    FINISH();
}

static int write_lock_inside_read_lock_splits_it(void)
{
    int rc = 1;
    START();
    P_OK(F_RDLCK, 0, 300);
    P_OK(F_WRLCK, 100, 100);
    C_SEES(F_RDLCK, 0, 100, F_UNLCK, 0, 0);
    C_SEES(F_RDLCK, 100, 100, F_WRLCK, 100, 100);
    C_SEES(F_WRLCK, 0, 100, F_RDLCK, 0, 100);
    C_SEES(F_WRLCK, 200, 100, F_RDLCK, 200, 100);
    C_OK(F_RDLCK, 250, 10);
    C_NO(F_RDLCK, 150, 1);
    FINISH();
}

static int locks_at_and_beyond_eof(void)
{
    int rc = 1;
    START();
    FAILIF(ftruncate(pfd, 1000), "ftruncate: %s", strerror(errno));
    P_OK(F_WRLCK, 1000, 10);
    P_OK(F_WRLCK, 1000000, 1);
    C_SEES(F_WRLCK, 1000, 1, F_WRLCK, 1000, 10);
    C_SEES(F_WRLCK, 1010, 1000, F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 999999, 2, F_WRLCK, 1000000, 1);
    C_NO(F_WRLCK, 1005, 1);
    C_OK(F_WRLCK, 1010, 100);
    C_OK(F_WRLCK, 0, 1000);
    P_SEES(F_WRLCK, 0, 0, F_WRLCK, 0, 1000);
    FINISH();
}

static int locks_at_large_offsets(void)
{
    int rc = 1;
    START();
    const off_t offs[] = { P2_31, P2_32, P2_62 };
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        off_t o = offs[i];
        P_OK(F_WRLCK, o, 1);
        C_SEES(F_WRLCK, o - 1, 1, F_UNLCK, 0, 0);
        C_SEES(F_WRLCK, o, 1, F_WRLCK, o, 1);
        C_SEES(F_WRLCK, o + 1, 1, F_UNLCK, 0, 0);
        C_SEES(F_WRLCK, 0, 0, F_WRLCK, o, 1);
        C_NO(F_WRLCK, o, 1);
        P_OK(F_UNLCK, o, 1);
        C_OK(F_WRLCK, o, 1);
        P_SEES(F_WRLCK, o - 1, 2, F_WRLCK, o, 1);
        C_OK(F_UNLCK, o, 1);
        P_OK(F_WRLCK, o, 0);
        C_SEES(F_WRLCK, o - 1, 1, F_UNLCK, 0, 0);
        C_SEES(F_WRLCK, o + 12345, 1, F_WRLCK, o, 0);
        C_SEES(F_RDLCK, o - 1, 0, F_WRLCK, o, 0);
        C_NO(F_WRLCK, o + 1, 1);
        C_OK(F_WRLCK, o - 1, 1);
        P_OK(F_UNLCK, o, 0);
        C_OK(F_UNLCK, o - 1, 1);
    }
    FINISH();
}

static int close_of_any_fd_drops_locks(void)
{
    int rc = 1;
    START();
    int fd2 = open(A, O_RDWR);
    FAILIF(fd2 < 0, "open %.300s again: %s", A, strerror(errno));
    P_OK(F_WRLCK, 0, 100);
    P_OK(F_RDLCK, P2_32, 0);
    C_NO(F_WRLCK, 0, 100);
    close(fd2);
    C_SEES(F_WRLCK, 0, 0, F_UNLCK, 0, 0);
    C_OK(F_WRLCK, 0, 100);
    /* and the child's: it closes a second fd of its own */
    int e = child_do(&c, OP_OPEN2, 0, 0, 0, 0, NULL);
    FAILIF(e, "child opens a second fd: %s", e < 0 ? "child gone" : strerror(e));
    P_NO(F_WRLCK, 0, 1);
    e = child_do(&c, OP_CLOSE2, 0, 0, 0, 0, NULL);
    FAILIF(e, "child closes its second fd: %s", e < 0 ? "child gone" : strerror(e));
    P_SEES(F_WRLCK, 0, 0, F_UNLCK, 0, 0);
    P_OK(F_WRLCK, 0, 0);
    FINISH();
}

static int child_exit_releases_its_locks(void)
{
    int rc = 1;
    START();
    C_OK(F_WRLCK, 0, 100);
    C_OK(F_RDLCK, 1000, 0);
    P_NO(F_WRLCK, 0, 1);
    P_NO(F_WRLCK, 5000, 1);
    child_stop(&c);
    P_OK(F_WRLCK, 0, 0);
    FINISH();
}

static int killed_child_releases_its_locks(void)
{
    int rc = 1;
    START();
    C_OK(F_WRLCK, 0, 0);
    P_NO(F_RDLCK, 10, 1);
    kill(c.pid, SIGKILL);
    waitpid(c.pid, NULL, 0);
    close(c.to);
    close(c.from);
    c.pid = 0;
    P_OK(F_WRLCK, 0, 0);
    FINISH();
}

static int locks_on_two_files_are_independent(void)
{
    int rc = 1;
    int bfd = -1;
    START();
    bfd = open(B, O_RDWR | O_CREAT, 0644);
    FAILIF(bfd < 0, "open %.300s: %s", B, strerror(errno));
    P_OK(F_WRLCK, 0, 0);
    int e = child_do(&c, OP_OPEN2, 1, 0, 0, 0, NULL);
    FAILIF(e, "child opens the second file: %s", e < 0 ? "child gone" : strerror(e));
    e = child_do(&c, OP_SETLK, 1, F_WRLCK, 0, 0, NULL);
    FAILIF(e, "child locks the second file while the parent holds the first: %s",
           e < 0 ? "child gone" : strerror(e));
    struct flock fl;
    e = lk(bfd, F_GETLK, F_WRLCK, 0, 0, &fl);
    FAILIF(e, "parent F_GETLK on the second file: %s", strerror(e));
    if (holder_is("parent asks the second file", &fl, F_WRLCK, 0, 0, c.pid, remote))
        goto out;
    e = lk(bfd, F_SETLK, F_RDLCK, 0, 1, NULL);
    FAILIF(!denied(e), "parent F_SETLK on the second file: %s, want EAGAIN",
           e ? strerror(e) : "granted");
    C_SEES(F_WRLCK, 0, 0, F_WRLCK, 0, 0);
    e = child_do(&c, OP_CLOSE2, 0, 0, 0, 0, NULL);
    FAILIF(e, "child closes the second file: %s", e < 0 ? "child gone" : strerror(e));
    C_SEES(F_WRLCK, 0, 0, F_WRLCK, 0, 0);       /* A still locked by the parent */
    e = lk(bfd, F_SETLK, F_WRLCK, 0, 0, NULL);
    FAILIF(e, "parent locks the second file after the child closed it: %s", strerror(e));
    rc = 0;
out:
    child_stop(&c);
    if (bfd >= 0)
        close(bfd);
    lk(pfd, F_SETLK, F_UNLCK, 0, 0, NULL);
    return rc;
}

static int locks_survive_truncate_and_extend(void)
{
    int rc = 1;
    START();
    FAILIF(ftruncate(pfd, 0), "ftruncate 0: %s", strerror(errno));
    P_OK(F_WRLCK, 0, 0);
    C_SEES(F_WRLCK, 10, 1, F_WRLCK, 0, 0);
    FAILIF(ftruncate(pfd, 1 << 20), "ftruncate 1 MiB: %s", strerror(errno));
    C_SEES(F_WRLCK, 1 << 19, 1, F_WRLCK, 0, 0);
    P_OK(F_UNLCK, 0, 0);
    P_OK(F_WRLCK, (1 << 20) - 1, 1);
    C_NO(F_WRLCK, (1 << 20) - 1, 1);
    FAILIF(ftruncate(pfd, 100), "ftruncate 100: %s", strerror(errno));
    C_SEES(F_WRLCK, (1 << 20) - 1, 10, F_WRLCK, (1 << 20) - 1, 1);
    C_OK(F_WRLCK, 0, 100);
    FAILIF(pwrite(pfd, "x", 1, 200) != 1, "pwrite past the child's lock: %s", strerror(errno));
    P_SEES(F_WRLCK, 0, 0, F_WRLCK, 0, 100);
    FINISH();
}

static int negative_length_locks_bytes_before_start(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 100, -50);
    C_SEES(F_WRLCK, 0, 0, F_WRLCK, 50, 50);
    C_SEES(F_WRLCK, 100, 10, F_UNLCK, 0, 0);
    C_SEES(F_RDLCK, 49, 1, F_UNLCK, 0, 0);
    C_NO(F_RDLCK, 99, 1);
    C_OK(F_WRLCK, 100, 1);
    FINISH();
}

static int locks_reaching_the_largest_offset(void)
{
    int rc = 1;
    START();
    const off_t max = INT64_MAX;
    P_OK(F_WRLCK, max, 1);                 /* the last byte: [2^63-1, 2^63-1] */
    C_SEES(F_WRLCK, max - 1, 1, F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 0, 0, F_WRLCK, max, 0);    /* ending at OFFSET_MAX shows as len 0 */
    C_NO(F_RDLCK, max, 1);
    C_OK(F_WRLCK, max - 10, 10);
    C_OK(F_UNLCK, 0, 0);
    P_OK(F_UNLCK, max, 1);
    P_OK(F_RDLCK, 1, max);                 /* [1, 2^63-1]: to the end as well */
    C_SEES(F_WRLCK, P2_62, 1, F_RDLCK, 1, 0);
    C_OK(F_RDLCK, P2_62, 1);
    C_OK(F_UNLCK, 0, 0);
    C_OK(F_WRLCK, 0, 1);
    FINISH();
}

static int relocking_same_range_is_idempotent(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 10);
    P_OK(F_WRLCK, 0, 10);
    P_OK(F_RDLCK, 20, 10);
    P_OK(F_RDLCK, 20, 10);
    C_SEES(F_RDLCK, 0, 0, F_WRLCK, 0, 10);
    P_OK(F_UNLCK, 0, 10);
    C_OK(F_WRLCK, 0, 10);
    C_SEES(F_WRLCK, 10, 0, F_RDLCK, 20, 10);
    P_OK(F_UNLCK, 20, 10);
    C_OK(F_WRLCK, 0, 0);
    FINISH();
}

static int many_small_locks_then_whole_unlock(void)
{
    int rc = 1;
    START();
    for (off_t i = 0; i < 300; i++)
        P_OK(i % 3 ? F_RDLCK : F_WRLCK, 2 * i, 1);
    C_SEES(F_WRLCK, 1, 1, F_UNLCK, 0, 0);
    C_SEES(F_WRLCK, 299, 1, F_UNLCK, 0, 0);
    C_SEES(F_RDLCK, 299, 3, F_WRLCK, 300, 1);      /* 2*150, a write lock */
    C_SEES(F_WRLCK, 597, 4, F_RDLCK, 598, 1);      /* 2*299 */
    C_OK(F_WRLCK, 301, 1);
    C_NO(F_RDLCK, 300, 1);
    C_OK(F_RDLCK, 302, 1);
    P_OK(F_UNLCK, 0, 0);
    C_OK(F_WRLCK, 0, 0);
    FINISH();
}

/* A waiter that gives up (signal, or killed) must not be granted the lock
 * later: the client cancels its blocked request at the server. */
static int interrupted_setlkw_is_cancelled(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 100);
    int e = child_do(&c, OP_SETLKW_ALARM, 2, F_WRLCK, 50, 100, NULL);
    FAILIF(e != EINTR, "the child's F_SETLKW interrupted by an alarm: %s, want EINTR",
           e < 0 ? "child gone" : e ? strerror(e) : "granted");
    P_OK(F_UNLCK, 0, 100);
    sleep(1);
    P_OK(F_WRLCK, 0, 0);
    C_SEES(F_RDLCK, 120, 1, F_WRLCK, 0, 0);
    FINISH();
}

static int killed_waiter_is_cancelled(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 0);
    FAILIF(child_send(&c, OP_SETLKW, 0, F_RDLCK, 10, 10), "cannot send to the child");
    sleep(2);
    kill(c.pid, SIGKILL);
    waitpid(c.pid, NULL, 0);
    close(c.to);
    close(c.from);
    c.pid = 0;
    P_OK(F_UNLCK, 0, 0);
    sleep(1);
    if (child_start(&c))         /* why says what went wrong */
        goto out;
    C_OK(F_WRLCK, 0, 0);
    P_SEES(F_WRLCK, 0, 0, F_WRLCK, 0, 0);
    FINISH();
}

/* The server keys locks by the file, not by the name or handle a client
 * came with: a hard link, a renamed file and a tarball member written for
 * the first time (its data moves to the writable layer) keep their locks. */
static int lock_seen_through_hard_link(void)
{
    int rc = 1;
    char l[4200];
    snprintf(l, sizeof l, "%s/lockfile-link", DIRP);
    snprintf(CX, sizeof CX, "%s/lockfile-link", DIRC);
    unlink(l);
    START();
    FAILIF(link(A, l), "link: %s", strerror(errno));
    P_OK(F_WRLCK, 10, 10);
    int e = child_do(&c, OP_OPENX, 0, 0, 0, 0, NULL);
    FAILIF(e, "child opens the link: %s", e < 0 ? "child gone" : strerror(e));
    C_SEES(F_WRLCK, 0, 0, F_WRLCK, 10, 10);
    C_NO(F_RDLCK, 15, 1);
    C_OK(F_WRLCK, 20, 10);
    P_NO(F_WRLCK, 25, 1);
    rc = 0;
out:
    child_stop(&c);
    lk(pfd, F_SETLK, F_UNLCK, 0, 0, NULL);
    unlink(l);
    return rc;
}

static int lock_follows_renamed_file(void)
{
    int rc = 1, fd = -1;
    char r1[4200], r2[4200];
    snprintf(r1, sizeof r1, "%s/lockfile-r1", DIRP);
    snprintf(r2, sizeof r2, "%s/lockfile-r2", DIRP);
    snprintf(CX, sizeof CX, "%s/lockfile-r2", DIRC);
    unlink(r2);
    START();
    fd = open(r1, O_RDWR | O_CREAT | O_TRUNC, 0644);
    FAILIF(fd < 0, "create: %s", strerror(errno));
    struct flock fl;
    int e = lk(fd, F_SETLK, F_WRLCK, 0, 0, NULL);
    FAILIF(e, "lock before the rename: %s", strerror(e));
    FAILIF(rename(r1, r2), "rename: %s", strerror(errno));
    e = child_do(&c, OP_OPENX, 0, 0, 0, 0, NULL);
    FAILIF(e, "child opens the new name: %s", e < 0 ? "child gone" : strerror(e));
    C_NO(F_WRLCK, 0, 1);
    e = lk(fd, F_SETLK, F_UNLCK, 0, 0, NULL);
    FAILIF(e, "unlock after the rename: %s", strerror(e));
    C_OK(F_WRLCK, 0, 0);
    e = lk(fd, F_GETLK, F_RDLCK, 0, 0, &fl);
    FAILIF(e, "parent F_GETLK: %s", strerror(e));
    if (holder_is("parent asks the renamed file", &fl, F_WRLCK, 0, 0, c.pid, remote))
        goto out;
    rc = 0;
out:
    child_stop(&c);
    if (fd >= 0)
        close(fd);
    unlink(r2);
    return rc;
}

static int lock_on_tarball_member_survives_first_write(void)
{
    int rc = 1, fd = -1;
    if (!M[0]) {
        snprintf(why, sizeof why, "no --member given");
        return 1;
    }
    memcpy(CX, CM, sizeof CX);
    START();
    fd = open(M, O_RDWR);
    FAILIF(fd < 0, "open the member: %s", strerror(errno));
    char b;
    FAILIF(pread(fd, &b, 1, 0) != 1, "read the member: %s", strerror(errno));
    int e = lk(fd, F_SETLK, F_WRLCK, 0, 0, NULL);
    FAILIF(e, "lock the member: %s", strerror(e));
    e = child_do(&c, OP_OPENX, 0, 0, 0, 0, NULL);
    FAILIF(e, "child opens the member: %s", e < 0 ? "child gone" : strerror(e));
    C_NO(F_WRLCK, 0, 1);
    /* the same byte back: the content stays, but it is a write */
    FAILIF(pwrite(fd, &b, 1, 0) != 1 || fsync(fd), "write the member: %s", strerror(errno));
    C_NO(F_RDLCK, 0, 1);
    C_SEES(F_WRLCK, 100, 1, F_WRLCK, 0, 0);
    e = lk(fd, F_SETLK, F_UNLCK, 0, 0, NULL);
    FAILIF(e, "unlock the member after the write: %s", strerror(e));
    C_OK(F_WRLCK, 0, 0);
    rc = 0;
out:
    child_stop(&c);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Through the other mount the child's F_SETLKW waits at the server, which
 * grants it when the parent unlocks; the GRANTED callback may be lost (it
 * cannot reach this VM), and the child gives up (a signal) before its lockd
 * asks again: its CANCEL must release what the server granted meanwhile,
 * or the lock stays held for an owner that does not know it has it. */
static int waiter_granted_then_interrupted_leaves_no_lock(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 0);
    FAILIF(child_send(&c, OP_SETLKW_ALARM, 8, F_WRLCK, 0, 0), "cannot send to the child");
    sleep(3);
    P_OK(F_UNLCK, 0, 0);
    struct rep r;
    FAILIF(xread(c.from, &r, sizeof r), "the child died in F_SETLKW");
    if (r.err == 0) {
        /* the grant reached the child after all: nothing to cancel */
        printf("INFO waiter-granted-then-interrupted: the child got the lock before its alarm\n");
        C_OK(F_UNLCK, 0, 0);
    } else {
        FAILIF(r.err != EINTR, "the child's F_SETLKW: %s, want EINTR or success", strerror(r.err));
    }
    sleep(1);
    child_stop(&c);
    P_OK(F_WRLCK, 0, 0);
    FINISH();
}

static int setlkw_waits_until_holder_unlocks(void)
{
    int rc = 1;
    START();
    P_OK(F_WRLCK, 0, 0);
    long long t0 = now_ms();
    FAILIF(child_send(&c, OP_SETLKW, 0, F_WRLCK, 0, 0), "cannot send to the child");
    struct pollfd p = { .fd = c.from, .events = POLLIN };
    FAILIF(poll(&p, 1, 3000) != 0, "the child's F_SETLKW returned while the parent held the lock");
    P_OK(F_UNLCK, 0, 0);
    /* The server's GRANTED callback cannot reach this VM; its lockd asks
     * again every 30 s.  On one mount the child waits in the client's own
     * lock list first, but the client drops the parent's lock there before
     * its UNLOCK reaches the server, so the child's LOCK may still find it
     * at the server, be queued and wait for that next poll. */
    FAILIF(poll(&p, 1, 75000) != 1, "the child's F_SETLKW did not return within 75 s of the unlock");
    struct rep r;
    FAILIF(xread(c.from, &r, sizeof r), "the child died in F_SETLKW");
    FAILIF(r.err, "the child's F_SETLKW: %s", strerror(r.err));
    P_SEES(F_RDLCK, 0, 0, F_WRLCK, 0, 0);
    printf("INFO setlkw: granted %lld ms after the wait began\n", now_ms() - t0);
    FINISH();
}

struct sub { const char *name; int (*fn)(void); int once; };  /* once: 1 first pass only, 2 other mount only */
static const struct sub subs[] = {
    { "getlk-reports-whole-file-write-lock", getlk_reports_whole_file_write_lock, 0 },
    { "getlk-reports-range-lock", getlk_reports_range_lock, 0 },
    { "getlk-reports-read-lock-only-to-writers", getlk_reports_read_lock_only_to_writers, 0 },
    { "getlk-of-own-lock-reports-unlocked", getlk_of_own_lock_reports_unlocked, 0 },
    { "len0-lock-covers-to-eof-and-beyond", len0_lock_covers_to_eof_and_beyond, 0 },
    { "disjoint-write-locks-coexist", disjoint_write_locks_coexist, 0 },
    { "overlapping-write-locks-conflict", overlapping_write_locks_conflict, 0 },
    { "read-locks-share-write-conflicts", read_locks_share_write_conflicts, 0 },
    { "unlock-in-middle-splits-lock", unlock_in_middle_splits_lock, 0 },
    { "unlock-whole-file-drops-every-range", unlock_whole_file_drops_every_range, 0 },
    { "adjacent-locks-merge-then-split", adjacent_locks_merge_then_split, 0 },
    { "upgrade-read-to-write", upgrade_read_to_write, 0 },
    { "upgrade-refused-while-other-reads-keeps-read-lock", upgrade_refused_while_other_reads_keeps_read_lock, 0 },
    { "downgrade-write-to-read", downgrade_write_to_read, 0 },
    { "write-lock-inside-read-lock-splits-it", write_lock_inside_read_lock_splits_it, 0 },
    { "locks-at-and-beyond-eof", locks_at_and_beyond_eof, 0 },
    { "locks-at-large-offsets", locks_at_large_offsets, 0 },
    { "close-of-any-fd-drops-locks", close_of_any_fd_drops_locks, 0 },
    { "child-exit-releases-its-locks", child_exit_releases_its_locks, 0 },
    { "killed-child-releases-its-locks", killed_child_releases_its_locks, 0 },
    { "locks-on-two-files-are-independent", locks_on_two_files_are_independent, 0 },
    { "locks-survive-truncate-and-extend", locks_survive_truncate_and_extend, 0 },
    { "negative-length-locks-bytes-before-start", negative_length_locks_bytes_before_start, 0 },
    { "locks-reaching-the-largest-offset", locks_reaching_the_largest_offset, 0 },
    { "relocking-same-range-is-idempotent", relocking_same_range_is_idempotent, 0 },
    { "many-small-locks-then-whole-unlock", many_small_locks_then_whole_unlock, 0 },
    { "interrupted-setlkw-is-cancelled", interrupted_setlkw_is_cancelled, 0 },
    { "killed-waiter-is-cancelled", killed_waiter_is_cancelled, 0 },
    { "lock-seen-through-hard-link", lock_seen_through_hard_link, 0 },
    { "lock-follows-renamed-file", lock_follows_renamed_file, 0 },
    { "lock-on-tarball-member-survives-first-write", lock_on_tarball_member_survives_first_write, 0 },
    { "waiter-granted-then-interrupted-leaves-no-lock", waiter_granted_then_interrupted_leaves_no_lock, 2 },
    { "setlkw-waits-until-holder-unlocks", setlkw_waits_until_holder_unlocks, 1 },
};

static int selected(int argc, char **argv, int first, const char *name)
{
    if (first >= argc)
        return 1;
    for (int i = first; i < argc; i++)
        if (!strcmp(argv[i], name))
            return 1;
    return 0;
}

static void run_pass(int argc, char **argv, int first)
{
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (!selected(argc, argv, first, subs[i].name) || (remote && subs[i].once == 1) ||
            (!remote && subs[i].once == 2))
            continue;
        why[0] = 0;
        long long t0 = now_ms();
        int rc = subs[i].fn();
        if (rc) {
            failures++;
            printf("FAIL %s%s: %s\n", prefix, subs[i].name, why[0] ? why : "failed");
        } else {
            printf("PASS %s%s (%lld ms)\n", prefix, subs[i].name, now_ms() - t0);
        }
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: lockcheck DIR [--other OTHERDIR] [--member NAME] [SUBCHECK...]\n");
        return 2;
    }
    const char *dir = argv[1], *other = NULL, *member = NULL;
    int first = 2;
    while (first + 1 < argc && (!strcmp(argv[first], "--other") || !strcmp(argv[first], "--member"))) {
        if (!strcmp(argv[first], "--other"))
            other = argv[first + 1];
        else
            member = argv[first + 1];
        first += 2;
    }
    signal(SIGPIPE, SIG_IGN);
    mkdir(dir, 0755);
    snprintf(A, sizeof A, "%s/lockfile-a", dir);
    snprintf(B, sizeof B, "%s/lockfile-b", dir);
    pfd = open(A, O_RDWR | O_CREAT, 0644);
    if (pfd < 0) {
        printf("FAIL open: %s: %s\n", A, strerror(errno));
        return 1;
    }
    int bfd = open(B, O_RDWR | O_CREAT, 0644);
    if (bfd >= 0)
        close(bfd);
    memcpy(CA, A, sizeof CA);
    memcpy(CB, B, sizeof CB);
    snprintf(DIRP, sizeof DIRP, "%s", dir);
    memcpy(DIRC, DIRP, sizeof DIRC);
    if (member) {
        snprintf(M, sizeof M, "%s/../%s", dir, member);
        memcpy(CM, M, sizeof CM);
    }
    run_pass(argc, argv, first);
    if (other) {
        remote = 1;
        prefix = "other-mount:";
        snprintf(CA, sizeof CA, "%s/lockfile-a", other);
        snprintf(CB, sizeof CB, "%s/lockfile-b", other);
        snprintf(DIRC, sizeof DIRC, "%s", other);
        if (member)
            snprintf(CM, sizeof CM, "%s/../%s", other, member);
        run_pass(argc, argv, first);
    }
    close(pfd);
    return failures ? 1 : 0;
}
