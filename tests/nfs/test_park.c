/* test_park.c: no worker thread waits for the network.  tarnfsd serves a
 * real NAS directory whose "cold" tarballs stall (the fetch fault hook,
 * TARNFS_FAULT=stall:...): 64 LOOKUPs of cold runs park (no thread each),
 * so do READs of an index-first run's absent file, cached data keeps
 * answering promptly, a call parked past park_timeout
 * gets NFS3ERR_JUKEBOX, a stalled transfer is abandoned with EIO and
 * retried by the next access, and SIGTERM exits promptly. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

enum { CALL = 0, REPLY = 1 };
#define NFS_PROG 100003u
#define MOUNT_PROG 100005u
#define NFS3ERR_IO      5
#define NFS3ERR_JUKEBOX 10008
#define NCOLD 64

static struct test_server srv;
static char nas[256], cache[256];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* A NAS directory with warm.tar and cold00..cold63.tar, each one run
 * holding f.txt ("hello from RUN"), and an empty cache: made once. */
static void fixtures(void)
{
    if (nas[0])
        return;
    const char *tmp = test_env("NFS_TEST_TMP");
    snprintf(nas, sizeof nas, "%s/park-nas", tmp);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "set -e; rm -rf '%s' '%s.src'; mkdir -p '%s' '%s.src'; cd '%s.src'; "
             "for r in warm lazy $(seq -f 'cold%%02g' 0 %d); do mkdir $r; "
             "echo \"hello from $r\" > $r/f.txt; tar -cf '%s'/$r.tar $r; done",
             nas, nas, nas, nas, nas, NCOLD - 1, nas);
    ck_assert_int_eq(system(cmd), 0);
    /* lazy.tar gets an index sidecar: an index-first run, whose file data
     * is fetched by range on READ. */
    char tarnfsd[256];
    snprintf(tarnfsd, sizeof tarnfsd, "%s", test_env("TARNFSD"));
    char *slash = strrchr(tarnfsd, '/');
    ck_assert_ptr_nonnull(slash);
    *slash = 0;
    snprintf(cmd, sizeof cmd, "'%s/tests/lazy/mkindex' '%s' lazy.tar >/dev/null", tarnfsd, nas);
    ck_assert_int_eq(system(cmd), 0);
}

/* Start tarnfsd on the NAS directory with a fresh cache, the fault spec
 * in TARNFS_FAULT and the extra config lines. */
static void start_with(const char *fault, const char *extra_conf)
{
    fixtures();
    static int n;
    snprintf(cache, sizeof cache, "%s/park-cache-%d-%d", test_env("NFS_TEST_TMP"), (int)getpid(), n++);
    ck_assert_int_eq(mkdir(cache, 0755), 0);
    char conf[1024];
    /* prefetch_whole_below = 0: the test run is small, and index-first is
     * what is under test. */
    snprintf(conf, sizeof conf, "source = %s\nexport / *(ro,insecure)\n"
             "prefetch_whole_below = 0\n%s", nas, extra_conf);
    setenv("TARNFS_FAULT", fault, 1);
    memset(&srv, 0, sizeof srv);
    ck_assert_int_eq(server_start(&srv, cache, conf, NULL), 0);
    unsetenv("TARNFS_FAULT");
}

/* ---- raw RPC ---- */

struct call {
    uint32_t w[128];
    int n;
};

static void put(struct call *c, uint32_t v) { c->w[c->n++] = htonl(v); }

static void put_bytes(struct call *c, const void *p, uint32_t len)
{
    put(c, len);
    uint32_t words[32] = { 0 };
    memcpy(words, p, len);
    for (uint32_t i = 0; i < (len + 3) / 4; i++)
        c->w[c->n++] = words[i];            /* already in wire order */
}

static void call_header(struct call *c, uint32_t xid, uint32_t prog, uint32_t proc)
{
    c->n = 0;
    put(c, xid); put(c, CALL); put(c, 2);
    put(c, prog); put(c, 3); put(c, proc);
    put(c, 0); put(c, 0);
    put(c, 0); put(c, 0);
}

