/* test_rpc_wire.c: tarnfsd fed hand-made RPC bytes over TCP and UDP: the
 * proper RPC errors for unknown programs, versions and procedures, garbage
 * arguments, bad credentials, fragment reassembly, oversize records, and a
 * server that stays up through all of it. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "server.h"

enum { CALL = 0, REPLY = 1, MSG_ACCEPTED = 0, MSG_DENIED = 1 };
enum { SUCCESS = 0, PROG_UNAVAIL = 1, PROG_MISMATCH = 2, PROC_UNAVAIL = 3, GARBAGE_ARGS = 4 };
enum { RPC_MISMATCH = 0, AUTH_ERROR = 1 };

static struct test_server srv;

static void start(void)
{
    memset(&srv, 0, sizeof srv);
    ck_assert_int_eq(server_start(&srv, test_env("NFS_TEST_CACHE"), NULL, NULL), 0);
}

static void stop(void)
{
    ck_assert_int_eq(server_stop(&srv), 0);    /* clean exit: nothing crashed */
}

struct call {
    uint32_t w[64];
    int n;
};

static void put(struct call *c, uint32_t v) { c->w[c->n++] = htonl(v); }

/* xid, CALL, rpcvers, prog, vers, proc, cred (flavor, empty), verf (none). */
static void call_header(struct call *c, uint32_t xid, uint32_t rpcvers, uint32_t prog,
                        uint32_t vers, uint32_t proc, uint32_t flavor)
{
    c->n = 0;
    put(c, xid); put(c, CALL); put(c, rpcvers);
    put(c, prog); put(c, vers); put(c, proc);
    put(c, flavor); put(c, 0);
    put(c, 0); put(c, 0);
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = { 20, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static int recv_all(int fd, void *p, size_t n)
{
    size_t have = 0;
    while (have < n) {
        ssize_t r = recv(fd, (char *)p + have, n - have, 0);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    return 0;
}

/* Read one reply record; returns its words (host order) count, -1 on EOF. */
static int read_reply(int fd, uint32_t *out, int max)
{
    uint32_t mark;
    if (recv_all(fd, &mark, 4))
        return -1;
    mark = ntohl(mark);
    uint32_t len = mark & 0x7fffffff;
    ck_assert_uint_eq(len % 4, 0);
    ck_assert_int_le((int)(len / 4), max);
    ck_assert_int_eq(recv_all(fd, out, len), 0);
    for (uint32_t i = 0; i < len / 4; i++)
        out[i] = ntohl(out[i]);
    return (int)(len / 4);
}

static int tcp_call(int fd, const struct call *c, uint32_t *reply, int max)
{
    uint32_t mark = htonl(0x80000000u | (uint32_t)(c->n * 4));
    send_all(fd, &mark, 4);
    send_all(fd, c->w, (size_t)c->n * 4);
    return read_reply(fd, reply, max);
}

/* Reply words: xid REPLY stat ... */
static void expect_accepted(const uint32_t *r, int n, uint32_t xid, uint32_t accept_stat)
{
    ck_assert_int_ge(n, 6);
    ck_assert_uint_eq(r[0], xid);
    ck_assert_uint_eq(r[1], REPLY);
    ck_assert_uint_eq(r[2], MSG_ACCEPTED);
    ck_assert_uint_eq(r[3], 0);     /* verifier AUTH_NONE */
    ck_assert_uint_eq(r[4], 0);
    ck_assert_uint_eq(r[5], accept_stat);
}

static void null_call_works(void)
{
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 77, 2, 100003, 3, 0, 0);
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 77, SUCCESS);
    close(fd);
}

START_TEST(unknown_program_version_and_procedure_get_their_rpc_errors)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 1, 2, 100099, 1, 0, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 1, PROG_UNAVAIL);
    call_header(&c, 2, 2, 100003, 2, 0, 0);
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 2, PROG_MISMATCH);
    ck_assert_int_eq(n, 8);
    ck_assert_uint_eq(r[6], 3);     /* low */
    ck_assert_uint_eq(r[7], 3);     /* high */
    call_header(&c, 3, 2, 100003, 3, 22, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 3, PROC_UNAVAIL);
    call_header(&c, 4, 2, 100005, 3, 6, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 4, PROC_UNAVAIL);
    call_header(&c, 5, 2, 100005, 1, 0, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 5, PROG_MISMATCH);
    close(fd);
    stop();
}
END_TEST

