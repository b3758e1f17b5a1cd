/* test_transport.c: tarnfsd's transport limits against hostile raw-RPC
 * clients: a client that never reads its replies, memory announced but not
 * sent, connections per host, the idle timeout, running out of descriptors,
 * and UDP (reply sizes within FSINFO, and UDP turned off); and connections
 * spread over several event loops (listeners) with the limits exact across
 * them. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "server.h"

enum { CALL = 0, REPLY = 1 };
#define NFS_PROG 100003u
#define MOUNT_PROG 100005u
/* FSINFO for UDP in tarnfsd: rtmax = dtpref = 32 KiB. */

static struct test_server srv;

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

static void start_with(const char *conf, const char *const *extra)
{
    memset(&srv, 0, sizeof srv);
    ck_assert_int_eq(server_start(&srv, test_env("NFS_TEST_CACHE"), conf, extra), 0);
}

static void stop(void)
{
    ck_assert_int_eq(server_stop(&srv), 0);    /* clean exit: nothing crashed */
}

/* ---- building calls ---- */

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

/* xid CALL 2 prog 3 proc, AUTH_NONE cred and verifier. */
static void call_header(struct call *c, uint32_t xid, uint32_t prog, uint32_t proc)
{
    c->n = 0;
    put(c, xid); put(c, CALL); put(c, 2);
    put(c, prog); put(c, 3); put(c, proc);
    put(c, 0); put(c, 0);
    put(c, 0); put(c, 0);
}

/* ---- TCP ---- */

static int tcp_open(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Receive exactly n bytes before the deadline; 0, or -1 (timeout, EOF, error). */
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

/* Send a call and read one reply record (words in host order); the count
 * of words, or -1 when no reply came within timeout_ms. */
static int tcp_call(int fd, const struct call *c, uint32_t *out, int max, int timeout_ms)
{
    uint32_t mark = htonl(0x80000000u | (uint32_t)(c->n * 4));
    if (send(fd, &mark, 4, MSG_NOSIGNAL) != 4 ||
        send(fd, c->w, (size_t)c->n * 4, MSG_NOSIGNAL) != (ssize_t)c->n * 4)
        return -1;
    long long deadline = now_ms() + timeout_ms;
    if (recv_until(fd, &mark, 4, deadline))
        return -1;
    uint32_t len = ntohl(mark) & 0x7fffffffu;
    if (len % 4 || len / 4 > (uint32_t)max)
        return -1;
    if (recv_until(fd, out, len, deadline))
        return -1;
    for (uint32_t i = 0; i < len / 4; i++)
        out[i] = ntohl(out[i]);
    return (int)(len / 4);
}

/* A NULL call on fd answered within timeout_ms. */
static bool null_ok(int fd, uint32_t prog, int timeout_ms)
{
    struct call c;
    uint32_t r[16];
    call_header(&c, 0x4e554c4c, prog, 0);
    int n = tcp_call(fd, &c, r, 16, timeout_ms);
    return n >= 6 && r[0] == 0x4e554c4c && r[1] == REPLY && r[5] == 0;
}

/* A fresh connection gets a NULL answered within timeout_ms. */
static bool fresh_null_ok(int port, int timeout_ms)
{
    int fd = tcp_open(port, 0);
    bool ok = null_ok(fd, NFS_PROG, timeout_ms);
    close(fd);
    return ok;
}

/* True when the server has closed fd (EOF or reset) within timeout_ms;
 * replies still buffered are read and thrown away. */
static bool closed_by_server(int fd, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    static char sink[65536];
    while (now_ms() < deadline) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        if (poll(&pf, 1, (int)(deadline - now_ms())) <= 0)
            return false;
        ssize_t r = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE)))
            return true;
    }
    return false;
}

/* MNT "/" on the MOUNT port: the root handle. */
static int mnt_root(uint8_t *fh)
{
    int fd = tcp_open(srv.mount_port, 0);
    struct call c;
    uint32_t r[64];
    call_header(&c, 7, MOUNT_PROG, 1);
    put_bytes(&c, "/", 1);
    int n = tcp_call(fd, &c, r, 64, 10000);
    close(fd);
    ck_assert_int_ge(n, 8);
    ck_assert_uint_eq(r[5], 0);
    ck_assert_uint_eq(r[6], 0);                  /* MNT3_OK */
    int len = (int)r[7];
    ck_assert_int_le(len, 64);
    for (int i = 0; i < len / 4; i++)
        ((uint32_t *)fh)[i] = htonl(r[8 + i]);
    return len;
}

