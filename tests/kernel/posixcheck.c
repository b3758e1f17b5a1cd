/* posixcheck.c: the kernel VM's cthon04-style POSIX battery (built static by run.sh, run in the guest as root inside a fresh directory of the rw export): one "PASS name" / "FAIL name: why" line per check, exit status 1 if any failed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#define KiB 1024LL
#define MiB (1024LL * KiB)
#define GiB (1024LL * MiB)
#define OTHER_UID 1000   /* an unprivileged user for the owner-override and ACCESS checks */
#define OTHER_GID 1000

static char why[1024];
static int failed, passed;

/* Every helper that fails sets why and returns -1; a check returns 0 or -1. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return -1;
}
#define TRY(expr) do { if ((expr) < 0) return fail("%s: %s (line %d)", #expr, strerror(errno), __LINE__); } while (0)
#define EXPECT(cond, ...) do { if (!(cond)) return fail(__VA_ARGS__); } while (0)
#define EXPECT_ERRNO(expr, err) do { errno = 0; long r_ = (long)(expr); \
    if (r_ != -1 || errno != (err)) return fail("%s: got %ld/%s, expected %s", #expr, r_, \
        r_ == -1 ? strerror(errno) : "success", strerror(err)); } while (0)

static void drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "3", 1) < 0) { /* best effort: the data checks then read the client's cache */ }
        close(fd);
    }
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
}

static int write_file(const char *path, const void *buf, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return fail("create %s: %s", path, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)buf + off, len - off);
        if (n <= 0) { close(fd); return fail("write %s: %s", path, strerror(errno)); }
        off += (size_t)n;
    }
    if (close(fd) < 0)
        return fail("close %s: %s", path, strerror(errno));
    return 0;
}

static ssize_t read_all(int fd, void *buf, size_t len, off_t at)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, at + (off_t)got);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The names in DIR but "." and "..", sorted, into names[] (each malloc'd). */
static int list_dir(const char *dir, char **names, int max, int *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return fail("opendir %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == max) { closedir(d); return fail("%s: more than %d entries", dir, max); }
        names[n++] = strdup(e->d_name);
    }
    int err = errno;
    closedir(d);
    if (err)
        return fail("readdir %s: %s", dir, strerror(err));
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    *count = n;
    return 0;
}
static void free_names(char **names, int n) { for (int i = 0; i < n; i++) free(names[i]); }

/* Remove PATH and everything under it. */
static int rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : fail("lstat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        TRY(unlink(path));
        return 0;
    }
    DIR *d = opendir(path);
    if (!d)
        return fail("opendir %s: %s", path, strerror(errno));
    struct dirent *e;
    char sub[PATH_MAX];
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (rm_rf(sub) < 0) { rc = -1; break; }
    }
    closedir(d);
    if (rc == 0 && rmdir(path) < 0)
        return fail("rmdir %s: %s", path, strerror(errno));
    return rc;
}

/* No ".nfs*" (silly-renamed) name left in DIR: the client removes it once the last user
 * closes, asynchronously, so give it a moment. */
static int no_silly_names(const char *dir)
{
    for (int tries = 0; tries < 50; tries++) {
        DIR *d = opendir(dir);
        if (!d)
            return fail("opendir %s: %s", dir, strerror(errno));
        struct dirent *e;
        char left[NAME_MAX + 1] = "";
        while ((e = readdir(d)))
            if (!strncmp(e->d_name, ".nfs", 4))
                snprintf(left, sizeof left, "%s", e->d_name);
        closedir(d);
        if (!left[0])
            return 0;
        if (tries == 49)
            return fail("%s still holds %s after the last close", dir, left);
        usleep(100000);
    }
    return 0;
}

/* ------------------------------------------------------------------ basic (cthon basic) */

static int tree_make(const char *dir, int depth, int *files, int *dirs)
{
    char p[PATH_MAX];
    for (int f = 0; f < 4; f++) {
        snprintf(p, sizeof p, "%s/file.%d", dir, f);
        char data[64];
        int len = snprintf(data, sizeof data, "%s\n", p);
        if (write_file(p, data, (size_t)len, 0644) < 0)
            return -1;
        (*files)++;
    }
    if (depth == 0)
        return 0;
    for (int d = 0; d < 2; d++) {
        snprintf(p, sizeof p, "%s/dir.%d", dir, d);
        TRY(mkdir(p, 0755));
        (*dirs)++;
        if (tree_make(p, depth - 1, files, dirs) < 0)
            return -1;
    }
    return 0;
}
static int tree_stat(const char *dir, int depth, int *seen)
{
    char p[PATH_MAX];
    struct stat st;
    for (int f = 0; f < 4; f++) {
        snprintf(p, sizeof p, "%s/file.%d", dir, f);
        TRY(stat(p, &st));
        EXPECT(S_ISREG(st.st_mode) && st.st_size == (off_t)strlen(p) + 1 && st.st_nlink == 1,
               "%s: mode %o size %lld nlink %lu", p, st.st_mode, (long long)st.st_size, (unsigned long)st.st_nlink);
        int fd = open(p, O_RDONLY);
        char buf[PATH_MAX + 2] = "";
        EXPECT(fd >= 0, "open %s: %s", p, strerror(errno));
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        EXPECT(n == (ssize_t)strlen(p) + 1 && !strncmp(buf, p, strlen(p)), "%s reads back '%.40s'", p, buf);
        (*seen)++;
    }
    if (depth == 0)
        return 0;
    for (int d = 0; d < 2; d++) {
        snprintf(p, sizeof p, "%s/dir.%d", dir, d);
        TRY(stat(p, &st));
        EXPECT(S_ISDIR(st.st_mode), "%s is not a directory", p);
        (*seen)++;
        if (tree_stat(p, depth - 1, seen) < 0)
            return -1;
    }
    return 0;
}
static int check_tree_create_stat_remove(void)
{
    int files = 0, dirs = 0, seen = 0;
    TRY(mkdir("tree", 0755));
    if (tree_make("tree", 4, &files, &dirs) < 0)
        return -1;
    drop_caches();
    if (tree_stat("tree", 4, &seen) < 0)
        return -1;
    EXPECT(seen == files + dirs, "stat saw %d of %d", seen, files + dirs);
    if (rm_rf("tree") < 0)
        return -1;
    struct stat st;
    EXPECT_ERRNO(stat("tree", &st), ENOENT);
    return 0;
}

static int check_chmod_stat_round_trip(void)
{
    static const mode_t modes[] = { 0, 0777, 0644, 0400, 0200, 0100, 04755, 02755, 01755, 0666, 0755 };
    TRY(close(open("modes", O_CREAT | O_WRONLY, 0600)));
    TRY(mkdir("modes.d", 0700));
    struct stat st;
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        TRY(chmod("modes", modes[i]));
        drop_caches();
        TRY(stat("modes", &st));
        EXPECT((st.st_mode & 07777) == modes[i] && S_ISREG(st.st_mode), "file chmod %04o reads back %04o", modes[i], st.st_mode & 07777);
        TRY(chmod("modes.d", modes[i] | 0700));
        TRY(stat("modes.d", &st));
        EXPECT((st.st_mode & 07777) == (modes[i] | 0700) && S_ISDIR(st.st_mode), "dir chmod %04o reads back %04o", modes[i] | 0700, st.st_mode & 07777);
    }
    TRY(unlink("modes"));
    TRY(rmdir("modes.d"));
    return 0;
}

static int check_lookup_getattr(void)
{
    struct stat a, b, c;
    TRY(close(open("ga", O_CREAT | O_WRONLY, 0640)));
    int fd = open("ga", O_RDONLY);
    TRY(fd);
    TRY(fstat(fd, &a));
    close(fd);
    drop_caches();
    TRY(stat("ga", &b));
    TRY(stat("./ga", &c));
    EXPECT(a.st_ino == b.st_ino && b.st_ino == c.st_ino && a.st_dev == b.st_dev, "ino %llu/%llu/%llu differ",
           (unsigned long long)a.st_ino, (unsigned long long)b.st_ino, (unsigned long long)c.st_ino);
    EXPECT(b.st_uid == getuid() && b.st_gid == getgid(), "owner %u:%u, created by %u:%u", b.st_uid, b.st_gid, getuid(), getgid());
    EXPECT((b.st_mode & 07777) == (0640 & ~022u) && b.st_size == 0 && b.st_nlink == 1, "mode %o size %lld nlink %lu",
           b.st_mode, (long long)b.st_size, (unsigned long)b.st_nlink);
    time_t now = time(NULL);
    EXPECT(llabs((long long)b.st_mtime - now) < 3600 && llabs((long long)b.st_ctime - now) < 3600,
           "a new file's mtime %lld / ctime %lld, now %lld", (long long)b.st_mtime, (long long)b.st_ctime, (long long)now);
    EXPECT_ERRNO(stat("ga/x", &c), ENOTDIR);
    EXPECT_ERRNO(stat("no-such-name", &c), ENOENT);
    TRY(unlink("ga"));
    return 0;
}