static int tcp_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static int recv_until(int fd, void *p, size_t n, long long deadline)
{
    size_t have = 0;
    while (have < n) {
        long long left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        if (poll(&pf, 1, (int)left) <= 0)
            return -1;
        ssize_t r = recv(fd, (char *)p + have, n - have, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return -1;
        if (r > 0)
            have += (size_t)r;
    }
    return 0;
}

/* Mark and call in one segment (two sends would meet Nagle and delayed
 * ACKs: 40 ms that are not the server's). */
static void send_call(int fd, const struct call *c)
{
    uint32_t buf[129];
    buf[0] = htonl(0x80000000u | (uint32_t)(c->n * 4));
    memcpy(buf + 1, c->w, (size_t)c->n * 4);
    ck_assert_int_eq(send(fd, buf, 4 + (size_t)c->n * 4, MSG_NOSIGNAL), 4 + c->n * 4);
}

/* One reply record (words in host order): its word count, or -1 when none
 * came before the deadline.  Reads at most max words of it. */
static int recv_reply(int fd, uint32_t *out, int max, long long deadline)
{
    uint32_t mark;
    if (recv_until(fd, &mark, 4, deadline))
        return -1;
    uint32_t len = ntohl(mark) & 0x7fffffffu;
    uint32_t buf[16384];
    if (len % 4 || len > sizeof buf || recv_until(fd, buf, len, deadline))
        return -1;
    int n = (int)(len / 4) < max ? (int)(len / 4) : max;
    for (int i = 0; i < n; i++)
        out[i] = ntohl(buf[i]);
    return n;
}

static int tcp_call(int fd, const struct call *c, uint32_t *out, int max, int timeout_ms)
{
    send_call(fd, c);
    return recv_reply(fd, out, max, now_ms() + timeout_ms);
}

static int mnt_root(uint8_t *fh)
{
    int fd = tcp_open(srv.mount_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 7, MOUNT_PROG, 1);
    put_bytes(&c, "/", 1);
    int n = tcp_call(fd, &c, r, 64, 30000);
    close(fd);
    ck_assert_int_ge(n, 8);
    ck_assert_uint_eq(r[6], 0);                  /* MNT3_OK */
    int len = (int)r[7];
    ck_assert_int_le(len, 64);
    for (int i = 0; i < len / 4; i++)
        ((uint32_t *)fh)[i] = htonl(r[8 + i]);
    return len;
}

static void lookup_call(struct call *c, uint32_t xid, const uint8_t *dir, int dirlen,
                        const char *name)
{
    call_header(c, xid, NFS_PROG, 3);
    put_bytes(c, dir, (uint32_t)dirlen);
    put_bytes(c, name, (uint32_t)strlen(name));
}

/* The nfsstat3 of a LOOKUP reply (copying the handle on NFS3_OK), or -1
 * for no or a malformed reply. */
static int lookup_status(const uint32_t *r, int n, uint8_t *out, int *outlen)
{
    if (n < 7 || r[1] != REPLY || r[2] != 0 || r[5] != 0)
        return -1;
    if (r[6] == 0 && out) {
        if (n < 8 || r[7] > 64 || n < 8 + (int)r[7] / 4)
            return -1;
        *outlen = (int)r[7];
        for (int i = 0; i < *outlen / 4; i++)
            ((uint32_t *)out)[i] = htonl(r[8 + i]);
    }
    return (int)r[6];
}

/* LOOKUP on a fresh connection: the status, the handle and the time taken. */
static int lookup(const uint8_t *dir, int dirlen, const char *name, uint8_t *out,
                  int *outlen, int timeout_ms, long long *took)
{
    int fd = tcp_open(srv.nfs_port);
    struct call c;
    uint32_t r[128];
    lookup_call(&c, 3, dir, dirlen, name);
    long long t0 = now_ms();
    int n = tcp_call(fd, &c, r, 128, timeout_ms);
    if (took)
        *took = now_ms() - t0;
    close(fd);
    return lookup_status(r, n, out, outlen);
}

static bool getattr_ok(int fd, const uint8_t *fh, int fhlen, int timeout_ms)
{
    struct call c;
    uint32_t r[64];
    call_header(&c, 0x47455441, NFS_PROG, 1);
    put_bytes(&c, fh, (uint32_t)fhlen);
    int n = tcp_call(fd, &c, r, 64, timeout_ms);
    return n >= 7 && r[0] == 0x47455441 && r[5] == 0 && r[6] == 0;
}

/* READ of the whole small file fh: true if it holds want. */
static bool read_is(int fd, const uint8_t *fh, int fhlen, const char *want, int timeout_ms)
{
    struct call c;
    uint32_t r[256];
    call_header(&c, 0x52454144, NFS_PROG, 6);
    put_bytes(&c, fh, (uint32_t)fhlen);
    put(&c, 0); put(&c, 0);                      /* offset */
    put(&c, 4096);                               /* count */
    int n = tcp_call(fd, &c, r, 256, timeout_ms);
    /* status, post_op_attr (1 + 21 words), count, eof, data<> */
    if (n < 7 || r[5] != 0 || r[6] != 0 || r[7] != 1 || n < 8 + 21 + 3)
        return false;
    uint32_t len = r[8 + 21 + 2];
    if (len != strlen(want) || n < 8 + 21 + 3 + (int)(len + 3) / 4)
        return false;
    char data[4096];
    for (uint32_t i = 0; i < (len + 3) / 4; i++)
        ((uint32_t *)data)[i] = htonl(r[8 + 21 + 3 + i]);
    return memcmp(data, want, len) == 0;
}

static int count_threads(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)); )
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int log_lines(const char *needle)
{
    char path[300], line[2048];
    snprintf(path, sizeof path, "%s/tarnfsd.log", srv.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

/* The handle of warm/f.txt (loading the warm run, which does not stall). */
static int warm_file(const uint8_t *root, int rootlen, uint8_t *fh)
{
    uint8_t warm[64];
    int warmlen = 0, fhlen = 0;
    ck_assert_int_eq(lookup(root, rootlen, "warm", warm, &warmlen, 30000, NULL), 0);
    ck_assert_int_eq(lookup(warm, warmlen, "f.txt", fh, &fhlen, 30000, NULL), 0);
    return fhlen;
}

/* ---- tests ---- */

START_TEST(sixty_four_parked_lookups_hold_no_worker_and_cached_runs_keep_answering)
{
    /* Every cold tarball sends nothing for 4 s; 4 workers, 16 fetch
     * threads (so the 64 loads take 4 rounds of the stall). */
    start_with("stall:4000::cold", "fetch_threads = 16\npark_timeout = 120s\n");
    uint8_t root[64], ffh[64];
    int rootlen = mnt_root(root);
    int ffhlen = warm_file(root, rootlen, ffh);
    int before = count_threads(srv.pid);
    /* The same calls with nothing parked: what this machine (shared, maybe
     * loaded, sanitizer build) makes of them. */
    long long base = 0;
    int bfd = tcp_open(srv.nfs_port);
    for (int i = 0; i < 20; i++) {
        long long t0 = now_ms();
        ck_assert(getattr_ok(bfd, ffh, ffhlen, 5000));
        ck_assert(read_is(bfd, ffh, ffhlen, "hello from warm\n", 5000));
        if (now_ms() - t0 > base)
            base = now_ms() - t0;
    }
    close(bfd);

    enum { NCONN = 2 };         /* 32 calls each: more than 16 in progress */
    int fds[NCONN];
    for (int i = 0; i < NCONN; i++)
        fds[i] = tcp_open(srv.nfs_port);
    long long sent = now_ms();
    for (int i = 0; i < NCOLD; i++) {
        char name[16];
        snprintf(name, sizeof name, "cold%02d", i);
        struct call c;
        lookup_call(&c, 1000 + (uint32_t)i, root, rootlen, name);
        send_call(fds[i % NCONN], &c);
    }
    sleep_ms(2000);             /* the first 16 loads have started and stall */

    /* 64 calls wait, 4 workers: had each held its worker, nothing else
     * would be answered now.  Cached data answers at once. */
    int fd = tcp_open(srv.nfs_port);
    long long worst = 0;
    for (int i = 0; i < 10; i++) {
        long long t0 = now_ms();
        ck_assert(getattr_ok(fd, ffh, ffhlen, 5000));
        long long t1 = now_ms();
        ck_assert(read_is(fd, ffh, ffhlen, "hello from warm\n", 5000));
        long long t2 = now_ms();
        if (t1 - t0 > worst) worst = t1 - t0;
        if (t2 - t1 > worst) worst = t2 - t1;
    }
    close(fd);
    /* A connection with 32 parked calls still has its next call read and
     * answered (a kernel client sends everything on one connection). */
    long long t0 = now_ms();
    ck_assert(getattr_ok(fds[0], ffh, ffhlen, 5000));
    if (now_ms() - t0 > worst)
        worst = now_ms() - t0;
    fprintf(stderr, "test_park: slowest GETATTR/READ of a cached run while 64 LOOKUPs "
            "were parked: %lld ms (GETATTR+READ with nothing parked: %lld ms)\n", worst, base);
    /* Blocked workers would make it seconds (the stall). */
    ck_assert_int_lt(worst, 100 + base);
    /* Threads: at most the fetch threads (and a listing refresh) more. */
    int during = count_threads(srv.pid);
    fprintf(stderr, "test_park: tarnfsd threads: %d before, %d with 64 calls parked "
            "(4 workers, fetch_threads 16)\n", before, during);
    ck_assert_int_le(during, before + 16 + 2);

    /* When the stall ends, every parked LOOKUP is answered, correctly. */
    bool seen[NCOLD] = { false };
    uint8_t cold5[64];
    int cold5len = 0;
    for (int k = 0; k < NCOLD; k++) {
        uint32_t r[128];
        int n = -1;
        for (int i = 0; i < NCONN && n < 0; i++) {
            struct pollfd pf = { .fd = fds[i], .events = POLLIN };
            if (poll(&pf, 1, 0) == 1)
                n = recv_reply(fds[i], r, 128, now_ms() + 10000);
        }
        if (n < 0) {
            ck_assert_int_lt(now_ms() - sent, 60000);
            sleep_ms(20);
            k--;
            continue;
        }
        uint8_t h[64];
        int hlen = 0;
        ck_assert_int_eq(lookup_status(r, n, h, &hlen), 0);
        ck_assert_uint_ge(r[0], 1000);
        ck_assert_uint_lt(r[0], 1000 + NCOLD);
        ck_assert(!seen[r[0] - 1000]);
        seen[r[0] - 1000] = true;
        if (r[0] == 1005) {
            memcpy(cold5, h, (size_t)hlen);
            cold5len = hlen;
        }
    }
    ck_assert_int_ge(now_ms() - sent, 3500);     /* they did wait for the stall */
    for (int i = 0; i < NCONN; i++)
        close(fds[i]);
    uint8_t f5[64];
    int f5len = 0;
    ck_assert_int_eq(lookup(cold5, cold5len, "f.txt", f5, &f5len, 10000, NULL), 0);
    fd = tcp_open(srv.nfs_port);
    ck_assert(read_is(fd, f5, f5len, "hello from cold05\n", 5000));
    close(fd);
    ck_assert_int_eq(server_stop(&srv), 0);
}
END_TEST

START_TEST(a_call_parked_past_park_timeout_gets_jukebox_and_sigterm_exits_promptly)
{
    start_with("stall:600000::cold", "park_timeout = 1s\nfetch_stall_timeout = 10m\n");
    uint8_t root[64], ffh[64];
    int rootlen = mnt_root(root);
    int ffhlen = warm_file(root, rootlen, ffh);
    long long took;
    ck_assert_int_eq(lookup(root, rootlen, "cold07", NULL, NULL, 20000, &took),
                     NFS3ERR_JUKEBOX);
    ck_assert_int_ge(took, 900);
    ck_assert_int_lt(took, 5000);
    /* Asked again, it parks again (the fetch still stalls): JUKEBOX again,
     * and cached data is still served. */
    ck_assert_int_eq(lookup(root, rootlen, "cold07", NULL, NULL, 20000, NULL),
                     NFS3ERR_JUKEBOX);
    int fd = tcp_open(srv.nfs_port);
    ck_assert(getattr_ok(fd, ffh, ffhlen, 2000));
    close(fd);
    /* Park a few more and stop while their fetches stall. */
    int fds[4];
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "cold%02d", 10 + i);
        struct call c;
        lookup_call(&c, 2000 + (uint32_t)i, root, rootlen, name);
        fds[i] = tcp_open(srv.nfs_port);
        send_call(fds[i], &c);
    }
    sleep_ms(300);
    long long t0 = now_ms();
    ck_assert_int_eq(server_stop(&srv), 0);
    ck_assert_int_lt(now_ms() - t0, 5000);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
}
END_TEST