/* GETATTR of fh answered NFS3_OK within timeout_ms. */
static bool getattr_ok(int fd, const uint8_t *fh, int fhlen, int timeout_ms)
{
    struct call c;
    uint32_t r[64];
    call_header(&c, 0x47455441, NFS_PROG, 1);
    put_bytes(&c, fh, (uint32_t)fhlen);
    int n = tcp_call(fd, &c, r, 64, timeout_ms);
    return n >= 7 && r[0] == 0x47455441 && r[5] == 0 && r[6] == 0;
}

/* LOOKUP name in dir over TCP: the child's handle length (or fail). */
static int lookup(const uint8_t *dir, int dirlen, const char *name, uint8_t *out)
{
    int fd = tcp_open(srv.nfs_port, 0);
    struct call c;
    uint32_t r[128];
    call_header(&c, 3, NFS_PROG, 3);
    put_bytes(&c, dir, (uint32_t)dirlen);
    put_bytes(&c, name, (uint32_t)strlen(name));
    int n = tcp_call(fd, &c, r, 128, 10000);
    close(fd);
    ck_assert_int_ge(n, 8);
    ck_assert_uint_eq(r[6], 0);                  /* NFS3_OK */
    int len = (int)r[7];
    ck_assert_int_le(len, 64);
    for (int i = 0; i < len / 4; i++)
        ((uint32_t *)out)[i] = htonl(r[8 + i]);
    return len;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)); )
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Lines of the server log containing needle. */
static int log_lines(const char *needle)
{
    char path[300], line[1024];
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

/* ---- the metrics endpoint (metrics_listen = 127.0.0.1:0) ---- */

/* The metrics port, from the server's log line; -1 when not serving. */
static int metrics_port_of(void)
{
    char path[300], line[1024];
    snprintf(path, sizeof path, "%s/tarnfsd.log", srv.dir);
    FILE *f = fopen(path, "r");
    int port = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "metrics: serving /metrics on ");
        const char *q = p ? strstr(p, ", port ") : NULL;
        if (q)
            port = atoi(q + 7);
    }
    fclose(f);
    return port;
}

/* The value of the sample named series (e.g. a{b="c"}) in GET /metrics;
 * -1 when absent. */
static long metric(const char *series)
{
    int port = metrics_port_of();
    ck_assert_int_gt(port, 0);
    int fd = tcp_open(port, 0);
    const char *req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    static char body[1 << 20];
    size_t have = 0;
    ssize_t r;
    while (have < sizeof body - 1 && (r = recv(fd, body + have, sizeof body - 1 - have, 0)) > 0)
        have += (size_t)r;
    close(fd);
    body[have] = 0;
    size_t n = strlen(series);
    for (char *p = body; (p = strstr(p, series)); p += n)
        if ((p == body || p[-1] == '\n') && p[n] == ' ')
            return atol(p + n + 1);
    return -1;
}

/* Connections on event loop i now. */
static long loop_conns(int i)
{
    char series[96];
    snprintf(series, sizeof series, "tarnfs_listener_connections{listener=\"%d\"}", i);
    return metric(series);
}

/* ---- finding 2: replies that are never read ---- */

/* A client floods calls and never reads a reply: the server stops reading
 * it at connection_buffer (the transport's memory stays near 16 MiB, so
 * its back-pressure works on its own loop: with several loops it is put on
 * loop 1, not the accepting loop 0); `clients` other connections (on every
 * loop when there are several, the attacker's own too) are answered at
 * once, and the attacker is dropped after reply_timeout.  listeners: the
 * number of event loops. */