static int check_write_read_1mib(void)
{
    size_t len = MiB + 12345;
    unsigned char *w = malloc(len), *r = malloc(len);
    fill(w, len, 1);
    int fd = open("big", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    TRY(fd);
    /* Odd-sized writes, so that they straddle the client's pages and the server's chunks. */
    for (size_t off = 0, step = 4093; off < len; off += step, step = step * 3 % 65521 + 1) {
        size_t n = off + step > len ? len - off : step;
        if (write(fd, w + off, n) != (ssize_t)n) { close(fd); return fail("write at %zu: %s", off, strerror(errno)); }
    }
    TRY(close(fd));
    drop_caches();
    fd = open("big", O_RDONLY);
    TRY(fd);
    struct stat st;
    TRY(fstat(fd, &st));
    ssize_t n = read_all(fd, r, len, 0);
    close(fd);
    int bad = memcmp(w, r, len);
    size_t at = 0;
    while (bad && at < len && w[at] == r[at]) at++;
    free(w); free(r);
    EXPECT(st.st_size == (off_t)len, "size %lld, wrote %zu", (long long)st.st_size, len);
    EXPECT(n == (ssize_t)len, "read %zd of %zu bytes", n, len);
    EXPECT(!bad, "read back differs from byte %zu", at);
    TRY(unlink("big"));
    return 0;
}

#define NDIR 200
#define NBIG 1000   /* with these names, several 64 KiB READDIRPLUS replies: cookies matter */
static void dir_name(char *buf, size_t len, int i)
{
    /* names of different lengths, so that the server's replies break at different places */
    static const char xs[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    snprintf(buf, len, "entry-%04d-%.*s", i, i % 120, xs);
}
static int make_entries(const char *dir, int n)
{
    char p[PATH_MAX], nm[NAME_MAX + 1];
    TRY(mkdir(dir, 0755));
    for (int i = 0; i < n; i++) {
        dir_name(nm, sizeof nm, i);
        snprintf(p, sizeof p, "%s/%s", dir, nm);
        int fd = open(p, O_CREAT | O_WRONLY, 0644);
        TRY(fd);
        close(fd);
    }
    return 0;
}
/* DIR lists exactly the entries i with want[i] set, each once. */
static int expect_listing(const char *dir, const char *want, int n)
{
    static char *names[NBIG * 2 + 10], *exp[NBIG];
    char nm[NAME_MAX + 1];
    int count;
    if (list_dir(dir, names, NBIG * 2 + 10, &count) < 0)
        return -1;
    int ne = 0;
    for (int i = 0; i < n; i++)
        if (want[i]) { dir_name(nm, sizeof nm, i); exp[ne++] = strdup(nm); }
    qsort(exp, (size_t)ne, sizeof *exp, cmp_str);
    int rc = 0;
    for (int i = 0; i < count && i < ne && rc == 0; i++)
        if (strcmp(names[i], exp[i]))
            rc = fail("%s: lists '%s' where '%s' was expected", dir, names[i], exp[i]);
    if (rc == 0 && count != ne)
        rc = fail("%s lists %d names, expected %d", dir, count, ne);
    for (int i = 1; rc == 0 && i < count; i++)
        if (!strcmp(names[i], names[i - 1]))
            rc = fail("%s lists '%s' twice", dir, names[i]);
    free_names(names, count);
    free_names(exp, ne);
    return rc;
}
static int check_readdir_200_files(void)
{
    char want[NDIR];
    memset(want, 1, sizeof want);
    if (make_entries("rd200", NDIR) < 0)
        return -1;
    if (expect_listing("rd200", want, NDIR) < 0)
        return -1;
    drop_caches();
    return expect_listing("rd200", want, NDIR);
}

/* cthon test6 style: unlink entries while a readdir runs.  Only names already returned are
 * removed, so every other name exists throughout the listing and must come exactly once. */
static int readdir_unlinking(const char *dir, int every, char *seen, int n, int *removed)
{
    DIR *d = opendir(dir);
    if (!d)
        return fail("opendir %s: %s", dir, strerror(errno));
    struct dirent *e;
    char p[PATH_MAX];
    int k = 0;
    errno = 0;
    while ((e = readdir(d))) {
        int i;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (sscanf(e->d_name, "entry-%d-", &i) != 1 || i < 0 || i >= n) {
            closedir(d);
            return fail("%s: unexpected name '%s' while unlinking", dir, e->d_name);
        }
        if (seen[i]) {
            closedir(d);
            return fail("%s: '%s' returned twice while entries were unlinked", dir, e->d_name);
        }
        seen[i] = 1;
        if (k++ % every == 0) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) < 0) { closedir(d); return fail("unlink %s: %s", p, strerror(errno)); }
            seen[i] = 2;
            (*removed)++;
        }
        errno = 0;
    }
    int err = errno;
    closedir(d);
    if (err)
        return fail("readdir %s: %s", dir, strerror(err));
    return 0;
}
static int check_readdir_while_unlinking(void)
{
    static char seen[NBIG], want[NBIG];
    int removed = 0;
    if (make_entries("rd6", NBIG) < 0)
        return -1;
    drop_caches();
    memset(seen, 0, sizeof seen);
    if (readdir_unlinking("rd6", 2, seen, NBIG, &removed) < 0)
        return -1;
    for (int i = 0; i < NBIG; i++) {
        char nm[NAME_MAX + 1];
        dir_name(nm, sizeof nm, i);
        EXPECT(seen[i], "'%s' (never unlinked) was not listed while every other entry was unlinked", nm);
        want[i] = seen[i] == 1;
    }
    if (expect_listing("rd6", want, NBIG) < 0)
        return -1;
    /* Then remove every remaining entry as it is listed: the directory ends empty. */
    memset(seen, 0, sizeof seen);
    int survivors = NBIG - removed;
    removed = 0;
    if (readdir_unlinking("rd6", 1, seen, NBIG, &removed) < 0)
        return -1;
    EXPECT(removed == survivors, "unlinking all while listing removed %d of %d", removed, survivors);
    TRY(rmdir("rd6"));
    return 0;
}

static int check_link_and_rename(void)
{
    struct stat a, b, c;
    TRY(write_file("ln.a", "aaaa", 4, 0644));
    TRY(write_file("ln.c", "cc", 2, 0644));
    TRY(link("ln.a", "ln.b"));
    TRY(stat("ln.a", &a));
    TRY(stat("ln.b", &b));
    EXPECT(a.st_ino == b.st_ino && a.st_nlink == 2 && b.st_nlink == 2, "after link: ino %llu/%llu nlink %lu/%lu",
           (unsigned long long)a.st_ino, (unsigned long long)b.st_ino, (unsigned long)a.st_nlink, (unsigned long)b.st_nlink);
    EXPECT_ERRNO(link("ln.a", "ln.c"), EEXIST);
    /* rename over an existing file: ln.c now names ln.a's inode */
    TRY(rename("ln.b", "ln.c"));
    drop_caches();
    TRY(stat("ln.c", &c));
    TRY(stat("ln.a", &a));
    EXPECT_ERRNO(stat("ln.b", &b), ENOENT);
    EXPECT(c.st_ino == a.st_ino && c.st_size == 4 && a.st_nlink == 2, "after rename over ln.c: ino %llu vs %llu, size %lld, nlink %lu",
           (unsigned long long)c.st_ino, (unsigned long long)a.st_ino, (long long)c.st_size, (unsigned long)a.st_nlink);
    /* rename back */
    TRY(rename("ln.c", "ln.b"));
    EXPECT_ERRNO(stat("ln.c", &c), ENOENT);
    TRY(stat("ln.b", &b));
    EXPECT(b.st_ino == a.st_ino, "renamed back: different inode");
    /* rename of one hard link onto the other is a no-op: both names stay (POSIX) */
    TRY(rename("ln.a", "ln.b"));
    TRY(stat("ln.a", &a));
    TRY(stat("ln.b", &b));
    EXPECT(a.st_nlink == 2 && b.st_nlink == 2, "rename of a link onto its twin: nlink %lu/%lu, expected both names kept",
           (unsigned long)a.st_nlink, (unsigned long)b.st_nlink);
    TRY(unlink("ln.b"));
    drop_caches();
    TRY(stat("ln.a", &a));
    EXPECT(a.st_nlink == 1, "after unlinking one of two links: nlink %lu", (unsigned long)a.st_nlink);
    /* rename across directories keeps the inode */
    TRY(mkdir("ln.dir", 0755));
    TRY(rename("ln.a", "ln.dir/moved"));
    TRY(stat("ln.dir/moved", &b));
    EXPECT(b.st_ino == a.st_ino && b.st_size == 4, "moved across directories: ino or size changed");
    TRY(unlink("ln.dir/moved"));
    TRY(rmdir("ln.dir"));
    return 0;
}

static int check_symlink_readlink(void)
{
    char target[1100], buf[1200];
    memset(target, 'y', 1000);
    target[0] = '/';
    target[1000] = 0;
    const char *targets[] = { "plain", "../up/and/down", "/abs/path", "with space", target };
    struct stat st;
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        char name[32];
        snprintf(name, sizeof name, "sl.%zu", i);
        TRY(symlink(targets[i], name));
        drop_caches();
        ssize_t n = readlink(name, buf, sizeof buf);
        TRY(n);
        EXPECT((size_t)n == strlen(targets[i]) && !memcmp(buf, targets[i], (size_t)n), "%s reads back '%.*s'", name, (int)(n > 40 ? 40 : n), buf);
        TRY(lstat(name, &st));
        EXPECT(S_ISLNK(st.st_mode) && st.st_size == (off_t)strlen(targets[i]), "%s: lstat mode %o size %lld", name, st.st_mode, (long long)st.st_size);
        EXPECT_ERRNO(symlink("other", name), EEXIST);
        TRY(unlink(name));
    }
    /* reading through a symlink */
    TRY(write_file("sl.target", "through", 7, 0644));
    TRY(symlink("sl.target", "sl.via"));
    int fd = open("sl.via", O_RDONLY);
    TRY(fd);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    EXPECT(n == 7 && !memcmp(buf, "through", 7), "reading through the symlink gave %zd bytes", n);
    EXPECT_ERRNO(open("sl.via", O_RDONLY | O_NOFOLLOW), ELOOP);
    TRY(unlink("sl.via"));
    TRY(unlink("sl.target"));
    return 0;
}

static int check_statfs_sane(void)
{
    struct statfs s;
    TRY(statfs(".", &s));
    EXPECT(s.f_blocks > 0 && s.f_bfree <= s.f_blocks && s.f_bavail <= s.f_bfree && s.f_bsize > 0,
           "f_bsize %ld f_blocks %llu f_bfree %llu f_bavail %llu", (long)s.f_bsize,
           (unsigned long long)s.f_blocks, (unsigned long long)s.f_bfree, (unsigned long long)s.f_bavail);
    EXPECT(s.f_ffree <= s.f_files, "f_files %llu f_ffree %llu", (unsigned long long)s.f_files, (unsigned long long)s.f_ffree);
    EXPECT(s.f_namelen >= 255, "f_namelen %ld", (long)s.f_namelen);
    return 0;
}

/* ------------------------------------------------------------------ special (cthon special) */

static int check_open_unlink_read_write(void)
{
    char buf[64];
    TRY(mkdir("ou", 0755));
    TRY(write_file("ou/f", "before", 6, 0644));
    int fd = open("ou/f", O_RDWR);
    TRY(fd);
    TRY(unlink("ou/f"));
    struct stat st;
    EXPECT_ERRNO(stat("ou/f", &st), ENOENT);
    EXPECT(pwrite(fd, "AFTER-UNLINK", 12, 6) == 12, "write to the unlinked open file: %s", strerror(errno));
    TRY(fsync(fd));
    drop_caches();
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    EXPECT(n == 18 && !memcmp(buf, "beforeAFTER-UNLINK", 18), "reading the unlinked open file: %zd bytes '%.*s'", n, (int)(n > 0 ? n : 0), buf);
    TRY(fstat(fd, &st));
    EXPECT(st.st_size == 18, "fstat of the unlinked file: size %lld", (long long)st.st_size);
    TRY(close(fd));
    if (no_silly_names("ou") < 0)
        return -1;
    TRY(rmdir("ou"));
    return 0;
}