START_TEST(a_transfer_that_stalls_past_fetch_stall_timeout_is_eio_and_the_next_access_retries)
{
    /* Only the first stream of cold01 stalls. */
    start_with("stall:600000:1:cold01", "fetch_stall_timeout = 1s\npark_timeout = 60s\n");
    uint8_t root[64], h[64];
    int rootlen = mnt_root(root), hlen = 0;
    long long took;
    ck_assert_int_eq(lookup(root, rootlen, "cold01", NULL, NULL, 20000, &took), NFS3ERR_IO);
    ck_assert_int_ge(took, 900);
    ck_assert_int_ge(log_lines("abandoned: the backend sent no bytes"), 1);
    ck_assert_int_eq(lookup(root, rootlen, "cold01", h, &hlen, 20000, NULL), 0);
    uint8_t f[64];
    int flen = 0;
    ck_assert_int_eq(lookup(h, hlen, "f.txt", f, &flen, 10000, NULL), 0);
    int fd = tcp_open(srv.nfs_port);
    ck_assert(read_is(fd, f, flen, "hello from cold01\n", 5000));
    close(fd);
    ck_assert_int_eq(server_stop(&srv), 0);
}
END_TEST

START_TEST(reads_of_an_absent_member_park_on_one_range_fetch_and_hold_no_worker)
{
    /* Every transfer of lazy.tar (its index, then the member's range)
     * sends nothing for 2.5 s; 4 workers. */
    start_with("stall:2500::lazy.tar", "park_timeout = 60s\n");
    uint8_t root[64], ffh[64], dir[64], fh[64];
    int rootlen = mnt_root(root);
    int ffhlen = warm_file(root, rootlen, ffh), dirlen = 0, fhlen = 0;
    ck_assert_int_eq(lookup(root, rootlen, "lazy", dir, &dirlen, 30000, NULL), 0);
    ck_assert_int_eq(lookup(dir, dirlen, "f.txt", fh, &fhlen, 30000, NULL), 0);

    /* 8 READs of the absent file (more than the 4 workers) wait for one
     * range fetch; cached data answers meanwhile. */
    int rfd = tcp_open(srv.nfs_port);
    long long sent = now_ms();
    for (uint32_t i = 0; i < 8; i++) {
        struct call c;
        call_header(&c, 3000 + i, NFS_PROG, 6);
        put_bytes(&c, fh, (uint32_t)fhlen);
        put(&c, 0); put(&c, 0);
        put(&c, 4096);
        send_call(rfd, &c);
    }
    sleep_ms(500);
    int fd = tcp_open(srv.nfs_port);
    for (int i = 0; i < 5; i++) {
        long long t0 = now_ms();
        ck_assert(getattr_ok(fd, ffh, ffhlen, 5000));
        ck_assert_int_lt(now_ms() - t0, 100);
    }
    close(fd);
    for (int i = 0; i < 8; i++) {
        uint32_t r[256];
        int n = recv_reply(rfd, r, 256, now_ms() + 30000);
        ck_assert_int_ge(n, 8 + 21 + 3 + 4);
        ck_assert_uint_ge(r[0], 3000);
        ck_assert_uint_eq(r[6], 0);                  /* NFS3_OK */
        ck_assert_uint_eq(r[8 + 21 + 2], 16);        /* "hello from lazy\n" */
        char data[20];
        for (int k = 0; k < 4; k++)
            ((uint32_t *)data)[k] = htonl(r[8 + 21 + 3 + k]);
        ck_assert(memcmp(data, "hello from lazy\n", 16) == 0);
    }
    ck_assert_int_ge(now_ms() - sent, 2000);
    close(rfd);
    ck_assert_int_eq(server_stop(&srv), 0);
}
END_TEST

int main(int argc, char **argv)
{
    const TTest *tests[] = {
        sixty_four_parked_lookups_hold_no_worker_and_cached_runs_keep_answering,
        a_call_parked_past_park_timeout_gets_jukebox_and_sigterm_exits_promptly,
        a_transfer_that_stalls_past_fetch_stall_timeout_is_eio_and_the_next_access_retries,
        reads_of_an_absent_member_park_on_one_range_fetch_and_hold_no_worker,
    };
    Suite *s = suite_create("park");
    TCase *t = tcase_create("park");
    tcase_set_timeout(t, 180);
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (argc < 2 || !strcmp(argv[1], tests[i]->name))   /* test_park [NAME] */
            _tcase_add_test(t, tests[i], 0, 0, 0, 1);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