static void never_reads(int listeners, int clients)
{
    char conf[256];
    snprintf(conf, sizeof conf, "reply_timeout = 2s\nlisteners = %d\n"
             "metrics_listen = 127.0.0.1:0\n", listeners);
    start_with(conf, NULL);
    uint8_t root[64], demo[64], big[64];
    int rootlen = mnt_root(root);
    int demolen = lookup(root, rootlen, "demo", demo);
    int biglen = lookup(demo, demolen, "big.bin", big);
    /* The lookups' connections are gone; with several loops a first
     * connection takes loop 0 (which also accepts), so the attacker is on
     * loop 1: its back-pressure is re-armed in that loop's epoll set. */
    long long settle = now_ms() + 5000;
    for (int i = 0; i < listeners; i++)
        while (loop_conns(i) != 0 && now_ms() < settle)
            sleep_ms(20);
    int first = listeners > 1 ? tcp_open(srv.nfs_port, 0) : -1;
    if (first >= 0)
        ck_assert(null_ok(first, NFS_PROG, 5000));
    /* The attacker reads nothing, with the smallest receive buffer, and
     * sends calls until the server stops taking them: NULL calls, each
     * batch ending with a 1 MiB READ, so the server's socket buffer (up to
     * 4 MiB) fills in seconds rather than after 130,000 NULL replies. */
    int a = tcp_open(srv.nfs_port, 4096);
    int home = listeners > 1 ? 1 : 0;       /* the attacker's loop */
    ck_assert(null_ok(a, NFS_PROG, 5000));
    ck_assert_int_eq(loop_conns(home), 1);
    /* The other clients connect now, while the attacker is surely there
     * (it is dropped reply_timeout after its replies stop moving). */
    int fds[8];
    ck_assert_int_le(clients, 8);
    for (int k = 0; k < clients; k++)
        fds[k] = tcp_open(srv.nfs_port, 0);
    for (int k = 0; k < clients; k++)
        ck_assert(null_ok(fds[k], NFS_PROG, 3000));
    /* Every loop has a client; the attacker's has one besides it. */
    for (int i = 0; i < listeners; i++)
        ck_assert_msg(loop_conns(i) >= 1 + (i == home && clients >= listeners),
                      "loop %d has %ld connections", i, loop_conns(i));
    fcntl(a, F_SETFL, O_NONBLOCK);
    enum { BATCH = 200 };
    static uint32_t flood[BATCH * 11 + 64];
    size_t words = 0;
    for (int i = 0; i < BATCH; i++) {
        struct call c;
        call_header(&c, (uint32_t)i, NFS_PROG, 0);
        flood[words++] = htonl(0x80000000u | 40);
        memcpy(&flood[words], c.w, 40);
        words += 10;
    }
    struct call rd;
    call_header(&rd, 999, NFS_PROG, 6);
    put_bytes(&rd, big, (uint32_t)biglen);
    put(&rd, 0); put(&rd, 0); put(&rd, 1u << 20);
    flood[words++] = htonl(0x80000000u | (uint32_t)(rd.n * 4));
    memcpy(&flood[words], rd.w, (size_t)rd.n * 4);
    words += (size_t)rd.n;
    long long give_up = now_ms() + 30000;
    size_t sent = 0, off = 0, len = words * 4;
    int stalls = 0;
    long peak = 0;
    while (stalls < 2 && now_ms() < give_up) {
        ssize_t w = send(a, (char *)flood + off, len - off, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            off = (off + (size_t)w) % len;
            stalls = 0;
            continue;
        }
        struct pollfd pf = { .fd = a, .events = POLLOUT };
        if (poll(&pf, 1, 500) == 0) {
            stalls++;
            long m = metric("tarnfs_rpc_memory_bytes");
            if (m > peak)
                peak = m;
        }
    }
    ck_assert_msg(stalls == 2, "the server kept reading %zu bytes of calls", sent);
    /* It stopped reading at connection_buffer (16 MiB of replies, plus the
     * 1 MiB READs in flight), on its loop, not at rpc_memory_limit. */
    printf("transport: %d loop(s): the server held %ld KiB for a client that reads "
           "nothing\n", listeners, peak >> 10);
    ck_assert_msg(peak < (48l << 20), "the server held %ld bytes for it", peak);
    /* Other clients are answered at once, NULL and GETATTR, every time. */
    uint8_t *fh = root;
    int fhlen = rootlen;
    for (int i = 0; i < 10; i++) {
        for (int k = 0; k < clients; k++) {
            long long t0 = now_ms();
            /* 3 s: a stall would be forever; a sanitizer build on a loaded
             * 2-core host can take a second. */
            ck_assert_msg(null_ok(fds[k], NFS_PROG, 3000), "NULL %d on client %d not answered "
                          "within 3 s", i, k);
            ck_assert_msg(getattr_ok(fds[k], fh, fhlen, 3000), "GETATTR %d on client %d not "
                          "answered within 3 s", i, k);
            ck_assert_int_lt(now_ms() - t0, 3000);
        }
    }
    for (int k = 0; k < clients; k++)
        close(fds[k]);
    /* The attacker is dropped once its replies have waited past the
     * reply timeout (2 s); it has still read nothing at that point. */
    sleep_ms(4000);
    ck_assert_msg(closed_by_server(a, 10000), "the attacker was not dropped");
    close(a);
    ck_assert(fresh_null_ok(srv.nfs_port, 1000));
    ck_assert_int_ge(log_lines("did not read its replies"), 1);
    if (first >= 0)
        close(first);
    stop();
}

START_TEST(a_client_that_never_reads_replies_holds_no_worker_and_is_dropped)
{
    never_reads(1, 1);      /* one event loop: the attacker's */
}
END_TEST

START_TEST(a_client_that_never_reads_replies_stalls_no_loop_neither_its_own)
{
    never_reads(3, 4);      /* the attacker on loop 1; clients on 2, 0, 1 and 2 */
}
END_TEST

/* ---- several event loops ---- */