static int check_rename_over_open_file(void)
{
    char buf[64];
    TRY(mkdir("ro", 0755));
    TRY(write_file("ro/victim", "old contents", 12, 0644));
    TRY(write_file("ro/new", "new", 3, 0644));
    int fd = open("ro/victim", O_RDONLY);
    TRY(fd);
    TRY(rename("ro/new", "ro/victim"));
    drop_caches();
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    EXPECT(n == 12 && !memcmp(buf, "old contents", 12), "the open, replaced file reads %zd bytes '%.*s'", n, (int)(n > 0 ? n : 0), buf);
    int fd2 = open("ro/victim", O_RDONLY);
    TRY(fd2);
    n = read(fd2, buf, sizeof buf);
    close(fd2);
    EXPECT(n == 3 && !memcmp(buf, "new", 3), "the name reads %zd bytes after the rename", n);
    TRY(close(fd));
    if (no_silly_names("ro") < 0)
        return -1;
    TRY(unlink("ro/victim"));
    TRY(rmdir("ro"));
    return 0;
}

#define OTHER_AUX_GID 2000   /* and a supplementary group of that user */
static int setgroups_other(void) { gid_t g = OTHER_AUX_GID; return setgroups(1, &g); }

/* Runs FN as OTHER_UID in a child; its why comes back through a pipe. */
static int as_other_user(int (*fn)(void))
{
    int p[2];
    TRY(pipe(p));
    pid_t pid = fork();
    TRY(pid);
    if (pid == 0) {
        close(p[0]);
        int rc = -1;
        if (setgroups_other() < 0 || setresgid(OTHER_GID, OTHER_GID, OTHER_GID) < 0 || setresuid(OTHER_UID, OTHER_UID, OTHER_UID) < 0)
            fail("cannot become %d: %s", OTHER_UID, strerror(errno));
        else
            rc = fn();
        if (rc < 0 && write(p[1], why, strlen(why)) < 0) { /* the parent says "no reason" */ }
        _exit(rc < 0);
    }
    close(p[1]);
    char msg[sizeof why] = "";
    ssize_t n = read(p[0], msg, sizeof msg - 1);
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return fail("as uid %d: %s", OTHER_UID, n > 0 ? msg : "child failed without a reason");
}

/* As the file's owner (not root, who may write anything): chmod 000 of an open file, then
 * writes through the fd opened before still work (cthon special op_chmod); the server must
 * let the owner write to a file it had opened, as knfsd's owner override does. */
static int chmod_000_then_write(void)
{
    int fd = open("c0.d/f", O_RDWR | O_CREAT | O_TRUNC, 0644);
    TRY(fd);
    EXPECT(write(fd, "one", 3) == 3, "first write: %s", strerror(errno));
    TRY(fchmod(fd, 0));
    TRY(fsync(fd));
    EXPECT(write(fd, "two", 3) == 3, "write after chmod 000: %s", strerror(errno));
    if (fsync(fd) < 0)
        return fail("fsync after chmod 000 (the server refused the write): %s", strerror(errno));
    char buf[16];
    drop_caches();
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    EXPECT(n == 6 && !memcmp(buf, "onetwo", 6), "read back through the fd after chmod 000: %zd bytes", n);
    EXPECT_ERRNO(open("c0.d/f", O_RDONLY), EACCES);
    TRY(close(fd));
    return 0;
}
static int check_chmod_000_open_file_write(void)
{
    TRY(mkdir("c0.d", 0755));
    TRY(chown("c0.d", OTHER_UID, OTHER_GID));
    if (as_other_user(chmod_000_then_write) < 0)
        return -1;
    struct stat st;
    TRY(stat("c0.d/f", &st));
    EXPECT(st.st_uid == OTHER_UID && st.st_size == 6 && (st.st_mode & 07777) == 0,
           "as root: owner %u size %lld mode %o", st.st_uid, (long long)st.st_size, st.st_mode & 07777);
    return rm_rf("c0.d");
}

static int access_as_other(void)
{
    EXPECT(access("ac.d/r", R_OK) == 0, "access(R_OK) of a 0644 root file: %s", strerror(errno));
    EXPECT_ERRNO(access("ac.d/r", W_OK), EACCES);
    EXPECT_ERRNO(access("ac.d/secret", R_OK), EACCES);
    EXPECT_ERRNO(open("ac.d/secret", O_RDONLY), EACCES);
    EXPECT_ERRNO(open("ac.d/r", O_WRONLY), EACCES);
    EXPECT_ERRNO(open("ac.d/new", O_CREAT | O_WRONLY, 0644), EACCES);
    EXPECT_ERRNO(unlink("ac.d/r"), EACCES);
    EXPECT(access("ac.d/x", X_OK) == 0, "access(X_OK) of a 0755 file: %s", strerror(errno));
    return 0;
}
static int check_permissions_for_another_user(void)
{
    TRY(mkdir("ac.d", 0755));
    TRY(write_file("ac.d/r", "r", 1, 0644));
    TRY(write_file("ac.d/secret", "s", 1, 0600));
    TRY(write_file("ac.d/x", "x", 1, 0755));
    if (as_other_user(access_as_other) < 0)
        return -1;
    return rm_rf("ac.d");
}

static int check_exclusive_create(void)
{
    int fd = open("excl", O_CREAT | O_EXCL | O_WRONLY, 0640);
    TRY(fd);
    close(fd);
    EXPECT_ERRNO(open("excl", O_CREAT | O_EXCL | O_WRONLY, 0640), EEXIST);
    struct stat st;
    drop_caches();
    TRY(stat("excl", &st));
    time_t now = time(NULL);
    /* NFSv3 EXCLUSIVE create keeps its verifier in the times until the client's SETATTR */
    EXPECT((st.st_mode & 07777) == 0640 && st.st_size == 0, "mode %o size %lld", st.st_mode & 07777, (long long)st.st_size);
    EXPECT(llabs((long long)st.st_mtime - now) < 3600 && llabs((long long)st.st_atime - now) < 3600,
           "after an exclusive create: atime %lld mtime %lld, now %lld", (long long)st.st_atime, (long long)st.st_mtime, (long long)now);
    EXPECT_ERRNO(mkdir("excl", 0755), EEXIST);
    EXPECT_ERRNO(symlink("x", "excl"), EEXIST);
    TRY(unlink("excl"));
    return 0;
}

static int expect_zeros(int fd, off_t at, size_t len)
{
    unsigned char buf[8192];
    size_t n = len < sizeof buf ? len : sizeof buf;
    ssize_t got = read_all(fd, buf, n, at);
    if (got != (ssize_t)n)
        return fail("read of %zu hole bytes at %lld gave %zd", n, (long long)at, got);
    for (size_t i = 0; i < n; i++)
        if (buf[i])
            return fail("hole byte at %lld reads %#x", (long long)(at + (off_t)i), buf[i]);
    return 0;
}
static int check_holey_files(void)
{
    const off_t at[] = { 0, 10 * MiB, 5 * GiB + 1 };
    int fd = open("holey", O_RDWR | O_CREAT | O_TRUNC, 0644);
    TRY(fd);
    for (int i = 0; i < 3; i++)
        EXPECT(pwrite(fd, "DATA", 4, at[i]) == 4, "pwrite at %lld: %s", (long long)at[i], strerror(errno));
    TRY(fsync(fd));
    TRY(close(fd));
    drop_caches();
    fd = open("holey", O_RDONLY);
    TRY(fd);
    struct stat st;
    TRY(fstat(fd, &st));
    EXPECT(st.st_size == 5 * GiB + 5, "size %lld, expected %lld", (long long)st.st_size, 5 * GiB + 5);
    char buf[4];
    for (int i = 0; i < 3; i++)
        EXPECT(read_all(fd, buf, 4, at[i]) == 4 && !memcmp(buf, "DATA", 4), "data at %lld does not read back", (long long)at[i]);
    if (expect_zeros(fd, 4, 8192) < 0 || expect_zeros(fd, 10 * MiB - 8192, 8192) < 0 ||
        expect_zeros(fd, 10 * MiB + 4, 8192) < 0 || expect_zeros(fd, 3 * GiB, 8192) < 0 ||
        expect_zeros(fd, 5 * GiB + 1 - 8192, 8192) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    /* three 4-byte writes: a server that stores the holes would use 5 GiB */
    EXPECT((long long)st.st_blocks * 512 < 256 * MiB, "st_blocks %lld (%lld MiB) for 12 bytes of data",
           (long long)st.st_blocks, (long long)st.st_blocks * 512 / MiB);
    TRY(unlink("holey"));
    return 0;
}

static int check_large_file_past_4gib(void)
{
    const off_t at = 4 * GiB + 12345;
    int fd = open("large", O_RDWR | O_CREAT | O_TRUNC, 0644);
    TRY(fd);
    EXPECT(pwrite(fd, "MARKER-PAST-4GiB", 16, at) == 16, "pwrite past 4 GiB: %s", strerror(errno));
    TRY(close(fd));
    drop_caches();
    fd = open("large", O_RDONLY);
    TRY(fd);
    struct stat st;
    TRY(fstat(fd, &st));
    char buf[32] = "";
    ssize_t n = read_all(fd, buf, sizeof buf, at);
    off_t end = lseek(fd, 0, SEEK_END);
    close(fd);
    EXPECT(st.st_size == at + 16 && end == at + 16, "size %lld / SEEK_END %lld, expected %lld", (long long)st.st_size, (long long)end, (long long)(at + 16));
    EXPECT(n == 16 && !memcmp(buf, "MARKER-PAST-4GiB", 16), "marker past 4 GiB reads %zd bytes '%.16s'", n, buf);
    /* writes straddling 2 GiB and 4 GiB (cthon bigfile2's boundaries) */
    fd = open("large", O_RDWR);
    TRY(fd);
    const off_t edges[] = { 2 * GiB - 8, 4 * GiB - 8 };
    for (int i = 0; i < 2; i++) {
        EXPECT(pwrite(fd, "ACROSS-THE-EDGE!", 16, edges[i]) == 16, "pwrite across %lld: %s", (long long)edges[i] + 8, strerror(errno));
    }
    close(fd);
    drop_caches();
    fd = open("large", O_RDONLY);
    TRY(fd);
    for (int i = 0; i < 2; i++) {
        memset(buf, 0, sizeof buf);
        if (read_all(fd, buf, 16, edges[i]) != 16 || memcmp(buf, "ACROSS-THE-EDGE!", 16)) {
            close(fd);
            return fail("the write across %lld reads back '%.16s'", (long long)edges[i] + 8, buf);
        }
    }
    close(fd);
    /* and a 32-bit-truncated offset must not have received it */
    fd = open("large", O_RDONLY);
    TRY(fd);
    int rc = expect_zeros(fd, 12345, 16);
    close(fd);
    if (rc < 0)
        return -1;
    TRY(unlink("large"));
    return 0;
}

static int older(struct timespec a, struct timespec b) /* a < b */
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}
static int check_truncate_down_and_up(void)
{
    unsigned char w[20000], r[20000];
    fill(w, sizeof w, 7);
    TRY(write_file("trunc", w, sizeof w, 0644));
    struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    TRY(utimensat(AT_FDCWD, "trunc", old, 0));
    struct stat a, b;
    TRY(stat("trunc", &a));
    TRY(truncate("trunc", 5000));
    drop_caches();
    TRY(stat("trunc", &b));
    EXPECT(b.st_size == 5000, "truncated to 5000: size %lld", (long long)b.st_size);
    EXPECT(older(a.st_mtim, b.st_mtim) && older(a.st_ctim, b.st_ctim) && b.st_mtime > 1000000000,
           "truncate down: mtime %lld -> %lld, ctime %lld -> %lld", (long long)a.st_mtime, (long long)b.st_mtime,
           (long long)a.st_ctime, (long long)b.st_ctime);
    TRY(utimensat(AT_FDCWD, "trunc", old, 0));
    int fd = open("trunc", O_RDWR);
    TRY(fd);
    TRY(ftruncate(fd, 20000));
    TRY(fstat(fd, &b));
    EXPECT(b.st_size == 20000 && b.st_mtime > 1000000000, "truncate up: size %lld mtime %lld", (long long)b.st_size, (long long)b.st_mtime);
    close(fd);
    drop_caches();
    fd = open("trunc", O_RDONLY);
    TRY(fd);
    ssize_t n = read_all(fd, r, sizeof r, 0);
    close(fd);
    EXPECT(n == (ssize_t)sizeof r, "read %zd of %zu", n, sizeof r);
    EXPECT(!memcmp(r, w, 5000), "the first 5000 bytes changed");
    for (size_t i = 5000; i < sizeof r; i++)
        EXPECT(r[i] == 0, "byte %zu past the old end reads %#x after growing again, not 0", i, r[i]);
    /* (A truncate to the size the file has is not checked: POSIX moves the times only "if
     * the file size is changed", and the Linux client sends no SETATTR for it.) */
    /* O_TRUNC empties it */
    fd = open("trunc", O_WRONLY | O_TRUNC);
    TRY(fd);
    close(fd);
    TRY(stat("trunc", &b));
    EXPECT(b.st_size == 0, "after O_TRUNC: size %lld", (long long)b.st_size);
    TRY(unlink("trunc"));
    return 0;
}