START_TEST(a_wrong_rpc_version_is_rpc_mismatch_and_unknown_credentials_auth_error)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 9, 3, 100003, 3, 0, 0);
    int n = tcp_call(fd, &c, r, 64);
    ck_assert_int_ge(n, 6);
    ck_assert_uint_eq(r[2], MSG_DENIED);
    ck_assert_uint_eq(r[3], RPC_MISMATCH);
    ck_assert_uint_eq(r[4], 2);
    ck_assert_uint_eq(r[5], 2);
    call_header(&c, 10, 2, 100003, 3, 1, 6);        /* RPCSEC_GSS, empty: refused */
    put(&c, 8); put(&c, 0); put(&c, 0);              /* a GETATTR handle */
    n = tcp_call(fd, &c, r, 64);
    ck_assert_int_ge(n, 5);
    ck_assert_uint_eq(r[2], MSG_DENIED);
    ck_assert_uint_eq(r[3], AUTH_ERROR);
    ck_assert_uint_eq(r[4], 1);                      /* AUTH_BADCRED */
    close(fd);
    stop();
}
END_TEST

START_TEST(truncated_arguments_are_garbage_args)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 11, 2, 100003, 3, 1, 0);
    put(&c, 100);                                     /* a 100-byte handle, absent */
    expect_accepted(r, tcp_call(fd, &c, r, 64), 11, GARBAGE_ARGS);
    call_header(&c, 12, 2, 100003, 3, 1, 0);
    put(&c, 200);                                     /* over NFS3_FHSIZE */
    for (int i = 0; i < 50; i++)
        put(&c, 0);
    expect_accepted(r, tcp_call(fd, &c, r, 64), 12, GARBAGE_ARGS);
    call_header(&c, 13, 2, 100005, 3, 1, 0);
    put(&c, 5000);                                    /* MNT path over MNTPATHLEN */
    expect_accepted(r, tcp_call(fd, &c, r, 64), 13, GARBAGE_ARGS);
    close(fd);
    null_call_works();
    stop();
}
END_TEST

START_TEST(a_call_split_into_fragments_is_reassembled)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 21, 2, 100003, 3, 0, 0);
    /* 40 bytes as fragments of 12, 16 and 12 bytes, the last one marked. */
    size_t cuts[] = { 0, 12, 28, 40 };
    for (int i = 0; i < 3; i++) {
        uint32_t len = (uint32_t)(cuts[i + 1] - cuts[i]);
        uint32_t mark = htonl((i == 2 ? 0x80000000u : 0) | len);
        send_all(fd, &mark, 4);
        send_all(fd, (char *)c.w + cuts[i], len);
    }
    expect_accepted(r, read_reply(fd, r, 64), 21, SUCCESS);
    close(fd);
    stop();
}
END_TEST

START_TEST(an_oversize_record_drops_the_connection_and_the_server_lives_on)
{
    start();
    int fd = tcp_connect(srv.nfs_port);
    uint32_t mark = htonl(0x80000000u | (2u << 20));   /* 2 MiB > limit */
    send_all(fd, &mark, 4);
    char junk[4096] = { 0 };
    send(fd, junk, sizeof junk, MSG_NOSIGNAL);
    uint32_t r[64];
    ck_assert_int_eq(read_reply(fd, r, 64), -1);       /* closed, no reply */
    close(fd);
    /* Many non-final fragments adding up past the limit: also dropped. */
    fd = tcp_connect(srv.nfs_port);
    static char big[64 * 1024];
    bool dropped = false;
    for (int i = 0; i < 40 && !dropped; i++) {
        mark = htonl((uint32_t)sizeof big);
        if (send(fd, &mark, 4, MSG_NOSIGNAL) != 4 ||
            send(fd, big, sizeof big, MSG_NOSIGNAL) != (ssize_t)sizeof big)
            dropped = true;
    }
    if (!dropped)
        ck_assert_int_eq(read_reply(fd, r, 64), -1);
    close(fd);
    null_call_works();
    stop();
}
END_TEST