START_TEST(connections_are_spread_over_the_listeners_and_stay_exact)
{
    start_with("listeners = 4\nmetrics_listen = 127.0.0.1:0\n", NULL);
    ck_assert_int_eq(metric("tarnfs_listener_connections{listener=\"4\"}"), -1);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_open(srv.nfs_port, 0);
        ck_assert(null_ok(fds[i], NFS_PROG, 5000));
    }
    for (int i = 0; i < 4; i++)
        ck_assert_msg(loop_conns(i) == 2, "loop %d has %ld connections", i, loop_conns(i));
    ck_assert_int_eq(metric("tarnfs_connections_accepted_total"), N);
    /* Closed ones leave their loop; new ones fill the emptiest. */
    close(fds[0]);
    close(fds[1]);
    long long deadline = now_ms() + 5000;
    while (loop_conns(0) + loop_conns(1) > 2 && now_ms() < deadline)
        sleep_ms(50);
    ck_assert_int_eq(loop_conns(0), 1);
    ck_assert_int_eq(loop_conns(1), 1);
    fds[0] = tcp_open(srv.nfs_port, 0);
    fds[1] = tcp_open(srv.nfs_port, 0);
    for (int i = 0; i < N; i++)
        ck_assert(null_ok(fds[i], NFS_PROG, 5000));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(loop_conns(i), 2);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    stop();
    /* listeners = 1: every connection on the one loop. */
    start_with("listeners = 1\nmetrics_listen = 127.0.0.1:0\n", NULL);
    for (int i = 0; i < 3; i++)
        fds[i] = tcp_open(srv.nfs_port, 0);
    for (int i = 0; i < 3; i++)
        ck_assert(null_ok(fds[i], NFS_PROG, 5000));
    ck_assert_int_eq(loop_conns(0), 3);
    ck_assert_int_eq(loop_conns(1), -1);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    stop();
}
END_TEST

/* Back-pressure on every loop: more calls in flight than a connection may
 * have queued (16) stop its reading, and the workers' replies must turn it
 * back on in the epoll set of the loop that owns it. */
START_TEST(pipelined_calls_past_the_inflight_limit_are_all_answered_on_every_loop)
{
    start_with("listeners = 3\nmetrics_listen = 127.0.0.1:0\n", NULL);
    enum { CONNS = 6, CALLS = 200 };
    static uint32_t batch[CALLS * 11];
    for (int i = 0; i < CALLS; i++) {
        struct call c;
        call_header(&c, (uint32_t)(1000 + i), NFS_PROG, 0);
        batch[i * 11] = htonl(0x80000000u | 40);
        memcpy(&batch[i * 11 + 1], c.w, 40);
    }
    int fds[CONNS];
    for (int k = 0; k < CONNS; k++)
        fds[k] = tcp_open(srv.nfs_port, 0);
    for (int k = 0; k < CONNS; k++)
        ck_assert(null_ok(fds[k], NFS_PROG, 5000));
    for (int i = 0; i < 3; i++)
        ck_assert_msg(loop_conns(i) == 2, "loop %d has %ld connections", i, loop_conns(i));
    for (int k = 0; k < CONNS; k++)
        ck_assert_int_eq(send(fds[k], batch, sizeof batch, MSG_NOSIGNAL), (ssize_t)sizeof batch);
    long long deadline = now_ms() + 20000;
    for (int k = 0; k < CONNS; k++) {
        for (int i = 0; i < CALLS; i++) {
            uint32_t mark, r[6];
            ck_assert_msg(recv_until(fds[k], &mark, 4, deadline) == 0 &&
                          (ntohl(mark) & 0x7fffffffu) == 24 &&
                          recv_until(fds[k], r, 24, deadline) == 0,
                          "connection %d: reply %d of %d did not come", k, i, CALLS);
            ck_assert_uint_ge(ntohl(r[0]), 1000);      /* any order: matched by xid */
            ck_assert_uint_lt(ntohl(r[0]), 1000 + CALLS);
        }
        close(fds[k]);
    }
    stop();
}
END_TEST

/* One read of the socket can bring hundreds of calls (the mark of the
 * first sent alone, then the rest of it and 400 more in one write): at
 * most CONN_INFLIGHT_MAX of them run at a time and the rest wait, read
 * but held, until the client takes its replies.  Before, every call in
 * the read ran at once, and 400 READs of 1 MiB for a client that reads
 * nothing put 400 MiB of replies in memory. */