static int check_negative_lseek_refused(void)
{
    int fd = open("seek", O_RDWR | O_CREAT | O_TRUNC, 0644);
    TRY(fd);
    EXPECT_ERRNO(lseek(fd, -1, SEEK_SET), EINVAL);
    EXPECT_ERRNO(lseek(fd, -10, SEEK_END), EINVAL);
    EXPECT(lseek(fd, 0, SEEK_CUR) == 0, "the offset moved after refused seeks");
    close(fd);
    TRY(unlink("seek"));
    return 0;
}

static int check_telldir_seekdir(void)
{
    if (make_entries("td", NBIG) < 0)
        return -1;
    drop_caches();
    DIR *d = opendir("td");
    if (!d)
        return fail("opendir: %s", strerror(errno));
    static long pos[NBIG + 3];
    static char *name[NBIG + 3];
    int n = 0;
    for (;;) {
        pos[n] = telldir(d);
        struct dirent *e = readdir(d);
        if (!e)
            break;
        if (n == NBIG + 2) { closedir(d); return fail("more than %d entries", NBIG + 2); }
        name[n++] = strdup(e->d_name);
    }
    int rc = 0;
    if (n != NBIG + 2) { closedir(d); return fail("listed %d entries, expected %d with . and ..", n, NBIG + 2); }
    const int probes[] = { 750, 3, NBIG + 1, 0, 377, 999, 500, 1, 640, 260 };
    for (size_t k = 0; rc == 0 && k < sizeof probes / sizeof *probes; k++) {
        int i = probes[k];
        seekdir(d, pos[i]);
        if (k == 4)
            drop_caches();   /* the client must ask the server from that cookie */
        for (int j = i; rc == 0 && j < i + 3 && j < n; j++) {
            struct dirent *e = readdir(d);
            if (!e || strcmp(e->d_name, name[j]))
                rc = fail("seekdir to entry %d's telldir %ld: entry %d reads '%s', was '%s'", i, pos[i], j, e ? e->d_name : "(end)", name[j]);
        }
    }
    rewinddir(d);
    struct dirent *e = readdir(d);
    if (rc == 0 && (!e || strcmp(e->d_name, name[0])))
        rc = fail("after rewinddir the first entry is '%s', was '%s'", e ? e->d_name : "(end)", name[0]);
    closedir(d);
    free_names(name, n);
    if (rc < 0)
        return -1;
    return rm_rf("td");
}