START_TEST(random_bytes_never_crash_the_server)
{
    start();
    srand(42);
    for (int round = 0; round < 50; round++) {
        int fd = tcp_connect(round % 2 ? srv.mount_port : srv.nfs_port);
        uint32_t words[256];
        int n = 1 + rand() % 255;
        for (int i = 0; i < n; i++)
            words[i] = (uint32_t)rand() ^ ((uint32_t)rand() << 16);
        /* A well-formed header for half of them, so the argument decoders
         * see garbage too. */
        if (round % 2 == 0 && n > 10) {
            words[1] = htonl(CALL); words[2] = htonl(2);
            words[3] = htonl(round % 4 ? 100003 : 100005); words[4] = htonl(3);
            words[5] = htonl((uint32_t)(rand() % 22));
            words[6] = 0; words[7] = 0; words[8] = 0; words[9] = 0;
        }
        uint32_t mark = htonl(0x80000000u | (uint32_t)(n * 4));
        send(fd, &mark, 4, MSG_NOSIGNAL);
        send(fd, words, (size_t)n * 4, MSG_NOSIGNAL);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        poll(&p, 1, 200);
        close(fd);
    }
    null_call_works();
    stop();
}
END_TEST

START_TEST(udp_carries_nfs_and_mount_calls)
{
    start();
    int ports[2] = { srv.nfs_port, srv.mount_port };
    uint32_t progs[2] = { 100003, 100005 };
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)ports[i]) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        struct timeval tv = { 10, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ck_assert_int_eq(sendto(fd, "junk", 4, 0, (struct sockaddr *)&a, sizeof a), 4);
        struct call c;
        call_header(&c, 31, 2, progs[i], 3, 0, 0);
        ck_assert_int_eq(sendto(fd, c.w, (size_t)c.n * 4, 0, (struct sockaddr *)&a, sizeof a),
                         c.n * 4);
        uint32_t r[64];
        ssize_t got = recv(fd, r, sizeof r, 0);
        ck_assert_int_ge(got, 24);
        for (int k = 0; k < 6; k++)
            r[k] = ntohl(r[k]);
        expect_accepted(r, (int)(got / 4), 31, SUCCESS);
        close(fd);
    }
    stop();
}
END_TEST

START_TEST(a_secure_export_refuses_mounts_from_unprivileged_ports)
{
    memset(&srv, 0, sizeof srv);
    ck_assert_int_eq(server_start(&srv, test_env("NFS_TEST_CACHE"),
                                  "export / *(ro,secure)\n", NULL), 0);
    int fd = tcp_connect(srv.mount_port);      /* an ephemeral port, >= 1024 */
    struct call c;
    uint32_t r[64];
    call_header(&c, 41, 2, 100005, 3, 1, 0);
    put(&c, 1);
    put(&c, 0x2f000000u);                        /* "/" padded */
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 41, SUCCESS);
    ck_assert_int_eq(n, 7);
    ck_assert_uint_eq(r[6], 13);                 /* MNT3ERR_ACCES */
    close(fd);
    stop();
}
END_TEST

START_TEST(a_name_with_a_nul_byte_is_refused)
{
    start();
    int fd = tcp_connect(srv.mount_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 51, 2, 100005, 3, 1, 0);
    put(&c, 1);
    put(&c, 0x2f000000u);
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 51, SUCCESS);
    ck_assert_uint_eq(r[6], 0);                  /* MNT3_OK */
    uint32_t fhlen = r[7];
    ck_assert_uint_le(fhlen, 64);
    uint32_t fh[16];
    memcpy(fh, &r[8], fhlen);                    /* still in host order: undo below */
    close(fd);
    fd = tcp_connect(srv.nfs_port);
    call_header(&c, 52, 2, 100003, 3, 3, 0);     /* LOOKUP */
    put(&c, fhlen);
    for (uint32_t i = 0; i < fhlen / 4; i++)
        put(&c, fh[i]);
    put(&c, 3);
    put(&c, 0x61006200u);                        /* "a\0b" + pad */
    n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 52, SUCCESS);
    ck_assert_uint_eq(r[6], 22);                 /* NFS3ERR_INVAL */
    close(fd);
    stop();
}
END_TEST