START_TEST(calls_read_past_the_inflight_limit_wait_for_the_client_to_take_its_replies)
{
    start_with("metrics_listen = 127.0.0.1:0\n", NULL);
    uint8_t root[64], demo[64], big[64];
    int rootlen = mnt_root(root);
    int demolen = lookup(root, rootlen, "demo", demo);
    int biglen = lookup(demo, demolen, "big.bin", big);
    long base = metric("tarnfs_rpc_memory_bytes");
    ck_assert_int_ge(base, 0);
    enum { CALLS = 401 };
    static uint32_t calls[CALLS * 40];
    size_t words = 0;
    for (int i = 0; i < CALLS; i++) {
        struct call rd;
        call_header(&rd, (uint32_t)(5000 + i), NFS_PROG, 6);
        put_bytes(&rd, big, (uint32_t)biglen);
        put(&rd, 0); put(&rd, 0); put(&rd, 1u << 20);
        calls[words++] = htonl(0x80000000u | (uint32_t)(rd.n * 4));
        memcpy(&calls[words], rd.w, (size_t)rd.n * 4);
        words += (size_t)rd.n;
    }
    ck_assert_uint_lt(words * 4, 65536);
    int fd = tcp_open(srv.nfs_port, 4096);
    ck_assert(null_ok(fd, NFS_PROG, 5000));
    ck_assert_int_eq(send(fd, calls, 4, MSG_NOSIGNAL), 4);
    sleep_ms(200);          /* the server has read the mark alone */
    ck_assert_int_eq(send(fd, (char *)calls + 4, words * 4 - 4, MSG_NOSIGNAL),
                     (ssize_t)(words * 4 - 4));
    long peak = 0;
    for (int i = 0; i < 20; i++) {
        sleep_ms(100);
        long m = metric("tarnfs_rpc_memory_bytes");
        if (m > peak)
            peak = m;
    }
    printf("transport: %d READs of 1 MiB in one read of a client reading nothing: "
           "the server held %ld KiB\n", CALLS, (peak - base) >> 10);
    ck_assert_msg(peak - base < (48l << 20), "the server held %ld bytes for it", peak - base);
    /* Now the client reads: every call is answered, the held ones too. */
    int rcv = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    long long deadline = now_ms() + 60000;
    static bool seen[CALLS];
    static char data[(1 << 20) + 4096];
    for (int i = 0; i < CALLS; i++) {
        uint32_t mark, r[3];
        ck_assert_msg(recv_until(fd, &mark, 4, deadline) == 0, "reply %d of %d did not come",
                      i, CALLS);
        uint32_t len = ntohl(mark) & 0x7fffffffu;
        ck_assert_uint_gt(len, (1u << 20));
        ck_assert_uint_le(len, sizeof data);
        ck_assert_int_eq(recv_until(fd, data, len, deadline), 0);
        memcpy(r, data, sizeof r);
        uint32_t xid = ntohl(r[0]);
        ck_assert_uint_ge(xid, 5000);
        ck_assert_uint_lt(xid, 5000 + CALLS);
        ck_assert(!seen[xid - 5000]);
        seen[xid - 5000] = true;
    }
    ck_assert(null_ok(fd, NFS_PROG, 5000));
    close(fd);
    stop();
}
END_TEST

/* ---- finding 6: memory before authentication ---- */

START_TEST(announced_but_unsent_records_cost_no_memory_and_the_total_is_capped)
{
    /* ASan keeps freed blocks resident in its quarantine; RSS here is to
     * measure live memory, so the quarantine is made small. */
    const char *ao = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=4", ao ? ao : "", ao && *ao ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    /* Four loops: connections paused on each, resumed by memory any
     * thread frees. */
    start_with("rpc_memory_limit = 16M\nmax_connections_per_host = 200\nlisteners = 4\n", NULL);
    ck_assert(fresh_null_ok(srv.nfs_port, 5000));
    sleep_ms(300);
    long base = rss_kib(srv.pid);
    enum { CONNS = 64 };
    int fds[CONNS];
    uint32_t head[5] = { htonl(0x80000000u | (1u << 20)), 1, 2, 3, 4 };
    for (int i = 0; i < CONNS; i++) {
        fds[i] = tcp_open(srv.nfs_port, 0);
        ck_assert_int_eq(send(fds[i], head, sizeof head, MSG_NOSIGNAL), (ssize_t)sizeof head);
    }
    sleep_ms(1000);
    long announced = rss_kib(srv.pid) - base;
    /* Now most of each record really arrives: 64 MiB in all. */
    static char body[(1 << 20) - 64];
    for (int i = 0; i < CONNS; i++) {
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        if (send(fds[i], body, sizeof body, MSG_NOSIGNAL) < 0)
            ck_assert_int_eq(errno, EAGAIN);    /* the server stopped reading: fine */
    }
    sleep_ms(2000);
    long sent = rss_kib(srv.pid) - base;
    printf("transport: RSS %ld KiB, +%ld KiB with %d announced 1 MiB records, "
           "+%ld KiB once 64 MiB were sent (limit 16 MiB)\n", base, announced, CONNS, sent);
    ck_assert_msg(announced < 8 * 1024, "64 announced records took %ld KiB", announced);
    ck_assert_msg(sent < 40 * 1024, "64 nearly complete records took %ld KiB", sent);
    /* Over the limit, a new client still gets in (stuck holders are dropped). */
    ck_assert(fresh_null_ok(srv.nfs_port, 5000));
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    stop();
    setenv("ASAN_OPTIONS", ao ? ao : "", 1);
}
END_TEST