static int check_utimes_ns_round_trip(void)
{
    TRY(write_file("ut", "x", 1, 0644));
    struct timespec ts[2] = { { 1234567890, 123456789 }, { 1500000000, 987654321 } };
    TRY(utimensat(AT_FDCWD, "ut", ts, 0));
    drop_caches();
    struct stat st;
    TRY(stat("ut", &st));
    EXPECT(st.st_atim.tv_sec == ts[0].tv_sec && st.st_atim.tv_nsec == ts[0].tv_nsec,
           "atime %lld.%09ld, set %lld.%09ld", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec, (long long)ts[0].tv_sec, ts[0].tv_nsec);
    EXPECT(st.st_mtim.tv_sec == ts[1].tv_sec && st.st_mtim.tv_nsec == ts[1].tv_nsec,
           "mtime %lld.%09ld, set %lld.%09ld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)ts[1].tv_sec, ts[1].tv_nsec);
    /* utimes (µs), UTIME_OMIT keeps one, UTIME_NOW sets the server's now */
    struct timeval tv[2] = { { 1111111111, 222222 }, { 1222222222, 333333 } };
    TRY(utimes("ut", tv));
    TRY(stat("ut", &st));
    EXPECT(st.st_mtim.tv_sec == 1222222222 && st.st_mtim.tv_nsec == 333333000, "utimes: mtime %lld.%09ld",
           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec omit[2] = { { 0, UTIME_OMIT }, { 0, UTIME_NOW } };
    TRY(utimensat(AT_FDCWD, "ut", omit, 0));
    drop_caches();
    TRY(stat("ut", &st));
    time_t now = time(NULL);
    EXPECT(st.st_atim.tv_sec == 1111111111 && st.st_atim.tv_nsec == 222222000, "UTIME_OMIT changed atime to %lld.%09ld",
           (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec);
    EXPECT(llabs((long long)st.st_mtime - now) < 3600, "UTIME_NOW gave mtime %lld, now %lld", (long long)st.st_mtime, (long long)now);
    /* times of a directory and (lutimes) a symlink */
    TRY(mkdir("ut.d", 0755));
    TRY(utimensat(AT_FDCWD, "ut.d", ts, 0));
    TRY(stat("ut.d", &st));
    EXPECT(st.st_mtim.tv_sec == ts[1].tv_sec && st.st_mtim.tv_nsec == ts[1].tv_nsec, "directory mtime %lld.%09ld",
           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    TRY(unlink("ut"));
    TRY(rmdir("ut.d"));
    return 0;
}

static int check_mkdir_rmdir_rename_loops(void)
{
    char a[64], b[64];
    for (int i = 0; i < 50; i++) {
        snprintf(a, sizeof a, "loop.d%d", i);
        TRY(mkdir(a, 0755));
        TRY(mkdir("loop.tmp", 0755));
        TRY(rmdir("loop.tmp"));
        TRY(rmdir(a));
    }
    /* nfsidem: create, rename, link, rename, unlink, with the content checked each time */
    for (int i = 0; i < 50; i++) {
        char data[32];
        int len = snprintf(data, sizeof data, "iteration %d", i);
        TRY(write_file("idem.a", data, (size_t)len, 0644));
        snprintf(b, sizeof b, "idem.b%d", i % 3);
        TRY(rename("idem.a", b));
        TRY(link(b, "idem.c"));
        TRY(rename("idem.c", "idem.d"));
        TRY(unlink(b));
        struct stat st;
        TRY(stat("idem.d", &st));
        EXPECT(st.st_nlink == 1 && st.st_size == len, "iteration %d: nlink %lu size %lld", i, (unsigned long)st.st_nlink, (long long)st.st_size);
        int fd = open("idem.d", O_RDONLY);
        TRY(fd);
        char buf[32];
        ssize_t n = read(fd, buf, sizeof buf);
        close(fd);
        EXPECT(n == len && !memcmp(buf, data, (size_t)len), "iteration %d reads back wrong", i);
        TRY(unlink("idem.d"));
    }
    char *names[8];
    int count;
    if (list_dir(".", names, 8, &count) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < count; i++)
        if (!strncmp(names[i], "loop.", 5) || !strncmp(names[i], "idem.", 5))
            rc = fail("'%s' left after the loops", names[i]);
    free_names(names, count);
    return rc;
}

static int check_rename_and_remove_errors(void)
{
    TRY(mkdir("er", 0755));
    TRY(mkdir("er/full", 0755));
    TRY(write_file("er/full/f", "f", 1, 0644));
    TRY(mkdir("er/full/sub", 0755));
    TRY(mkdir("er/empty", 0755));
    TRY(write_file("er/file", "file", 4, 0644));
    int e;
    errno = 0;
    e = rmdir("er/full") < 0 ? errno : 0;
    EXPECT(e == ENOTEMPTY || e == EEXIST, "rmdir of a non-empty dir: %s", e ? strerror(e) : "success");
    EXPECT_ERRNO(rename("er/full", "er/full/sub/into"), EINVAL);
    EXPECT_ERRNO(rename("er/full", "er/full/sub"), EINVAL);
    EXPECT_ERRNO(rename("er/file", "er/empty"), EISDIR);
    EXPECT_ERRNO(rename("er/empty", "er/file"), ENOTDIR);
    e = rename("er/empty", "er/full") < 0 ? errno : 0;
    EXPECT(e == ENOTEMPTY || e == EEXIST, "rename of a dir over a non-empty dir: %s", e ? strerror(e) : "success");
    e = unlink("er/empty") < 0 ? errno : 0;
    EXPECT(e == EISDIR || e == EPERM, "unlink of a dir: %s", e ? strerror(e) : "success");
    e = link("er/empty", "er/dirlink") < 0 ? errno : 0;
    EXPECT(e == EPERM, "link to a dir: %s", e ? strerror(e) : "success");
    EXPECT_ERRNO(rmdir("er/file"), ENOTDIR);
    EXPECT_ERRNO(mkdir("er/file/x", 0755), ENOTDIR);
    EXPECT_ERRNO(open("er/file/x", O_CREAT | O_WRONLY, 0644), ENOTDIR);
    EXPECT_ERRNO(rename("er/no-such", "er/x"), ENOENT);
    EXPECT_ERRNO(rmdir("er/no-such"), ENOENT);
    /* a directory renamed over an empty one replaces it, and keeps its contents */
    TRY(rename("er/full", "er/empty"));
    struct stat st;
    TRY(stat("er/empty/f", &st));
    EXPECT_ERRNO(stat("er/full", &st), ENOENT);
    /* and its ".." follows it: a rename into another directory */
    TRY(mkdir("er/other", 0755));
    TRY(rename("er/empty/sub", "er/other/sub"));
    struct stat up, other;
    TRY(stat("er/other/sub/..", &up));
    TRY(stat("er/other", &other));
    EXPECT(up.st_ino == other.st_ino, "'..' of a moved directory is not its new parent");
    return rm_rf("er");
}

static int check_name_length_limits(void)
{
    char n255[256], n256[257];
    memset(n255, 'L', 255); n255[255] = 0;
    memset(n256, 'L', 256); n256[256] = 0;
    TRY(write_file(n255, "255", 3, 0644));
    struct stat st;
    drop_caches();
    TRY(stat(n255, &st));
    char *names[8];
    int count, found = 0;
    if (list_dir(".", names, 8, &count) < 0)
        return -1;
    for (int i = 0; i < count; i++)
        found += !strcmp(names[i], n255);
    free_names(names, count);
    EXPECT(found == 1, "the 255-byte name is listed %d times", found);
    EXPECT_ERRNO(open(n256, O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
    EXPECT_ERRNO(mkdir(n256, 0755), ENAMETOOLONG);
    EXPECT_ERRNO(rename(n255, n256), ENAMETOOLONG);
    TRY(mkdir("nl.d", 0755));
    char p[300];
    snprintf(p, sizeof p, "nl.d/%s", n255);
    TRY(rename(n255, p));
    TRY(rm_rf("nl.d"));
    return 0;
}

static int check_o_append_appends(void)
{
    TRY(write_file("app", "0123456789", 10, 0644));
    int fd = open("app", O_WRONLY | O_APPEND);
    TRY(fd);
    TRY(lseek(fd, 0, SEEK_SET));
    EXPECT(write(fd, "abc", 3) == 3, "append write: %s", strerror(errno));
    int fd2 = open("app", O_WRONLY | O_APPEND);
    TRY(fd2);
    EXPECT(write(fd2, "XY", 2) == 2, "second appender: %s", strerror(errno));
    EXPECT(write(fd, "de", 2) == 2, "append write: %s", strerror(errno));
    close(fd2);
    close(fd);
    drop_caches();
    char buf[32];
    fd = open("app", O_RDONLY);
    TRY(fd);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    EXPECT(n == 17 && !memcmp(buf, "0123456789abcXYde", 17), "after appends: %zd bytes '%.*s'", n, (int)(n > 0 ? n : 0), buf);
    TRY(unlink("app"));
    return 0;
}

static int check_fsync_and_close_to_open(void)
{
    unsigned char w[100000], r[100000];
    fill(w, sizeof w, 3);
    int fd = open("sync", O_RDWR | O_CREAT | O_TRUNC, 0644);
    TRY(fd);
    EXPECT(write(fd, w, 50000) == 50000, "write: %s", strerror(errno));
    TRY(fsync(fd));
    EXPECT(write(fd, w + 50000, 50000) == 50000, "write: %s", strerror(errno));
    TRY(fdatasync(fd));
    TRY(close(fd));
    fd = open("sync", O_RDONLY);
    TRY(fd);
    ssize_t n = read_all(fd, r, sizeof r, 0);
    close(fd);
    EXPECT(n == (ssize_t)sizeof r && !memcmp(w, r, sizeof r), "reopened after close: %zd bytes, %s", n,
           n == (ssize_t)sizeof r ? "different" : "short");
    /* an mmap'd write, msync'd, is seen by read() */
    fd = open("sync", O_RDWR);
    TRY(fd);
    char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) { close(fd); return fail("mmap: %s", strerror(errno)); }
    memcpy(m + 100, "MMAP", 4);
    TRY(msync(m, 4096, MS_SYNC));
    munmap(m, 4096);
    close(fd);
    drop_caches();
    fd = open("sync", O_RDONLY);
    TRY(fd);
    char buf[4];
    n = pread(fd, buf, 4, 100);
    close(fd);
    EXPECT(n == 4 && !memcmp(buf, "MMAP", 4), "an msync'd mmap write does not read back");
    TRY(unlink("sync"));
    return 0;
}

static int check_chown(void)
{
    TRY(write_file("own", "o", 1, 0644));
    struct stat st;
    TRY(chown("own", getuid(), getgid()));
    TRY(chown("own", OTHER_UID, OTHER_GID));
    drop_caches();
    TRY(stat("own", &st));
    EXPECT(st.st_uid == OTHER_UID && st.st_gid == OTHER_GID, "chown to %d:%d reads back %u:%u", OTHER_UID, OTHER_GID, st.st_uid, st.st_gid);
    TRY(chown("own", (uid_t)-1, 0));
    TRY(stat("own", &st));
    EXPECT(st.st_uid == OTHER_UID && st.st_gid == 0, "chown of the group only: %u:%u", st.st_uid, st.st_gid);
    TRY(lchown("own", getuid(), getgid()));
    TRY(symlink("own", "own.l"));
    TRY(lchown("own.l", OTHER_UID, OTHER_GID));
    TRY(lstat("own.l", &st));
    EXPECT(st.st_uid == OTHER_UID, "lchown of a symlink: owner %u", st.st_uid);
    TRY(stat("own", &st));
    EXPECT(st.st_uid == getuid(), "lchown of the symlink changed its target's owner");
    TRY(unlink("own.l"));
    TRY(unlink("own"));
    return 0;
}

/* ctime moves with chmod, link, rename, write; a directory's mtime with entries made and removed */
static int check_times_move(void)
{
    TRY(mkdir("tm", 0755));
    const char *f[] = { "tm/chmod", "tm/link", "tm/rename", "tm/write" };
    struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    struct stat before[4], after[4], d0, d1;
    for (int i = 0; i < 4; i++) {
        TRY(write_file(f[i], "t", 1, 0644));
        TRY(stat(f[i], &before[i]));
    }
    TRY(utimensat(AT_FDCWD, "tm", old, 0));
    TRY(stat("tm", &d0));
    sleep(1);   /* a server with second granularity still shows a change */
    TRY(chmod(f[0], 0600));
    TRY(link(f[1], "tm/link2"));
    TRY(rename(f[2], "tm/renamed"));
    int fd = open(f[3], O_WRONLY);
    TRY(fd);
    EXPECT(write(fd, "more", 4) == 4, "write: %s", strerror(errno));
    close(fd);
    drop_caches();
    TRY(stat(f[0], &after[0]));
    TRY(stat(f[1], &after[1]));
    TRY(stat("tm/renamed", &after[2]));
    TRY(stat(f[3], &after[3]));
    TRY(stat("tm", &d1));
    const char *what[] = { "chmod", "link", "rename", "write" };
    for (int i = 0; i < 4; i++)
        EXPECT(older(before[i].st_ctim, after[i].st_ctim), "%s did not move ctime (%lld.%09ld)", what[i],
               (long long)after[i].st_ctim.tv_sec, after[i].st_ctim.tv_nsec);
    EXPECT(older(before[3].st_mtim, after[3].st_mtim), "write did not move mtime");
    EXPECT(older(before[0].st_mtim, after[0].st_mtim) == 0, "chmod moved mtime");
    EXPECT(d1.st_mtime > 1000000000 && older(d0.st_ctim, d1.st_ctim), "the directory's mtime %lld / ctime did not move with link and rename",
           (long long)d1.st_mtime);
    TRY(utimensat(AT_FDCWD, "tm", old, 0));
    TRY(stat(f[1], &before[1]));
    sleep(1);
    TRY(unlink("tm/link2"));
    TRY(stat("tm", &d1));
    TRY(stat(f[1], &after[1]));
    EXPECT(d1.st_mtime > 1000000000, "the directory's mtime did not move with an unlink");
    EXPECT(older(before[1].st_ctim, after[1].st_ctim), "unlinking one of its two names did not move the file's ctime");
    /* setting times moves ctime to now */
    TRY(stat(f[0], &before[0]));
    TRY(utimensat(AT_FDCWD, f[0], old, 0));
    TRY(stat(f[0], &after[0]));
    EXPECT(older(before[0].st_ctim, after[0].st_ctim), "utimensat did not move ctime");
    return rm_rf("tm");
}

/* nlink of a directory is 2 + its subdirectories (find relies on it unless it is 1) */
static int check_directory_nlink(void)
{
    TRY(mkdir("nl", 0755));
    TRY(mkdir("nl/a", 0755));
    TRY(mkdir("nl/b", 0755));
    TRY(write_file("nl/f", "f", 1, 0644));
    drop_caches();
    struct stat st;
    TRY(stat("nl", &st));
    EXPECT(st.st_nlink == 4 || st.st_nlink == 1, "a directory with 2 subdirectories: nlink %lu, expected 4 (or 1)", (unsigned long)st.st_nlink);
    TRY(rmdir("nl/a"));
    drop_caches();
    TRY(stat("nl", &st));
    EXPECT(st.st_nlink == 3 || st.st_nlink == 1, "after an rmdir: nlink %lu, expected 3 (or 1)", (unsigned long)st.st_nlink);
    return rm_rf("nl");
}

static int check_special_files(void)
{
    struct stat st;
    TRY(mkfifo("fifo", 0644));
    drop_caches();
    TRY(lstat("fifo", &st));
    EXPECT(S_ISFIFO(st.st_mode) && (st.st_mode & 0777) == 0644, "mkfifo made mode %o", st.st_mode);
    TRY(unlink("fifo"));
    TRY(mknod("chr", S_IFCHR | 0600, makedev(1, 3)));
    TRY(lstat("chr", &st));
    EXPECT(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3), "mknod c 1 3 made mode %o rdev %u:%u", st.st_mode,
           major(st.st_rdev), minor(st.st_rdev));
    TRY(unlink("chr"));
    return 0;
}

/* setgid directories: new entries take the directory's group, subdirectories the bit too */
static int check_setgid_directory_inheritance(void)
{
    TRY(mkdir("sg", 0755));
    TRY(chown("sg", 0, OTHER_GID));
    TRY(chmod("sg", 02775));
    TRY(write_file("sg/f", "f", 1, 0644));
    TRY(mkdir("sg/d", 0755));
    struct stat f, d;
    TRY(stat("sg/f", &f));
    TRY(stat("sg/d", &d));
    EXPECT(f.st_gid == OTHER_GID, "a file made in a setgid directory of group %d has group %u", OTHER_GID, f.st_gid);
    EXPECT(d.st_gid == OTHER_GID && (d.st_mode & S_ISGID), "a directory made in a setgid directory: group %u mode %o", d.st_gid, d.st_mode & 07777);
    return rm_rf("sg");
}

/* entries made while a listing runs: the names there from the start come exactly once */
static int check_readdir_while_creating(void)
{
    static char seen[NBIG];
    if (make_entries("rdc", NBIG / 2) < 0)
        return -1;
    drop_caches();
    DIR *d = opendir("rdc");
    if (!d)
        return fail("opendir: %s", strerror(errno));
    struct dirent *e;
    char p[PATH_MAX], nm[NAME_MAX + 1];
    int made = NBIG / 2, rc = 0;
    memset(seen, 0, sizeof seen);
    errno = 0;
    while (rc == 0 && (e = readdir(d))) {
        int i;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (sscanf(e->d_name, "entry-%d-", &i) != 1 || i < 0 || i >= NBIG)
            rc = fail("unexpected name '%s'", e->d_name);
        else if (seen[i])
            rc = fail("'%s' returned twice while entries were being created", e->d_name);
        else
            seen[i] = 1;
        if (rc == 0 && made < NBIG) {
            dir_name(nm, sizeof nm, made++);
            snprintf(p, sizeof p, "rdc/%s", nm);
            int fd = open(p, O_CREAT | O_WRONLY, 0644);
            if (fd < 0)
                rc = fail("create %s: %s", p, strerror(errno));
            else
                close(fd);
        }
        errno = 0;
    }
    closedir(d);
    if (rc < 0)
        return -1;
    for (int i = 0; i < NBIG / 2; i++) {
        dir_name(nm, sizeof nm, i);
        EXPECT(seen[i], "'%s', there before the listing, was not listed while others were created", nm);
    }
    static char want[NBIG];
    memset(want, 1, sizeof want);
    for (int i = made; i < NBIG; i++)
        want[i] = 0;
    if (expect_listing("rdc", want, NBIG) < 0)
        return -1;
    return rm_rf("rdc");
}

/* ".", ".." and d_type as the listing gives them */
static int check_readdir_dot_entries_and_types(void)
{
    TRY(mkdir("dt", 0755));
    TRY(mkdir("dt/sub", 0755));
    TRY(write_file("dt/file", "f", 1, 0644));
    TRY(symlink("file", "dt/link"));
    TRY(mkfifo("dt/fifo", 0644));
    drop_caches();
    struct stat self, parent, st;
    TRY(stat("dt", &self));
    TRY(stat(".", &parent));
    DIR *d = opendir("dt");
    if (!d)
        return fail("opendir: %s", strerror(errno));
    struct dirent *e;
    int n = 0, rc = 0;
    char p[PATH_MAX];
    while (rc == 0 && (e = readdir(d))) {
        n++;
        if (!strcmp(e->d_name, ".")) {
            if (e->d_ino != self.st_ino)
                rc = fail("'.' has d_ino %llu, the directory is %llu", (unsigned long long)e->d_ino, (unsigned long long)self.st_ino);
            continue;
        }
        if (!strcmp(e->d_name, "..")) {
            if (e->d_ino != parent.st_ino)
                rc = fail("'..' has d_ino %llu, the parent is %llu", (unsigned long long)e->d_ino, (unsigned long long)parent.st_ino);
            continue;
        }
        snprintf(p, sizeof p, "dt/%s", e->d_name);
        if (lstat(p, &st) < 0) { rc = fail("lstat %s: %s", p, strerror(errno)); break; }
        if (e->d_ino != st.st_ino)
            rc = fail("%s: d_ino %llu, lstat %llu", p, (unsigned long long)e->d_ino, (unsigned long long)st.st_ino);
        else if (e->d_type != DT_UNKNOWN && (unsigned)e->d_type != ((st.st_mode & S_IFMT) >> 12))
            rc = fail("%s: d_type %d, lstat mode %o", p, e->d_type, st.st_mode);
    }
    closedir(d);
    if (rc < 0)
        return -1;
    EXPECT(n == 6, "listed %d entries, expected 6 with . and ..", n);
    TRY(mkdir("dt/empty", 0755));
    char *names[4];
    int count;
    if (list_dir("dt/empty", names, 4, &count) < 0)
        return -1;
    free_names(names, count);
    EXPECT(count == 0, "an empty directory lists %d names besides . and ..", count);
    return rm_rf("dt");
}

/* names with any bytes but '/' and NUL (POSIX): listed, opened, renamed, removed */
static int check_odd_names(void)
{
    static const char *odd[] = { "new\nline", "tab\there", "back\\slash", "\xff\xfe not utf-8", "-", " lead",
                                 "trail ", "...", ".hidden", "a:b*c?d\"e<f>g|h", "caf\xc3\xa9", "#%&'()+,;=@[]^`{}~" };
    const int n = (int)(sizeof odd / sizeof *odd);
    TRY(mkdir("odd", 0755));
    char p[PATH_MAX], q[PATH_MAX];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "odd/%s", odd[i]);
        if (write_file(p, odd[i], strlen(odd[i]), 0644) < 0)
            return -1;
    }
    drop_caches();
    char *names[32];
    int count;
    if (list_dir("odd", names, 32, &count) < 0)
        return -1;
    int found = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < count; j++)
            found += !strcmp(odd[i], names[j]);
    free_names(names, count);
    EXPECT(found == n && count == n, "%d names made, %d listed, %d of them right", n, count, found);
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "odd/%s", odd[i]);
        char buf[64];
        int fd = open(p, O_RDONLY);
        EXPECT(fd >= 0, "open of name %d: %s", i, strerror(errno));
        ssize_t got = read(fd, buf, sizeof buf);
        close(fd);
        EXPECT(got == (ssize_t)strlen(odd[i]) && !memcmp(buf, odd[i], (size_t)got), "name %d reads back wrong", i);
        snprintf(q, sizeof q, "odd/%s.renamed", odd[i]);
        TRY(rename(p, q));
        TRY(unlink(q));
    }
    /* "." and ".." are never new names */
    EXPECT_ERRNO(mkdir("odd/.", 0755), EEXIST);
    EXPECT_ERRNO(mkdir("odd/..", 0755), EEXIST);
    TRY(rmdir("odd"));
    return 0;
}