/* ---- the duplicate-request cache ---- */

/* A call header with AUTH_SYS uid 0, gid 0 (the rw test export does not
 * squash root). */
static void call_header_root(struct call *c, uint32_t xid, uint32_t prog, uint32_t proc)
{
    c->n = 0;
    put(c, xid); put(c, CALL); put(c, 2);
    put(c, prog); put(c, 3); put(c, proc);
    put(c, 1); put(c, 20);                      /* AUTH_SYS, 20 bytes */
    put(c, 12345); put(c, 0); put(c, 0); put(c, 0); put(c, 0);
    put(c, 0); put(c, 0);                       /* verifier: none */
}

/* MNT path on a rw server; fills fh (words as read_reply leaves them). */
static uint32_t mount_fh(const char *path, uint32_t fh[16])
{
    int fd = tcp_connect(srv.mount_port);
    struct call c;
    uint32_t r[64];
    call_header(&c, 900, 2, 100005, 3, 1, 0);
    uint32_t len = (uint32_t)strlen(path), w[8] = { 0 };
    put(&c, len);
    memcpy(w, path, len);
    for (uint32_t i = 0; i < (len + 3) / 4; i++)
        c.w[c.n++] = w[i];                      /* bytes as they are */
    int n = tcp_call(fd, &c, r, 64);
    expect_accepted(r, n, 900, SUCCESS);
    ck_assert_uint_eq(r[6], 0);                 /* MNT3_OK */
    uint32_t fhlen = r[7];
    ck_assert_uint_le(fhlen, 64);
    memcpy(fh, &r[8], fhlen);
    close(fd);
    return fhlen;
}

static void put_fh(struct call *c, const uint32_t *fh, uint32_t fhlen)
{
    put(c, fhlen);
    for (uint32_t i = 0; i < fhlen / 4; i++)
        put(c, fh[i]);
}

static void put_name(struct call *c, const char *name)
{
    uint32_t len = (uint32_t)strlen(name), w[16] = { 0 };
    put(c, len);
    memcpy(w, name, len);
    for (uint32_t i = 0; i < (len + 3) / 4; i++)
        c->w[c->n++] = w[i];
}

/* MKDIR name (mode 0755) in dir. */
static void mkdir_call(struct call *c, uint32_t xid, const uint32_t *dir, uint32_t dirlen,
                       const char *name)
{
    call_header_root(c, xid, 100003, 9);
    put_fh(c, dir, dirlen);
    put_name(c, name);
    put(c, 1); put(c, 0755);                    /* mode */
    for (int i = 0; i < 5; i++)
        put(c, 0);                              /* uid gid size atime mtime: unset */
}

START_TEST(a_mkdir_retransmitted_over_a_new_tcp_connection_gets_the_first_reply)
{
    memset(&srv, 0, sizeof srv);
    ck_assert_int_eq(server_start(&srv, test_env("NFS_TEST_RWCACHE"),
                                  "export / 127.0.0.1(rw,no_root_squash)\n", NULL), 0);
    uint32_t dir[16];
    uint32_t dirlen = mount_fh("/demo", dir);
    struct call c;
    uint32_t first[128], again[128];
    mkdir_call(&c, 0x5001, dir, dirlen, "drc-dir");
    int fd = tcp_connect(srv.nfs_port);
    int n1 = tcp_call(fd, &c, first, 128);
    expect_accepted(first, n1, 0x5001, SUCCESS);
    ck_assert_uint_eq(first[6], 0);             /* NFS3_OK */
    close(fd);                                  /* the client lost the reply */
    fd = tcp_connect(srv.nfs_port);
    int n2 = tcp_call(fd, &c, again, 128);
    ck_assert_int_eq(n2, n1);
    ck_assert_mem_eq(again, first, (size_t)n1 * 4);     /* not EXIST */
    /* A new call (new xid) with the same arguments does run. */
    mkdir_call(&c, 0x5002, dir, dirlen, "drc-dir");
    int n3 = tcp_call(fd, &c, again, 128);
    expect_accepted(again, n3, 0x5002, SUCCESS);
    ck_assert_uint_eq(again[6], 17);            /* NFS3ERR_EXIST */
    /* Same xid, other arguments: another call, not a replay. */
    mkdir_call(&c, 0x5001, dir, dirlen, "drc-dir2");
    n3 = tcp_call(fd, &c, again, 128);
    expect_accepted(again, n3, 0x5001, SUCCESS);
    ck_assert_uint_eq(again[6], 0);
    close(fd);
    stop();
}
END_TEST