/* A NULL call carrying extra bytes to make a record of len bytes: answered
 * within 5 s (true), or the connection is dropped (false). */
static bool big_null_answered(int port, uint32_t prog, size_t len)
{
    int fd = tcp_open(port, 0);
    struct call c;
    call_header(&c, 0x4e554c4c, prog, 0);
    static uint8_t rec[64 * 1024];
    memset(rec, 0, sizeof rec);
    memcpy(rec, c.w, 40);
    uint32_t mark = htonl(0x80000000u | (uint32_t)len);
    send(fd, &mark, 4, MSG_NOSIGNAL);
    send(fd, rec, len, MSG_NOSIGNAL);
    uint32_t r[8];
    long long deadline = now_ms() + 5000;
    bool ok = recv_until(fd, &mark, 4, deadline) == 0 && recv_until(fd, r, 24, deadline) == 0 &&
              ntohl(r[0]) == 0x4e554c4c;
    close(fd);
    return ok;
}

START_TEST(the_mount_port_takes_only_records_the_size_of_a_mount_call)
{
    start_with(NULL, NULL);
    ck_assert(big_null_answered(srv.mount_port, MOUNT_PROG, 4096));
    ck_assert(!big_null_answered(srv.mount_port, MOUNT_PROG, 16384));
    ck_assert(big_null_answered(srv.nfs_port, NFS_PROG, 65536));     /* WRITE-sized port */
    ck_assert(fresh_null_ok(srv.mount_port, 5000));
    stop();
}
END_TEST

/* ---- finding 7: descriptors ---- */

START_TEST(a_host_over_its_connection_limit_is_refused)
{
    /* Counted across loops: the three are on three loops. */
    start_with("max_connections_per_host = 3\nlisteners = 4\n", NULL);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = tcp_open(srv.nfs_port, 0);
        ck_assert(null_ok(fds[i], NFS_PROG, 5000));
    }
    int extra = tcp_open(srv.nfs_port, 0);       /* the kernel accepts it... */
    ck_assert(!null_ok(extra, NFS_PROG, 3000));  /* ...tarnfsd closes it */
    close(extra);
    ck_assert_int_ge(log_lines("connections from 127.0.0.1"), 1);
    for (int i = 0; i < 3; i++)                  /* the first three still work */
        ck_assert(null_ok(fds[i], NFS_PROG, 5000));
    close(fds[0]);
    sleep_ms(300);
    ck_assert(fresh_null_ok(srv.nfs_port, 5000)); /* a freed slot is usable again */
    close(fds[1]);
    close(fds[2]);
    stop();
    /* max_connections counts every host. */
    start_with("max_connections = 2\nlisteners = 2\n", NULL);
    fds[0] = tcp_open(srv.nfs_port, 0);
    fds[1] = tcp_open(srv.mount_port, 0);
    ck_assert(null_ok(fds[0], NFS_PROG, 5000));
    ck_assert(null_ok(fds[1], MOUNT_PROG, 5000));
    extra = tcp_open(srv.nfs_port, 0);
    ck_assert(!null_ok(extra, NFS_PROG, 3000));
    close(extra);
    ck_assert_int_ge(log_lines("(max_connections)"), 1);
    close(fds[0]);
    close(fds[1]);
    stop();
}
END_TEST

START_TEST(limit_settings_out_of_range_are_refused_with_the_line)
{
    const char *bad[] = {
        "max_connections = 0\n", "max_connections_per_host = many\n",
        "idle_timeout = -1\n", "reply_timeout = 10ms\n", "connection_buffer = 1K\n",
        "rpc_memory_limit = 12Q\n", "udp = maybe\n", "listeners = 0\n", "listeners = 65\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&srv, 0, sizeof srv);
        ck_assert_msg(server_start(&srv, test_env("NFS_TEST_CACHE"), bad[i], NULL) == -1,
                      "accepted: %s", bad[i]);
        ck_assert_msg(log_lines("tarnfs.conf:1: bad value") == 1, "no message for %s", bad[i]);
    }
}
END_TEST