/* a file renamed (and moved) while open for writing takes the later writes along */
static int check_write_while_renamed(void)
{
    TRY(mkdir("wr", 0755));
    TRY(mkdir("wr/other", 0755));
    int fd = open("wr/a", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    TRY(fd);
    EXPECT(write(fd, "first;", 6) == 6, "write: %s", strerror(errno));
    TRY(rename("wr/a", "wr/b"));
    EXPECT(write(fd, "second;", 7) == 7, "write after rename: %s", strerror(errno));
    TRY(rename("wr/b", "wr/other/c"));
    EXPECT(write(fd, "third", 5) == 5, "write after the move: %s", strerror(errno));
    TRY(close(fd));
    drop_caches();
    char buf[64];
    fd = open("wr/other/c", O_RDONLY);
    TRY(fd);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    EXPECT(n == 18 && !memcmp(buf, "first;second;third", 18), "after renames while open: %zd bytes '%.*s'", n, (int)(n > 0 ? n : 0), buf);
    return rm_rf("wr");
}

/* unlink an open file and make a new one of that name: each fd keeps its own file */
static int check_unlink_and_recreate_while_open(void)
{
    TRY(mkdir("ur", 0755));
    TRY(write_file("ur/f", "old file", 8, 0644));
    int fd = open("ur/f", O_RDWR);
    TRY(fd);
    TRY(unlink("ur/f"));
    TRY(write_file("ur/f", "new", 3, 0644));
    drop_caches();
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    EXPECT(n == 8 && !memcmp(buf, "old file", 8), "the open unlinked file reads %zd bytes '%.*s'", n, (int)(n > 0 ? n : 0), buf);
    EXPECT(pwrite(fd, "OLD", 3, 0) == 3, "write to the open unlinked file: %s", strerror(errno));
    TRY(fsync(fd));
    int fd2 = open("ur/f", O_RDONLY);
    TRY(fd2);
    n = read(fd2, buf, sizeof buf);
    close(fd2);
    EXPECT(n == 3 && !memcmp(buf, "new", 3), "the new file reads %zd bytes '%.*s'", n, (int)(n > 0 ? n : 0), buf);
    TRY(close(fd));
    if (no_silly_names("ur") < 0)
        return -1;
    return rm_rf("ur");
}

/* several processes write their own parts of one file at once */
static int check_parallel_writers_one_file(void)
{
    enum { WRITERS = 4, PART = 256 * 1024 };
    int fd = open("par", O_RDWR | O_CREAT | O_TRUNC, 0644);
    TRY(fd);
    close(fd);
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        TRY(pids[w]);
        if (pids[w] == 0) {
            static unsigned char buf[PART];
            fill(buf, sizeof buf, 100 + (unsigned)w);
            int f = open("par", O_WRONLY);
            if (f < 0)
                _exit(1);
            /* interleaved 8 KiB pieces: writer w's parts are every WRITERS-th piece */
            for (int k = 0; k < PART / 8192; k++)
                if (pwrite(f, buf + k * 8192, 8192, ((off_t)k * WRITERS + w) * 8192) != 8192)
                    _exit(2);
            _exit(fsync(f) < 0 || close(f) < 0 ? 3 : 0);
        }
    }
    int bad = 0;
    for (int w = 0; w < WRITERS; w++) {
        int st;
        waitpid(pids[w], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st))
            bad = w + 1;
    }
    EXPECT(!bad, "writer %d failed", bad - 1);
    drop_caches();
    static unsigned char exp[PART], got[8192];
    fd = open("par", O_RDONLY);
    TRY(fd);
    for (int w = 0; w < WRITERS; w++) {
        fill(exp, sizeof exp, 100 + (unsigned)w);
        for (int k = 0; k < PART / 8192; k++) {
            off_t at = ((off_t)k * WRITERS + w) * 8192;
            if (read_all(fd, got, 8192, at) != 8192 || memcmp(got, exp + k * 8192, 8192)) {
                close(fd);
                return fail("writer %d's piece at %lld reads back wrong", w, (long long)at);
            }
        }
    }
    close(fd);
    TRY(unlink("par"));
    return 0;
}