static int udp_call(int fd, const struct sockaddr_in *to, const struct call *c,
                    uint32_t *r, int max)
{
    ck_assert_int_eq(sendto(fd, c->w, (size_t)c->n * 4, 0, (const struct sockaddr *)to,
                            sizeof *to), c->n * 4);
    ssize_t got = recv(fd, r, (size_t)max * 4, 0);
    ck_assert_int_ge(got, 28);
    for (int k = 0; k < got / 4; k++)
        r[k] = ntohl(r[k]);
    return (int)(got / 4);
}

START_TEST(a_remove_retransmitted_over_udp_gets_the_first_reply)
{
    memset(&srv, 0, sizeof srv);
    ck_assert_int_eq(server_start(&srv, test_env("NFS_TEST_RWCACHE"),
                                  "export / 127.0.0.1(rw,no_root_squash)\n", NULL), 0);
    uint32_t dir[16];
    uint32_t dirlen = mount_fh("/demo", dir);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)srv.nfs_port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct call c;
    uint32_t r[128], first[128];
    call_header_root(&c, 0x6001, 100003, 8);    /* CREATE UNCHECKED, no attributes */
    put_fh(&c, dir, dirlen);
    put_name(&c, "drc-file");
    put(&c, 0);
    for (int i = 0; i < 6; i++)
        put(&c, 0);
    int n = udp_call(fd, &a, &c, r, 128);
    expect_accepted(r, n, 0x6001, SUCCESS);
    ck_assert_uint_eq(r[6], 0);
    call_header_root(&c, 0x6002, 100003, 12);   /* REMOVE */
    put_fh(&c, dir, dirlen);
    put_name(&c, "drc-file");
    int n1 = udp_call(fd, &a, &c, first, 128);
    expect_accepted(first, n1, 0x6002, SUCCESS);
    ck_assert_uint_eq(first[6], 0);
    int n2 = udp_call(fd, &a, &c, r, 128);       /* the retransmission */
    ck_assert_int_eq(n2, n1);
    ck_assert_mem_eq(r, first, (size_t)n1 * 4);  /* not NOENT */
    c.w[0] = htonl(0x6003);                      /* a new call: it runs */
    n = udp_call(fd, &a, &c, r, 128);
    expect_accepted(r, n, 0x6003, SUCCESS);
    ck_assert_uint_eq(r[6], 2);                  /* NFS3ERR_NOENT */
    close(fd);
    stop();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rpc-wire");
    TCase *t = tcase_create("wire");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, unknown_program_version_and_procedure_get_their_rpc_errors);
    tcase_add_test(t, a_wrong_rpc_version_is_rpc_mismatch_and_unknown_credentials_auth_error);
    tcase_add_test(t, truncated_arguments_are_garbage_args);
    tcase_add_test(t, a_call_split_into_fragments_is_reassembled);
    tcase_add_test(t, an_oversize_record_drops_the_connection_and_the_server_lives_on);
    tcase_add_test(t, random_bytes_never_crash_the_server);
    tcase_add_test(t, udp_carries_nfs_and_mount_calls);
    tcase_add_test(t, a_secure_export_refuses_mounts_from_unprivileged_ports);
    tcase_add_test(t, a_name_with_a_nul_byte_is_refused);
    tcase_add_test(t, a_mkdir_retransmitted_over_a_new_tcp_connection_gets_the_first_reply);
    tcase_add_test(t, a_remove_retransmitted_over_udp_gets_the_first_reply);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