START_TEST(an_idle_connection_is_closed_after_the_idle_timeout)
{
    start_with("idle_timeout = 1s\n", NULL);
    int idle = tcp_open(srv.nfs_port, 0), busy = tcp_open(srv.nfs_port, 0);
    ck_assert(null_ok(idle, NFS_PROG, 5000));
    long long t0 = now_ms();
    /* busy talks every 300 ms and stays open; idle says nothing. */
    while (now_ms() - t0 < 3000) {
        ck_assert(null_ok(busy, NFS_PROG, 5000));
        sleep_ms(300);
    }
    ck_assert(closed_by_server(idle, 1000));
    ck_assert(null_ok(busy, NFS_PROG, 5000));
    close(idle);
    close(busy);
    stop();
}
END_TEST

START_TEST(out_of_descriptors_the_listener_backs_off_quietly_and_recovers)
{
    start_with(NULL, NULL);
    ck_assert(fresh_null_ok(srv.nfs_port, 5000));
    struct rlimit old, low;
    ck_assert_int_eq(prlimit(srv.pid, RLIMIT_NOFILE, NULL, &old), 0);
    low.rlim_cur = (rlim_t)count_fds(srv.pid) + 2;     /* the soft limit only */
    low.rlim_max = old.rlim_max;
    ck_assert_int_eq(prlimit(srv.pid, RLIMIT_NOFILE, &low, NULL), 0);
    /* Two connections take the last descriptors; the rest wait in the
     * backlog while accept fails with EMFILE. */
    enum { N = 12 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_open(srv.nfs_port, 0);
        struct call c;
        call_header(&c, 100 + (uint32_t)i, NFS_PROG, 0);
        uint32_t mark = htonl(0x80000000u | 40);
        send(fds[i], &mark, 4, MSG_NOSIGNAL);
        send(fds[i], c.w, 40, MSG_NOSIGNAL);
    }
    sleep_ms(3000);
    int lines = log_lines("Too many open files");
    ck_assert_msg(lines >= 1 && lines <= 3, "%d log lines about EMFILE in 3 s", lines);
    /* Descriptors come back: every waiting client is served. */
    ck_assert_int_eq(prlimit(srv.pid, RLIMIT_NOFILE, &old, NULL), 0);
    for (int i = 0; i < N; i++) {
        uint32_t r[16], mark;
        long long deadline = now_ms() + 5000;
        ck_assert_msg(recv_until(fds[i], &mark, 4, deadline) == 0 &&
                      recv_until(fds[i], r, 24, deadline) == 0,
                      "connection %d not served after descriptors came back", i);
        ck_assert_uint_eq(ntohl(r[0]), 100 + (uint32_t)i);
        close(fds[i]);
    }
    stop();
}
END_TEST

/* ---- finding 11: UDP ---- */