/* O_DIRECT goes to the server as it is: odd offsets and lengths */
static int check_o_direct_unaligned(void)
{
    int fd = open("direct", O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    TRY(fd);
    char w[3001], r[3001];
    fill((unsigned char *)w, sizeof w, 11);
    EXPECT(pwrite(fd, w, 1000, 777) == 1000, "O_DIRECT pwrite of 1000 at 777: %s", strerror(errno));
    EXPECT(pwrite(fd, w + 1000, 2001, 1777) == 2001, "O_DIRECT pwrite of 2001 at 1777: %s", strerror(errno));
    ssize_t n = pread(fd, r, sizeof r, 777);
    EXPECT(n == 3001 && !memcmp(w, r, 3001), "O_DIRECT read back: %zd bytes%s", n, n == 3001 ? ", different" : "");
    n = pread(fd, r, 777, 0);
    close(fd);
    EXPECT(n == 777, "O_DIRECT read of the leading hole: %zd", n);
    for (int i = 0; i < 777; i++)
        EXPECT(r[i] == 0, "the leading hole reads %#x at %d", (unsigned char)r[i], i);
    TRY(unlink("direct"));
    return 0;
}

/* a file with data has blocks: du, and tar --sparse (which archives a file with st_blocks 0
 * as all holes without reading it), depend on it */
static int check_st_blocks_of_written_data(void)
{
    static unsigned char buf[MiB];
    fill(buf, sizeof buf, 5);
    TRY(write_file("blocks", buf, sizeof buf, 0644));
    TRY(write_file("blocks.small", "x", 1, 0644));
    drop_caches();
    struct stat st, sm;
    TRY(stat("blocks", &st));
    TRY(stat("blocks.small", &sm));
    EXPECT((long long)st.st_blocks * 512 >= MiB && (long long)st.st_blocks * 512 <= 2 * MiB,
           "a 1 MiB file has st_blocks %lld (%lld bytes)", (long long)st.st_blocks, (long long)st.st_blocks * 512);
    EXPECT(sm.st_blocks > 0, "a 1-byte file has st_blocks 0: tar --sparse would archive it as a hole");
    TRY(unlink("blocks"));
    TRY(unlink("blocks.small"));
    return 0;
}

static int check_many_hard_links(void)
{
    TRY(mkdir("hl", 0755));
    TRY(write_file("hl/f", "linked", 6, 0644));
    char p[64];
    for (int i = 0; i < 100; i++) {
        snprintf(p, sizeof p, "hl/l%d", i);
        TRY(link("hl/f", p));
    }
    drop_caches();
    struct stat st;
    TRY(stat("hl/l57", &st));
    EXPECT(st.st_nlink == 101, "101 names: nlink %lu", (unsigned long)st.st_nlink);
    TRY(unlink("hl/f"));
    for (int i = 0; i < 99; i++) {
        snprintf(p, sizeof p, "hl/l%d", i);
        TRY(unlink(p));
    }
    drop_caches();
    TRY(stat("hl/l99", &st));
    EXPECT(st.st_nlink == 1 && st.st_size == 6, "the last name: nlink %lu size %lld", (unsigned long)st.st_nlink, (long long)st.st_size);
    return rm_rf("hl");
}

static int check_symlink_length_limits(void)
{
    static char t[4097];
    memset(t, 'p', 4095);
    t[4095] = 0;
    TRY(symlink(t, "long.l"));
    drop_caches();
    static char buf[5000];
    ssize_t n = readlink("long.l", buf, sizeof buf);
    EXPECT(n == 4095 && !memcmp(buf, t, 4095), "a 4095-byte target reads back %zd bytes", n);
    TRY(unlink("long.l"));
    t[4095] = 'p';
    t[4096] = 0;
    EXPECT_ERRNO(symlink(t, "long.l"), ENAMETOOLONG);
    /* times of the link itself, not its target */
    TRY(write_file("tgt", "t", 1, 0644));
    TRY(symlink("tgt", "tl"));
    struct timespec ts[2] = { { 1300000000, 5 }, { 1300000001, 7 } };
    TRY(utimensat(AT_FDCWD, "tl", ts, AT_SYMLINK_NOFOLLOW));
    struct stat l, f;
    TRY(lstat("tl", &l));
    TRY(stat("tgt", &f));
    EXPECT(l.st_mtim.tv_sec == 1300000001 && l.st_mtim.tv_nsec == 7, "lutimes: the link's mtime %lld.%09ld", (long long)l.st_mtim.tv_sec, l.st_mtim.tv_nsec);
    EXPECT(f.st_mtime != 1300000001, "lutimes changed the target's mtime");
    TRY(unlink("tl"));
    TRY(unlink("tgt"));
    return 0;
}

/* as another user: chmod of root's file, explicit times, truncate without write, sticky dirs */
static int other_user_limits(void)
{
    EXPECT_ERRNO(chmod("ou.d/rootfile", 0666), EPERM);
    EXPECT_ERRNO(chown("ou.d/rootfile", OTHER_UID, OTHER_GID), EPERM);
    struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };
    EXPECT_ERRNO(utimensat(AT_FDCWD, "ou.d/writable", ts, 0), EPERM);
    EXPECT(utimensat(AT_FDCWD, "ou.d/writable", NULL, 0) == 0, "touch (times = now) of a file the user may write: %s", strerror(errno));
    EXPECT_ERRNO(truncate("ou.d/rootfile", 0), EACCES);
    /* search and read permission of directories, primary and supplementary groups */
    struct stat st;
    EXPECT_ERRNO(stat("ou.d/private/f", &st), EACCES);
    EXPECT_ERRNO(opendir("ou.d/noread") ? 0 : -1, EACCES);
    EXPECT(stat("ou.d/noread/f", &st) == 0, "stat in a 0711 directory: %s", strerror(errno));
    char buf[8];
    int fd = open("ou.d/group-rw", O_RDWR);
    EXPECT(fd >= 0, "open O_RDWR of a 0660 file of the user's group: %s", strerror(errno));
    EXPECT(write(fd, "g", 1) == 1, "write through the group's permission: %s", strerror(errno));
    close(fd);
    fd = open("ou.d/aux-group", O_RDONLY);
    EXPECT(fd >= 0, "open of a 0640 file of a supplementary group: %s", strerror(errno));
    EXPECT(read(fd, buf, sizeof buf) == 1, "read through a supplementary group: %s", strerror(errno));
    close(fd);
    EXPECT_ERRNO(open("ou.d/not-my-group", O_RDONLY), EACCES);
    /* sticky, world-writable: own files go, others' stay */
    TRY(write_file("ou.d/sticky/mine", "m", 1, 0644));
    EXPECT_ERRNO(unlink("ou.d/sticky/roots"), EPERM);
    EXPECT_ERRNO(rename("ou.d/sticky/roots", "ou.d/sticky/taken"), EPERM);
    EXPECT_ERRNO(rename("ou.d/sticky/mine", "ou.d/sticky/roots"), EPERM);
    TRY(rename("ou.d/sticky/mine", "ou.d/sticky/mine2"));
    TRY(unlink("ou.d/sticky/mine2"));
    /* the owner's own new files */
    TRY(mkdir("ou.d/sticky/own", 0755));
    TRY(write_file("ou.d/sticky/own/f", "f", 1, 0640));
    TRY(stat("ou.d/sticky/own/f", &st));
    EXPECT(st.st_uid == OTHER_UID && st.st_gid == OTHER_GID, "a file made by %d:%d is owned by %u:%u", OTHER_UID, OTHER_GID, st.st_uid, st.st_gid);
    TRY(chmod("ou.d/sticky/own/f", 0600));
    TRY(unlink("ou.d/sticky/own/f"));
    TRY(rmdir("ou.d/sticky/own"));
    return 0;
}
static int check_other_user_limits(void)
{
    TRY(mkdir("ou.d", 0755));
    TRY(write_file("ou.d/rootfile", "r", 1, 0644));
    TRY(write_file("ou.d/writable", "w", 1, 0666));
    TRY(chmod("ou.d/writable", 0666));
    TRY(mkdir("ou.d/sticky", 0777));
    TRY(chmod("ou.d/sticky", 01777));
    TRY(write_file("ou.d/sticky/roots", "r", 1, 0644));
    TRY(mkdir("ou.d/private", 0700));
    TRY(write_file("ou.d/private/f", "p", 1, 0644));
    TRY(mkdir("ou.d/noread", 0711));
    TRY(write_file("ou.d/noread/f", "n", 1, 0644));
    TRY(write_file("ou.d/group-rw", "g", 1, 0660));
    TRY(chown("ou.d/group-rw", 0, OTHER_GID));
    TRY(chmod("ou.d/group-rw", 0660));
    TRY(write_file("ou.d/aux-group", "a", 1, 0640));
    TRY(chown("ou.d/aux-group", 0, OTHER_AUX_GID));
    TRY(write_file("ou.d/not-my-group", "n", 1, 0640));
    TRY(chown("ou.d/not-my-group", 0, 3000));
    if (as_other_user(other_user_limits) < 0)
        return -1;
    struct stat st;
    TRY(stat("ou.d/sticky/roots", &st));
    return rm_rf("ou.d");
}

/* a directory renamed into another: the parents' nlink follow, its files come along */
static int check_directory_rename_moves_its_tree(void)
{
    TRY(mkdir("mv", 0755));
    TRY(mkdir("mv/a", 0755));
    TRY(mkdir("mv/b", 0755));
    TRY(mkdir("mv/a/d", 0755));
    TRY(write_file("mv/a/d/f", "inside", 6, 0644));
    struct stat a0, b0, a1, b1, f;
    TRY(stat("mv/a", &a0));
    TRY(stat("mv/b", &b0));
    TRY(rename("mv/a/d", "mv/b/d2"));
    drop_caches();
    TRY(stat("mv/a", &a1));
    TRY(stat("mv/b", &b1));
    TRY(stat("mv/b/d2/f", &f));
    EXPECT(f.st_size == 6, "the moved directory's file: size %lld", (long long)f.st_size);
    EXPECT_ERRNO(stat("mv/a/d", &f), ENOENT);
    if (a0.st_nlink != 1)
        EXPECT(a1.st_nlink == a0.st_nlink - 1 && b1.st_nlink == b0.st_nlink + 1,
               "nlink of the old parent %lu -> %lu, of the new %lu -> %lu", (unsigned long)a0.st_nlink,
               (unsigned long)a1.st_nlink, (unsigned long)b0.st_nlink, (unsigned long)b1.st_nlink);
    /* renaming onto itself changes nothing */
    TRY(rename("mv/b/d2/f", "mv/b/d2/f"));
    TRY(stat("mv/b/d2/f", &f));
    return rm_rf("mv");
}

/* Through a second mount of the same directory (own caches: nosharecache), what one
 * client wrote and closed is what the other reads after its open (close-to-open), and a
 * name removed through one is gone through the other, never another file's handle. */
static const char *other;   /* POSIXCHECK_OTHER: this directory through the second mount */
static int read_via(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return (int)n;
}
static int check_close_to_open_across_mounts(void)
{
    if (!other)
        return fail("POSIXCHECK_OTHER not set: no second mount to check against");
    char p[PATH_MAX], buf[64];
    snprintf(p, sizeof p, "%s/cto", other);
    TRY(write_file("cto", "aaaa", 4, 0644));
    EXPECT(read_via(p, buf, sizeof buf) == 4 && !strcmp(buf, "aaaa"), "the other mount reads '%s' after the first write", buf);
    /* same size, within the same second: only a fine mtime (or change attribute) shows it */
    TRY(write_file("cto", "bbbb", 4, 0644));
    EXPECT(read_via(p, buf, sizeof buf) == 4 && !strcmp(buf, "bbbb"), "the other mount reads '%s' after a same-size rewrite, not 'bbbb'", buf);
    int fd = open("cto", O_WRONLY);
    TRY(fd);
    EXPECT(pwrite(fd, "C", 1, 2) == 1, "pwrite: %s", strerror(errno));
    TRY(close(fd));
    EXPECT(read_via(p, buf, sizeof buf) == 4 && !strcmp(buf, "bbCb"), "the other mount reads '%s' after a 1-byte overwrite, not 'bbCb'", buf);
    TRY(truncate("cto", 2));
    EXPECT(read_via(p, buf, sizeof buf) == 2 && !strcmp(buf, "bb"), "the other mount reads '%s' after a truncate, not 'bb'", buf);
    /* remove through this mount while the other has the name cached; make a new file, which
     * may get the old inode number: the other must not open it by the old handle */
    snprintf(p, sizeof p, "%s/gone", other);
    TRY(write_file("gone", "gone", 4, 0644));
    EXPECT(read_via(p, buf, sizeof buf) == 4, "the other mount cannot read 'gone': %s", strerror(errno));
    TRY(unlink("gone"));
    for (int i = 0; i < 20; i++) {
        snprintf(buf, sizeof buf, "new.%d", i);
        TRY(write_file(buf, "NEWFILE", 7, 0644));
    }
    errno = 0;
    int n = read_via(p, buf, sizeof buf);
    EXPECT(n < 0 && errno == ENOENT, "the other mount opens the removed name: %s", n >= 0 ? buf : strerror(errno));
    for (int i = 0; i < 20; i++) {
        snprintf(buf, sizeof buf, "new.%d", i);
        TRY(unlink(buf));
    }
    TRY(unlink("cto"));
    return 0;
}

/* setuid and setgid bits are cleared where Linux clears them: chown of a regular file (even by
 * root: the client leaves this to the server), chmod by an owner outside the file's group
 * (setgid), a write by someone else than the owner */
static int sgid_chmod_as_other(void)
{
    TRY(chmod("pb.d/mine-root-group", 02755));
    struct stat st;
    TRY(stat("pb.d/mine-root-group", &st));
    EXPECT((st.st_mode & 07777) == 0755, "chmod 02755 by an owner outside the file's group gives %04o, expected 0755", st.st_mode & 07777);
    int fd = open("pb.d/suid-writable", O_WRONLY);
    TRY(fd);
    EXPECT(write(fd, "w", 1) == 1, "write: %s", strerror(errno));
    TRY(close(fd));
    drop_caches();
    TRY(stat("pb.d/suid-writable", &st));
    EXPECT((st.st_mode & 07777) == 0777, "a write by another user leaves mode %04o on a 06777 file, expected 0777", st.st_mode & 07777);
    return 0;
}
static int check_privilege_bits_cleared(void)
{
    TRY(mkdir("pb.d", 0755));
    TRY(write_file("pb.d/suid", "s", 1, 0644));
    TRY(chmod("pb.d/suid", 06755));
    TRY(chown("pb.d/suid", OTHER_UID, OTHER_GID));
    drop_caches();
    struct stat st;
    TRY(stat("pb.d/suid", &st));
    EXPECT((st.st_mode & 07777) == 0755, "chown of a 06755 file leaves %04o, expected 0755", st.st_mode & 07777);
    /* setgid without group execute is a mandatory-locking mark: chown keeps it */
    TRY(chmod("pb.d/suid", 02644));
    TRY(chown("pb.d/suid", 0, 0));
    TRY(stat("pb.d/suid", &st));
    EXPECT((st.st_mode & 07777) == 02644, "chown of a 02644 file leaves %04o, expected 02644", st.st_mode & 07777);
    /* directories keep theirs */
    TRY(mkdir("pb.d/dir", 0755));
    TRY(chmod("pb.d/dir", 02755));
    TRY(chown("pb.d/dir", OTHER_UID, OTHER_GID));
    TRY(stat("pb.d/dir", &st));
    EXPECT((st.st_mode & 07777) == 02755, "chown of a 02755 directory leaves %04o", st.st_mode & 07777);
    TRY(write_file("pb.d/mine-root-group", "m", 1, 0755));
    TRY(chown("pb.d/mine-root-group", OTHER_UID, 0));
    TRY(write_file("pb.d/suid-writable", "w", 1, 0644));
    TRY(chmod("pb.d/suid-writable", 06777));
    if (as_other_user(sgid_chmod_as_other) < 0)
        return -1;
    return rm_rf("pb.d");
}

/* a program on the export runs (cthon general builds and runs programs there): its pages
 * come in through mmap of an NFS file */
static int check_exec_from_export(void)
{
    int in = open("/proc/self/exe", O_RDONLY);
    TRY(in);
    int out = open("prog", O_WRONLY | O_CREAT | O_TRUNC, 0700);
    if (out < 0) { close(in); return fail("create prog: %s", strerror(errno)); }
    static char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) { close(in); close(out); return fail("copy: %s", strerror(errno)); }
    close(in);
    TRY(close(out));
    TRY(chmod("prog", 0755));
    drop_caches();
    pid_t pid = fork();
    TRY(pid);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) { dup2(devnull, 1); dup2(devnull, 2); }
        execl("./prog", "prog", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    /* without arguments posixcheck prints its usage and exits 2 */
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 2, "running a program from the export: %s %d",
           WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    TRY(unlink("prog"));
    return 0;
}

struct check { const char *name; int (*fn)(void); };
static const struct check checks[] = {
    { "tree-create-stat-remove", check_tree_create_stat_remove },
    { "chmod-stat-round-trip", check_chmod_stat_round_trip },
    { "lookup-getattr", check_lookup_getattr },
    { "write-read-1mib", check_write_read_1mib },
    { "readdir-200-files", check_readdir_200_files },
    { "readdir-while-unlinking", check_readdir_while_unlinking },
    { "link-and-rename", check_link_and_rename },
    { "symlink-readlink", check_symlink_readlink },
    { "statfs-sane", check_statfs_sane },
    { "open-unlink-read-write", check_open_unlink_read_write },
    { "rename-over-open-file", check_rename_over_open_file },
    { "chmod-000-open-file-write", check_chmod_000_open_file_write },
    { "permissions-for-another-user", check_permissions_for_another_user },
    { "exclusive-create", check_exclusive_create },
    { "holey-files", check_holey_files },
    { "large-file-past-4gib", check_large_file_past_4gib },
    { "truncate-down-and-up", check_truncate_down_and_up },
    { "negative-lseek-refused", check_negative_lseek_refused },
    { "telldir-seekdir", check_telldir_seekdir },
    { "utimes-ns-round-trip", check_utimes_ns_round_trip },
    { "mkdir-rmdir-rename-loops", check_mkdir_rmdir_rename_loops },
    { "rename-and-remove-errors", check_rename_and_remove_errors },
    { "name-length-limits", check_name_length_limits },
    { "o-append-appends", check_o_append_appends },
    { "fsync-and-close-to-open", check_fsync_and_close_to_open },
    { "chown", check_chown },
    { "times-move", check_times_move },
    { "directory-nlink", check_directory_nlink },
    { "special-files", check_special_files },
    { "setgid-directory-inheritance", check_setgid_directory_inheritance },
    { "readdir-while-creating", check_readdir_while_creating },
    { "readdir-dot-entries-and-types", check_readdir_dot_entries_and_types },
    { "odd-names", check_odd_names },
    { "write-while-renamed", check_write_while_renamed },
    { "unlink-and-recreate-while-open", check_unlink_and_recreate_while_open },
    { "parallel-writers-one-file", check_parallel_writers_one_file },
    { "o-direct-unaligned", check_o_direct_unaligned },
    { "st-blocks-of-written-data", check_st_blocks_of_written_data },
    { "many-hard-links", check_many_hard_links },
    { "symlink-length-limits", check_symlink_length_limits },
    { "other-user-limits", check_other_user_limits },
    { "directory-rename-moves-its-tree", check_directory_rename_moves_its_tree },
    { "close-to-open-across-mounts", check_close_to_open_across_mounts },
    { "privilege-bits-cleared", check_privilege_bits_cleared },
    { "exec-from-export", check_exec_from_export },
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: [POSIXCHECK_OTHER=DIR2] posixcheck DIR [CHECK-NAME...]\n  DIR must not exist yet; it is made, used and removed; DIR2 is DIR through a second mount\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    other = getenv("POSIXCHECK_OTHER");
    umask(022);
    if (mkdir(argv[1], 0755) < 0 || chdir(argv[1]) < 0) {
        printf("FAIL setup: mkdir/chdir %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        bool wanted = argc == 2;
        for (int a = 2; a < argc; a++)
            wanted |= !strcmp(argv[a], checks[i].name);
        if (!wanted)
            continue;
        why[0] = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = checks[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (rc == 0) {
            printf("PASS %s (%.1fs)\n", checks[i].name, dt);
            passed++;
        } else {
            printf("FAIL %s: %s\n", checks[i].name, why);
            failed++;
        }
    }
    /* each check cleans up after itself; what is left says which did not */
    if (chdir("..") == 0 && rm_rf(argv[1]) < 0) {
        printf("FAIL cleanup: %s\n", why);
        failed++;
    }
    printf("posixcheck: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