static int udp_open(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* One UDP call: the reply's size in bytes (words in r, host order), or -1. */
static ssize_t udp_call(int fd, const struct call *c, uint32_t *r, size_t max, int timeout_ms)
{
    if (send(fd, c->w, (size_t)c->n * 4, 0) != (ssize_t)c->n * 4)
        return -1;
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    if (poll(&pf, 1, timeout_ms) <= 0)
        return -1;
    ssize_t got = recv(fd, r, max, 0);
    for (ssize_t i = 0; i < got / 4 && i < 64; i++)
        r[i] = ntohl(r[i]);
    return got;
}

START_TEST(udp_replies_stay_within_what_fsinfo_advertises_for_udp)
{
    start_with(NULL, NULL);
    uint8_t root[64], demo[64], big[64], wide[64];
    int rootlen = mnt_root(root);
    int demolen = lookup(root, rootlen, "demo", demo);
    int biglen = lookup(demo, demolen, "big.bin", big);
    int widelen = lookup(root, rootlen, "wide", wide);
    int u = udp_open(srv.nfs_port);
    static uint32_t r[70000 / 4];
    struct call c;
    call_header(&c, 1, NFS_PROG, 19);            /* FSINFO */
    put_bytes(&c, root, (uint32_t)rootlen);
    ssize_t got = udp_call(u, &c, r, sizeof r, 5000);
    ck_assert_int_ge(got, 4 * (7 + 22 + 7));
    ck_assert_uint_eq(r[6], 0);
    int k = r[7] ? 8 + 21 : 8;                   /* after post_op_attr */
    uint32_t rtmax = r[k], dtpref = r[k + 6];
    ck_assert_uint_eq(rtmax, 32768);
    ck_assert_uint_le(dtpref, 32768);
    /* A READ asking for 1 MiB gets at most rtmax bytes of data. */
    call_header(&c, 2, NFS_PROG, 6);
    put_bytes(&c, big, (uint32_t)biglen);
    put(&c, 0); put(&c, 0); put(&c, 1u << 20);
    got = udp_call(u, &c, r, sizeof r, 5000);
    printf("transport: UDP READ of 1 MiB: a %zd-byte reply to a %d-byte call\n", got, c.n * 4);
    ck_assert_int_gt(got, 0);
    ck_assert_uint_eq(r[6], 0);
    ck_assert_int_le(got, (ssize_t)rtmax + 256);
    /* READDIRPLUS of a 100,000-entry directory, maxcount 1 MiB: within dtpref... */
    call_header(&c, 3, NFS_PROG, 17);
    put_bytes(&c, wide, (uint32_t)widelen);
    put(&c, 0); put(&c, 0); put(&c, 0); put(&c, 0);
    put(&c, 1u << 20); put(&c, 1u << 20);
    got = udp_call(u, &c, r, sizeof r, 5000);
    ck_assert_int_gt(got, 0);
    ck_assert_uint_eq(r[6], 0);
    ck_assert_int_le(got, 32768 + 256);
    /* ...and so does READDIR. */
    call_header(&c, 4, NFS_PROG, 16);
    put_bytes(&c, wide, (uint32_t)widelen);
    put(&c, 0); put(&c, 0); put(&c, 0); put(&c, 0);
    put(&c, 1u << 20);
    got = udp_call(u, &c, r, sizeof r, 5000);
    ck_assert_int_gt(got, 0);
    ck_assert_uint_eq(r[6], 0);
    ck_assert_int_le(got, 32768 + 256);
    close(u);
    /* TCP keeps its 1 MiB. */
    int fd = tcp_open(srv.nfs_port, 0);
    call_header(&c, 5, NFS_PROG, 19);
    put_bytes(&c, root, (uint32_t)rootlen);
    int n = tcp_call(fd, &c, r, 128, 5000);
    ck_assert_int_ge(n, 7 + 22 + 7);
    ck_assert_uint_eq(r[r[7] ? 8 + 21 : 8], 1u << 20);
    close(fd);
    stop();
}
END_TEST

/* No answer to a UDP NULL on port within a second. */
/* Does nothing answer an NFS NULL over UDP on port?  report: say who did. */
static bool udp_silent(int port, bool report)
{
    int u = udp_open(port);
    struct call c;
    uint32_t r[16];
    call_header(&c, 9, NFS_PROG, 0);
    ssize_t got = udp_call(u, &c, r, sizeof r, 1000);
    close(u);
    if (got >= 0 && report) {
        /* Seen once in a make check, not reproduced: say who answered. */
        fprintf(stderr, "udp_silent: port %d answered %zd bytes:", port, got);
        for (ssize_t i = 0; i < got / 4 && i < 6; i++)
            fprintf(stderr, " %08x", r[i]);
        fprintf(stderr, "\n");
        if (system("ss -uapn >&2") != 0)
            fprintf(stderr, "udp_silent: ss failed\n");
    }
    return got < 0;
}

START_TEST(udp_can_be_turned_off_by_setting_or_flag)
{
    start_with(NULL, NULL);
    ck_assert(!udp_silent(srv.nfs_port, false));    /* on by default */
    stop();
    start_with("udp = no\n", NULL);
    ck_assert(udp_silent(srv.nfs_port, true));
    ck_assert(udp_silent(srv.mount_port, true));
    ck_assert(fresh_null_ok(srv.nfs_port, 5000));
    stop();
    const char *const flag[] = { "--no-udp", NULL };
    start_with(NULL, flag);
    ck_assert(udp_silent(srv.nfs_port, true));
    ck_assert(fresh_null_ok(srv.mount_port, 5000));
    stop();
}
END_TEST

int main(int argc, char **argv)
{
    const TTest *tests[] = {
        a_client_that_never_reads_replies_holds_no_worker_and_is_dropped,
        a_client_that_never_reads_replies_stalls_no_loop_neither_its_own,
        connections_are_spread_over_the_listeners_and_stay_exact,
        pipelined_calls_past_the_inflight_limit_are_all_answered_on_every_loop,
        calls_read_past_the_inflight_limit_wait_for_the_client_to_take_its_replies,
        announced_but_unsent_records_cost_no_memory_and_the_total_is_capped,
        the_mount_port_takes_only_records_the_size_of_a_mount_call,
        a_host_over_its_connection_limit_is_refused,
        limit_settings_out_of_range_are_refused_with_the_line,
        an_idle_connection_is_closed_after_the_idle_timeout,
        out_of_descriptors_the_listener_backs_off_quietly_and_recovers,
        udp_replies_stay_within_what_fsinfo_advertises_for_udp,
        udp_can_be_turned_off_by_setting_or_flag,
    };
    Suite *s = suite_create("transport");
    TCase *t = tcase_create("transport");
    tcase_set_timeout(t, 180);
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (argc < 2 || !strcmp(argv[1], tests[i]->name))   /* test_transport [NAME] */
            _tcase_add_test(t, tests[i], 0, 0, 0, 1);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
